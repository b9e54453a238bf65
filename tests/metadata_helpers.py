"""Helpers for metadata tests: a minimal valid metadata root that a test changes a little.

    problems = check_files(tmp_path, {"objects/customer.yaml": "object: customer\\n..."})
    assert_problem(problems, "objects/customer.yaml:3:11", "fields[0].type", "did you mean 'text'")

Paths in the problems are relative to the root (the helper runs the check from inside
it), so tests read like what `loom check` prints.
"""
from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

from loom.metadata import check_metadata

APP = """\
app: testapp
label: {en: Test app, zh: 测试}
languages: [zh, en]
menu:
  - {name: sales, label: {en: Sales, zh: 销售}, items: [customer]}
"""

ROLES = """\
roles:
  - {name: admin, superuser: true}
  - {name: sales_rep}
  - {name: sales_manager}
"""

INDUSTRY = """\
dictionary: industry
label: {en: Industry, zh: 行业}
items:
  - {code: manufacturing, label: {en: Manufacturing, zh: 制造业}}
  - {code: retail, label: {en: Retail, zh: 零售}}
  - {code: legacy, label: Legacy, active: false}
"""

CUSTOMER = """\
object: customer
label: {en: Customer, zh: 客户}
fields:
  - {name: name, type: text, required: true}
  - {name: industry, type: dictionary, dictionary: industry}
  - {name: revenue, type: money}
"""

BASE_FILES = {
    "app.yaml": APP,
    "roles.yaml": ROLES,
    "dictionaries/industry.yaml": INDUSTRY,
    "objects/customer.yaml": CUSTOMER,
}


def _content(text):
    """File contents: bytes as given, text dedented (tests indent their YAML)."""
    if isinstance(text, bytes):
        return text
    return textwrap.dedent(text).encode("utf-8")


def write_files(root: Path, files: dict) -> Path:
    """Write `files` ({relative path: text or bytes}) under root; None deletes a file."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_content(text))
    return root


def write_root(tmp_path: Path, files: dict | None = None, *, base: bool = True) -> Path:
    """A metadata root at tmp_path/metadata: the minimal valid files (unless base=False)
    with `files` overriding or adding to them."""
    root = tmp_path / "metadata"
    write_files(root, dict(BASE_FILES) if base else {})
    write_files(root, files or {})
    return root


def run_check(root: Path, overlay=None):
    """check_metadata run from inside the root's parent, so places print relatively."""
    with contextlib.chdir(root):
        return check_metadata(".", overlay)


def check_files(tmp_path: Path, files: dict | None = None, *, overlay: dict | None = None,
                base: bool = True) -> list[str]:
    """Problems (as `loom check` prints them) of the minimal root changed by `files`.
    `overlay` files go to a LOOM_OVERLAY folder beside the root, shown as ../overlay/..."""
    root = write_root(tmp_path, files, base=base)
    overlay_dir = None
    if overlay is not None:
        overlay_dir = write_files(tmp_path / "overlay", overlay)
    spec, problems = run_check(root, overlay_dir and Path("..") / "overlay")
    assert (spec is None) == bool(problems)
    return [str(p) for p in problems]


def spec_of(tmp_path: Path, files: dict | None = None, *, overlay: dict | None = None):
    """The AppSpec of the minimal root changed by `files`; fails listing any problems."""
    root = write_root(tmp_path, files)
    overlay_dir = write_files(tmp_path / "overlay", overlay) if overlay is not None else None
    spec, problems = run_check(root, overlay_dir)
    assert not problems, "\n".join(map(str, problems))
    return spec


def assert_problem(problems: list[str], where: str, *parts: str) -> str:
    """The problem printed at `where` (FILE:LINE:COL, optionally followed by ': path')
    whose text contains every one of `parts`; fails showing all problems otherwise."""
    prefix = where if where.count(":") >= 3 else where + ":"
    for p in problems:
        if p.startswith(prefix) and all(part in p for part in parts):
            return p
    listing = "\n  ".join(problems) or "(no problems)"
    raise AssertionError(f"no problem at {where} containing {parts!r}; got:\n  {listing}")


def only_problem(problems: list[str], where: str, *parts: str) -> str:
    """Like assert_problem, and it is the only problem of the run (no follow-on errors)."""
    found = assert_problem(problems, where, *parts)
    assert problems == [found], "expected one problem, got:\n  " + "\n  ".join(problems)
    return found

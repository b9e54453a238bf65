"""docs/tutorial.md, run as written: its files, its commands, and their output; and the
examples of docs/metadata.md, checked.

The tutorial marks what a reader does with HTML comments (invisible on GitHub) placed
right before a fenced block or on their own:

    <!-- tutorial: write PATH -->           the next fenced block is the file PATH
    <!-- tutorial: menu PATH GROUP -->      the next block is menu group GROUP of app.yaml
    <!-- tutorial: set PATH KEY -->         the next block is the top-level line KEY: of PATH
    <!-- tutorial: edit PATH "OLD" "NEW" --> replace OLD with NEW in PATH (a typo, then its fix)
    <!-- tutorial: run -->                  the next console block: `$ command` lines and
                                            the output each prints

Commands run in a workspace under tmp_path in document order: `loom ...` through Click's
CliRunner on loom.cli.main, and the shell commands the tutorial uses (mkdir, cd, cp,
export). Output must match line by line, where a run of digits matches any digits (ids,
dates, counts that grow with the CRM) and `…` matches anything (a whole `…` line: any
number of lines). So a change to the CRM or the engine that makes the tutorial untrue
fails here, and the failure names the line of the tutorial.

Then the workspace is checked further: the tutorial's records behave as it says, through
the record service, the lifecycle engine and the web pages.

docs/metadata.md marks each YAML block with `<!-- example: ... -->`:

    same-as PATH        an excerpt: its lines are in the file PATH, in order
    extends OBJECT      fields (a list) or keys (a mapping) that extend OBJECT
    new PATH            a whole document, added as PATH in an overlay
    broken PATH         a document with mistakes; the `output` block after it is what
                        `loom check` prints for it
    skip (why)          not a document (a grammar, the first lines of a file)

and the test holds each to it: excerpts still quote the CRM, every other example passes
`loom check` on top of the CRM, and the error messages shown are the real ones.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from loom.cli import main as cli
from loom.metadata import check_metadata
from loom.records.errors import Forbidden, NotFound, ValidationError
from loom.runtime import Runtime
from loom.security.actor import Actor
from loom.security.organization import actor_for, find_user

from web_helpers import actor, create, post, runtime_of, signed_in, make_app

# One walkthrough per worker process: keep this module's tests together under
# `pytest -n N --dist loadgroup`.
pytestmark = pytest.mark.xdist_group("tutorial")

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
MARKER = re.compile(r"<!--\s*tutorial:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```")


# ---- reading the tutorial ------------------------------------------------------------------

class Step:
    def __init__(self, line: int, action: list, block: str | None):
        self.line, self.action, self.block = line, action, block

    def __repr__(self):
        return f"tutorial.md:{self.line}: {' '.join(self.action)}"


def steps(text: str) -> list[Step]:
    """The marked steps of the tutorial, in order, each with the fenced block after it."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = MARKER.search(line)
        if not m:
            continue
        action = shlex.split(m.group(1))
        block = None
        if action[0] in ("write", "menu", "set", "run"):
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            assert j < len(lines) and FENCE.match(lines[j]), f"tutorial.md:{i + 1}: a fenced block must follow"
            k = j + 1
            while not FENCE.match(lines[k]):
                k += 1
            block = "\n".join(lines[j + 1:k]) + "\n"
        out.append(Step(i + 1, action, block))
    return out


def blocks_of(text: str, action: str) -> dict:
    """{path: block} of the tutorial's `write` (or other) steps."""
    return {s.action[1]: s.block for s in steps(text) if s.action[0] == action}


# ---- doing what it says -----------------------------------------------------------------------

def _replace_group(text: str, group: str, block: str) -> str:
    """app.yaml with menu group `group` replaced by `block` (the group's lines)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if re.match(rf"^  - name: {re.escape(group)}\s*$", l)), None)
    assert start is not None, f"app.yaml has no menu group '{group}'"
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    return "".join(lines[:start]) + block + "".join(lines[end:])


def _replace_key(text: str, key: str, block: str) -> str:
    lines = text.splitlines(keepends=True)
    at = [i for i, l in enumerate(lines) if l.startswith(f"{key}:")]
    assert len(at) == 1, f"expected one top-level '{key}:' line"
    return "".join(lines[:at[0]]) + block + "".join(lines[at[0] + 1:])


def _pattern(expected: str) -> re.Pattern:
    parts = re.split(r"(\d+|…)", expected.rstrip())
    regex = "".join(r"\d+" if p.isdigit() else ".*" if p == "…" else re.escape(p) for p in parts)
    return re.compile(regex + r"\s*$")


def _matches(expected: list, actual: list) -> bool:
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head.strip() == "…":
        return any(_matches(rest, actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and bool(_pattern(head).match(actual[0])) and _matches(rest, actual[1:])


def commands(block: str) -> list[tuple[str, list]]:
    """[(command, expected output lines)] of a console block."""
    out = []
    for line in block.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
        elif line.strip():
            raise AssertionError(f"output before any command: {line!r}")
    return out


class Walkthrough:
    """Does what the tutorial says, in a workspace: files, edits and commands."""

    def __init__(self, home: Path, monkeypatch, *, record: bool = False):
        self.home, self.monkeypatch, self.record = home, monkeypatch, record
        self.runner = CliRunner()
        self.transcript: list = []      # (step, command, output) when recording
        monkeypatch.chdir(home)
        for name in ("LOOM_METADATA", "LOOM_OVERLAY", "LOOM_DATABASE_URL", "LOOM_INSTANCE"):
            monkeypatch.delenv(name, raising=False)
        # validated metadata is cached by file content (faster, same output)
        monkeypatch.setenv("LOOM_CACHE_DIR", str(home / "cache"))

    def do(self, step: Step):
        kind, args = step.action[0], step.action[1:]
        if kind == "write":
            path = Path(args[0])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(step.block, encoding="utf-8")
        elif kind == "menu":
            path = Path(args[0])
            path.write_text(_replace_group(path.read_text(encoding="utf-8"), args[1], step.block), encoding="utf-8")
        elif kind == "set":
            path = Path(args[0])
            path.write_text(_replace_key(path.read_text(encoding="utf-8"), args[1], step.block), encoding="utf-8")
        elif kind == "edit":
            path, old, new = Path(args[0]), args[1], args[2]
            text = path.read_text(encoding="utf-8")
            assert old in text, f"{step}: '{old}' is not in {path}"
            path.write_text(text.replace(old, new, 1), encoding="utf-8")
        elif kind == "run":
            for command, expected in commands(step.block):
                output = self.shell(command)
                if self.record:
                    self.transcript.append((step, command, output))
                    continue
                actual = output.rstrip("\n").splitlines()
                assert _matches(expected, actual), (
                    f"{step}: `{command}` printed\n" + "\n".join(actual) + "\n\nwhere the tutorial shows\n"
                    + "\n".join(expected))
        else:
            raise AssertionError(f"{step}: unknown tutorial step '{kind}'")

    def shell(self, command: str) -> str:
        """One command line of the tutorial: loom, or the few shell commands it uses."""
        words = shlex.split(command, comments=True)
        name, args = words[0], words[1:]
        if name == "loom":
            result = self.runner.invoke(cli, args, catch_exceptions=False)
            return result.output
        if name == "mkdir":
            for d in (a for a in args if not a.startswith("-")):
                Path(d).mkdir(parents=True, exist_ok=True)
        elif name == "cd":
            self.monkeypatch.chdir(args[0])
        elif name == "cp" and args[0] == "-r":
            shutil.copytree(args[1], args[2], symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
        elif name == "export":
            for assignment in args:
                key, _, value = assignment.partition("=")
                self.monkeypatch.setenv(key, value)
        else:
            raise AssertionError(f"the tutorial runs '{name}', which this test does not know")
        return ""


def walk(tmp_path: Path, monkeypatch, *, record=False, until=None) -> Walkthrough:
    """The whole tutorial done in tmp_path/checkout (where `metadata` is the shipped CRM)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "metadata").symlink_to(ROOT / "metadata", target_is_directory=True)
    w = Walkthrough(checkout, monkeypatch, record=record)
    for step in steps(TUTORIAL.read_text(encoding="utf-8")):
        if until is not None and step.line >= until:
            break
        w.do(step)
    return w


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """The workspace after the whole tutorial: (tutorial folder, walkthrough)."""
    mp = pytest.MonkeyPatch()
    try:
        w = walk(tmp_path_factory.mktemp("tutorial"), mp)
        folder = Path.cwd()
    finally:
        mp.undo()  # the working directory and environment as they were
    return folder, w


# ---- the tutorial, as written --------------------------------------------------------------

def test_the_tutorial_runs_as_written(tutorial):
    """Every file, edit and command of docs/tutorial.md, with the output it shows."""
    folder, _w = tutorial
    assert (folder / "instance" / "loom.db").exists()


def test_every_marked_block_is_used():
    text = TUTORIAL.read_text(encoding="utf-8")
    found = steps(text)
    assert {s.action[0] for s in found} <= {"write", "menu", "set", "edit", "run"}
    written = [s.action[1] for s in found if s.action[0] == "write"]
    assert len(written) == len(set(written)), "a file is written twice"
    # every image the tutorial shows exists, and is small enough for a repository
    for name in re.findall(r"\(images/(tutorial-[^)]+)\)", text):
        image = ROOT / "docs" / "images" / name
        assert image.exists(), name
        assert image.stat().st_size < 160_000, f"{name} is {image.stat().st_size} bytes"


def _sections(doc: dict, view="form") -> list:
    return [list(s["fields"]) for s in doc[view]["sections"]]


def test_copied_form_sections_are_the_base_ones_plus_the_new_fields():
    """An extension replaces `form.sections` as a whole, so the tutorial copies the base's
    sections and adds its field. When the base form changes, the copy must follow, or
    the tutorial would hide the base's new fields."""
    text = TUTORIAL.read_text(encoding="utf-8")
    written = blocks_of(text, "write")
    for path, obj, added in (("site/objects/contact.yaml", "contact", {"qq"}),
                             ("metadata/packs/medical_device/objects/product.yaml", "product", {"device_class"})):
        ext = yaml.safe_load(written[path])
        base = yaml.safe_load((ROOT / "metadata" / "objects" / f"{obj}.yaml").read_text(encoding="utf-8"))
        ours = [[f for f in fields if f not in added] for fields in _sections(ext)]
        assert ours == _sections(base), (
            f"docs/tutorial.md: the form sections of {path} are no longer those of metadata/objects/{obj}.yaml "
            f"plus {sorted(added)}; copy them again")
        labels = [s.get("label") for s in ext["form"]["sections"]]
        assert labels == [s.get("label") for s in base["form"]["sections"]]
        if "search" in ext:
            quick = [f for f in ext["search"]["quick"] if f not in added]
            assert quick == base["search"]["quick"], f"{path}: search.quick is not the base's plus {sorted(added)}"


def test_the_menu_group_shown_is_the_base_group_plus_the_new_object():
    text = TUTORIAL.read_text(encoding="utf-8")
    shown = {s.action[2]: yaml.safe_load(s.block)[0] for s in steps(text) if s.action[0] == "menu"}
    app = yaml.safe_load((ROOT / "metadata" / "app.yaml").read_text(encoding="utf-8"))
    groups = {g["name"]: g for g in app["menu"]}
    for name, group in shown.items():
        base = groups[name]
        assert {k: v for k, v in group.items() if k != "items"} == {k: v for k, v in base.items() if k != "items"}
        assert group["items"][:-1] == base["items"], (
            f"docs/tutorial.md shows the '{name}' menu group as {group['items']}; metadata/app.yaml has "
            f"{base['items']} (the tutorial adds one item at the end)")


# ---- what the tutorial's records do ------------------------------------------------------

@pytest.fixture(scope="module")
def runtime(tutorial):
    folder, _w = tutorial
    rt = Runtime.open(folder / "metadata", f"sqlite:///{folder / 'instance' / 'loom.db'}",
                      overlay=folder / "site", cache=False)
    yield rt
    rt.close()


def _actor(rt, username):
    return actor_for(rt, find_user(rt, username))


def test_overlay_field_is_stored_validated_and_searchable(runtime):
    wang = _actor(runtime, "wang")
    contact = runtime.spec.objects["contact"]
    assert contact.fields["qq"].type == "text" and "qq" in contact.search.quick
    assert "qq" in [n for s in contact.form for n in s.fields]
    customer = runtime.records.query("customer", wang, limit=1).rows[0]
    with pytest.raises(ValidationError) as e:
        runtime.records.create("contact", {"customer": customer["id"], "name": "张伟", "mobile": "13800000000",
                                           "qq": "0123"}, wang, allow_duplicates=True)
    assert "qq" in e.value.fields
    made = runtime.records.create("contact", {"customer": customer["id"], "name": "张伟", "mobile": "13800000001",
                                              "qq": "10001"}, wang, allow_duplicates=True)
    assert made["qq"] == "10001"
    found = runtime.records.query("contact", wang, search="10001").rows
    assert [r["id"] for r in found] == [made["id"]]


def test_tender_lifecycle_rules_and_permissions(runtime):
    wang, zhao, li = (_actor(runtime, u) for u in ("wang", "zhao", "li"))
    customer = runtime.records.query("customer", wang, limit=1).rows[0]
    values = {"name": "测试招标项目", "customer": customer["id"], "deadline": "2030-01-10 10:00",
              "budget": 100000, "bid_amount": 120000}
    with pytest.raises(ValidationError) as e:                   # the rule: the bid fits the budget
        runtime.records.create("tender", values, wang)
    assert "bid_amount" in e.value.fields
    tender = runtime.records.create("tender", dict(values, bid_amount=98000), wang)
    assert tender["state"] == "preparing" and tender["method"] == "open"          # initial state, default
    assert re.fullmatch(r"TB\d{4}-\d{4}", tender["code"])
    with pytest.raises(NotFound):                               # another rep's tenders are not theirs
        runtime.records.get("tender", tender["id"], li)
    assert runtime.records.query("tender", li).rows == []
    tender = runtime.workflows.transition("tender", tender["id"], "submit", wang)
    assert tender["state"] == "submitted" and tender["submitted_on"] is not None
    with pytest.raises(Forbidden):                              # locked while submitted
        runtime.records.update("tender", tender["id"], {"notes": "x"}, wang, version=tender["version"])
    with pytest.raises(Forbidden):                              # win: sales managers only
        runtime.workflows.transition("tender", tender["id"], "win", wang)
    with pytest.raises(ValidationError):                        # lose: a comment is required
        runtime.workflows.transition("tender", tender["id"], "lose", zhao)
    tender = runtime.workflows.transition("tender", tender["id"], "lose", zhao, comment="价格偏高",
                                          values={"lost_to": "kingdee"})
    assert tender["state"] == "lost" and tender["lost_to"] == "kingdee"


def test_tender_needs_a_bid_before_it_is_submitted(runtime):
    wang = _actor(runtime, "wang")
    customer = runtime.records.query("customer", wang, limit=1).rows[0]
    tender = runtime.records.create("tender", {"name": "未报价项目", "customer": customer["id"],
                                               "deadline": "2030-02-01 09:00"}, wang)
    with pytest.raises((ValidationError, Forbidden)):
        runtime.workflows.transition("tender", tender["id"], "submit", wang)
    tender = runtime.workflows.transition("tender", tender["id"], "withdraw", wang, comment="客户取消招标")
    assert tender["state"] == "withdrawn"


def test_the_pack_is_a_layer_and_its_objects_work(runtime):
    spec = runtime.spec
    assert spec.packs == ("medical_device",)
    assert [name for name, _ in spec.layers] == ["system", "base", "pack medical_device", "overlay"]
    products = next(g for g in spec.menu if g.name == "products")
    assert products.items[-1] == "device_license"
    assert "device" in spec.dictionaries["product_category"].items          # extended dictionary
    zhao = _actor(runtime, "zhao")
    product = runtime.records.create("product", {"code": "MD-TEST-1", "name": "测试监护仪", "category": "device",
                                                 "device_class": "II", "price": 1000}, zhao)
    assert product["license_count"] == 0
    license_ = runtime.records.create("device_license", {
        "license_no": "国械注准20240000001", "product": product["id"], "device_class": "II",
        "holder": "测试医疗科技有限公司", "issued_on": "2024-03-01", "expires_on": "2029-02-28"}, zhao)
    assert runtime.records.get("product", product["id"], zhao)["license_count"] == 1
    with pytest.raises(ValidationError) as e:                   # certificate numbers are unique
        runtime.records.create("device_license", dict(
            {k: license_[k] for k in ("license_no", "product", "device_class", "holder", "issued_on", "expires_on")}), zhao)
    assert "license_no" in e.value.fields
    wang = _actor(runtime, "wang")                              # reps read certificates, do not create them
    assert runtime.records.get("device_license", license_["id"], wang)["license_no"] == "国械注准20240000001"
    with pytest.raises(Forbidden):
        runtime.records.create("device_license", {"license_no": "x"}, wang)


def test_without_the_pack_in_app_yaml_its_folder_is_not_read(tutorial, tmp_path):
    folder, _w = tutorial
    copy = tmp_path / "metadata"
    shutil.copytree(folder / "metadata", copy)
    app = copy / "app.yaml"
    app.write_text(_replace_key(app.read_text(encoding="utf-8"), "packs", "packs: []\n"), encoding="utf-8")
    spec, problems = check_metadata(copy)
    assert problems == [] and "device_license" not in spec.objects and "device_class" not in spec.objects["product"].fields


# ---- the same through the web pages --------------------------------------------------------

@pytest.fixture(scope="module")
def app(tutorial, tmp_path_factory):
    folder, _w = tutorial
    return make_app(folder / "metadata", tmp_path_factory.mktemp("web"), LOOM_OVERLAY=str(folder / "site"))


def test_web_contact_form_has_the_overlay_field(app):
    rep = signed_in(app, "rep1", lang="zh")
    customer = create(app, "rep1", "customer", name="网页测试客户有限公司", category="consumer")
    page = rep.get(f"/o/contact/new?d.customer={customer['id']}").get_data(as_text=True)
    assert 'name="qq"' in page and "QQ号" in page
    response = post(rep, "/o/contact/new", {"customer": customer["id"], "name": "王磊", "mobile": "13700000000",
                                            "qq": "0123"})
    assert response.status_code == 422
    response = post(rep, "/o/contact/new", {"customer": customer["id"], "name": "王磊", "mobile": "13700000000",
                                            "qq": "12345678"})
    assert response.status_code == 302
    detail = rep.get(response.headers["Location"]).get_data(as_text=True)
    assert "12345678" in detail


def test_web_tender_menu_form_and_lifecycle(app):
    rep, mgr = signed_in(app, "rep1", lang="zh"), signed_in(app, "mgr", lang="zh")
    home = rep.get("/").get_data(as_text=True)
    assert 'href="/o/tender/"' in home and "招投标" in home
    customer = create(app, "rep1", "customer", name="网页招标客户有限公司", category="consumer")
    form = {"name": "网页投标项目", "customer": customer["id"], "method": "invited", "deadline": "2030-03-01T10:00",
            "budget": "500000", "bid_amount": "520000"}
    response = post(rep, "/o/tender/new", form)
    assert response.status_code == 422 and "投标报价不能超过项目预算" in response.get_data(as_text=True)
    assert 'name="deposit"' not in rep.get("/o/tender/new").get_data(as_text=True)   # field permission
    response = post(rep, "/o/tender/new", dict(form, bid_amount="480000"))
    assert response.status_code == 302
    url = response.headers["Location"]
    tender_id = int(url.rstrip("/").rsplit("/", 1)[1])
    page = rep.get(url).get_data(as_text=True)
    assert "递交投标" in page and "准备中" in page
    assert post(rep, f"/o/tender/{tender_id}/transition/submit", {"version": "1"}).status_code == 302
    record = runtime_of(app).records.get("tender", tender_id, actor(app, "rep1"))
    assert record["state"] == "submitted"
    page = mgr.get(url).get_data(as_text=True)
    assert "中标" in page and "未中标" in page and 'name="lost_to"' in page
    response = post(mgr, f"/o/tender/{tender_id}/transition/lose",
                    {"version": str(record["version"]), "comment": "价格高于对手", "lost_to": "kingdee"})
    assert response.status_code == 302
    record = runtime_of(app).records.get("tender", tender_id, actor(app, "mgr"))
    assert record["state"] == "lost" and record["lost_to"] == "kingdee"
    assert rep.get("/o/tender/calendar?month=2030-03").status_code == 200
    assert rep.get("/o/tender/kanban").status_code == 200


def test_web_pack_pages(app):
    mgr = signed_in(app, "mgr", lang="zh")
    home = mgr.get("/").get_data(as_text=True)
    assert 'href="/o/device_license/"' in home and "注册证" in home
    product = create(app, "mgr", "product", code="MD-WEB-1", name="网页测试输液泵", category="device",
                     device_class="III", price=5000)
    response = post(mgr, "/o/device_license/new", {
        "license_no": "国械注准20243140999", "product": product["id"], "device_class": "III",
        "holder": "网页测试医疗器械有限公司", "issued_on": "2024-05-20", "expires_on": "2029-05-19"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    listing = mgr.get("/o/device_license/?scheme=expiring").get_data(as_text=True)
    assert response.status_code == 302 and "注册证" in listing
    page = mgr.get(f"/o/product/{product['id']}").get_data(as_text=True)
    assert "管理类别" in page and "第三类" in page


# ---- docs/metadata.md: every example is real ------------------------------------------------

REFERENCE = ROOT / "docs" / "metadata.md"
EXAMPLE = re.compile(r"<!--\s*example:\s*(.*?)\s*-->")


def examples(text: str) -> list[tuple[int, list, str]]:
    """(line, action words, block) of every marked example of the reference."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = EXAMPLE.search(line)
        if not m:
            continue
        j = i + 1
        while not lines[j].strip():
            j += 1
        assert FENCE.match(lines[j]), f"metadata.md:{i + 1}: a fenced block must follow the marker"
        k = j + 1
        while not FENCE.match(lines[k]):
            k += 1
        out.append((i + 1, m.group(1).split(), "\n".join(lines[j + 1:k]) + "\n"))
    return out


def test_every_yaml_block_of_the_reference_is_a_marked_example():
    lines = REFERENCE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "```yaml":
            before = next(l for l in reversed(lines[:i]) if l.strip())
            assert EXAMPLE.search(before), f"metadata.md:{i + 1}: a YAML block without an <!-- example: ... --> marker"


def test_reference_excerpts_are_in_the_files_they_quote():
    """An excerpt's lines appear in the quoted file in the same order (lines may be left
    out between them). When the CRM changes a quoted line, the reference must follow."""
    for line, action, block in examples(REFERENCE.read_text(encoding="utf-8")):
        if action[0] != "same-as":
            continue
        source = [l.rstrip() for l in (ROOT / action[1]).read_text(encoding="utf-8").splitlines()]
        at = 0
        for quoted in (l.rstrip() for l in block.splitlines() if l.strip()):
            try:
                at = source.index(quoted, at) + 1
            except ValueError:
                pytest.fail(f"metadata.md:{line}: {action[1]} no longer has (after line {at}) the line\n{quoted}")


def test_reference_examples_pass_loom_check(tmp_path):
    """Every extension and new document of the reference, all together in an overlay on
    the CRM, is valid metadata."""
    overlay = tmp_path / "examples"
    used = 0
    for line, action, block in examples(REFERENCE.read_text(encoding="utf-8")):
        if action[0] == "extends":
            head = f"extends: {action[1]}\n" + ("fields:\n" if block.lstrip().startswith("-") else "")
            path = overlay / "objects" / f"example_{line}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# docs/metadata.md:{line}\n" + head + block, encoding="utf-8")
        elif action[0] == "new":
            path = overlay / action[1]
            assert not path.exists(), f"metadata.md:{line}: {action[1]} is used twice"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block, encoding="utf-8")
        else:
            assert action[0] in ("same-as", "broken", "output", "skip"), f"metadata.md:{line}: unknown example {action}"
            continue
        used += 1
    assert used >= 5
    spec, problems = check_metadata(ROOT / "metadata", overlay)
    assert problems == [], "\n".join(map(str, problems))
    assert "visit_note" in spec.objects and "big_deal_approval" in spec.workflows
    assert spec.objects["contract"].fields["archive_no"].numbering.start == 1000
    assert "waiting_parts" in spec.workflows["service_request_lifecycle"].states
    assert not spec.automations["service_request_overdue"].active


def _without_choices(line: str) -> str:
    """A message without its list of choices (which grows with the CRM)."""
    return re.sub(r"(;|\?) expected one of: .*$", r"\1", line.rstrip())


def test_reference_error_messages_are_what_loom_check_prints(tmp_path, monkeypatch):
    found = examples(REFERENCE.read_text(encoding="utf-8"))
    pairs = [(a, b) for a, b in zip(found, found[1:]) if a[1][0] == "broken"]
    assert pairs
    monkeypatch.chdir(tmp_path)
    for (line, action, block), (_line, output_action, output) in pairs:
        assert output_action == ["output"], f"metadata.md:{line}: an output block must follow"
        overlay = Path(action[1].split("/")[0])
        path = Path(action[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block, encoding="utf-8")
        _spec, problems = check_metadata(ROOT / "metadata", overlay)
        shown = [l for l in output.splitlines() if l and not l.startswith("$ ")]
        assert shown[-1] == f"{len(problems)} problems found"
        assert [_without_choices(l) for l in shown[:-1]] == [_without_choices(str(p)) for p in problems]

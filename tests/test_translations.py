"""Every interface message has a Chinese translation that keeps its placeholders.

The messages are found the way `pybabel extract -F babel.cfg` finds them (Python code and
templates marking them with `_("...")`), plus a plain regex scan as a second opinion, so a
message added without a translation fails here with the list of what is missing. To fix:

    pybabel extract -F babel.cfg -o platform/loom/translations/messages.pot -k _ --no-location .
    pybabel update -i platform/loom/translations/messages.pot -d platform/loom/translations -l zh --no-fuzzy-matching

and translate the new empty entries in platform/loom/translations/zh/LC_MESSAGES/messages.po.
"""
from __future__ import annotations

import ast
import re
import string
from functools import lru_cache
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from loom import i18n

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "platform" / "loom" / "translations" / "zh" / "LC_MESSAGES" / "messages.po"
SOURCES = [(ROOT / "platform" / "loom", "*.py"), (ROOT / "platform" / "loom", "*.html"), (ROOT / "themes", "*.html")]

# _("...") / _('...') with a literal first argument (implicitly concatenated literals included)
_LITERAL = r"""(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
_CALL = re.compile(r"(?<![\w.])_\(\s*((?:" + _LITERAL + r"\s*)+)\s*[,)]")


def _unquote(literals: str) -> str:
    return "".join(ast.literal_eval(s) for s in re.findall(_LITERAL, literals))


@lru_cache(maxsize=None)
def babel_msgids() -> dict[str, set[str]]:
    """msgid -> files, as `pybabel extract -F babel.cfg -k _` sees them."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str, set[str]] = {}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords={"_": None}):
        if isinstance(message, (tuple, list)):
            message = message[0]
        if message:
            found.setdefault(message, set()).add(filename)
    return found


@lru_cache(maxsize=None)
def regex_msgids() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for base, pattern in SOURCES:
        for path in sorted(base.rglob(pattern)):
            text = path.read_text(encoding="utf-8")
            for m in _CALL.finditer(text):
                found.setdefault(_unquote(m.group(1)), set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.fixture(scope="module")
def msgids() -> dict[str, set[str]]:
    found = {m: set(files) for m, files in babel_msgids().items()}
    for msgid, files in regex_msgids().items():
        found.setdefault(msgid, set()).update(files)
    return found


@pytest.fixture(scope="module")
def po():
    with open(CATALOG, "rb") as f:
        return read_po(f, locale="zh")


def _placeholders(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def test_extraction_finds_messages(msgids):
    # guards the scan itself: a broken babel.cfg or regex would make the next test pass vacuously
    assert "{label} is required" in msgids
    assert "Save" in msgids            # a template message
    assert "approve" in msgids         # a history action (translations/dynamic.py)
    assert len(msgids) > 100


def test_every_message_has_a_chinese_translation(msgids, po):
    translated = {m.id: m.string for m in po if m.id and m.string and not m.fuzzy}
    missing = sorted(m for m in msgids if not translated.get(m))
    assert not missing, (
        f"{len(missing)} message(s) without a zh translation in {CATALOG.relative_to(ROOT)}:\n"
        + "\n".join(f"  {m!r}  ({', '.join(sorted(msgids[m]))})" for m in missing))


def test_the_regex_scan_and_babel_agree(msgids):
    # a message the regex finds but Babel does not would be missing from messages.pot
    only_regex = sorted(set(regex_msgids()) - set(babel_msgids()))
    assert not only_regex, f"not found by pybabel extract -F babel.cfg: {only_regex}"


def test_translations_keep_placeholders(po):
    wrong = []
    for m in po:
        if not m.id or not m.string:
            continue
        try:
            want, got = _placeholders(m.id), _placeholders(m.string)
        except ValueError as e:     # an unbalanced brace
            wrong.append(f"{m.id!r} -> {m.string!r}: {e}")
            continue
        if want != got:
            wrong.append(f"{m.id!r} -> {m.string!r}: expected {sorted(want)}, got {sorted(got)}")
    assert not wrong, "translations whose {placeholders} differ from the message:\n" + "\n".join(wrong)


def test_gettext_chinese_and_english():
    assert i18n.gettext("zh", "{label} is required", label="名称") == "名称不能为空"
    assert i18n.gettext("en", "{label} is required", label="Name") == "Name is required"
    assert i18n.gettext(None, "Save") == "保存"                      # Chinese by default
    assert i18n.gettext("zh", "no such message {n}", n=1) == "no such message 1"
    assert i18n.Message("you may not delete this {object}", object="客户").text("zh") == "您没有删除此客户的权限"


def test_the_catalog_is_read_from_the_package():
    assert i18n.catalog("zh").get("Recycle bin") == "回收站"
    assert i18n.catalog("xx") == {}

"""Interface and message translations.

Messages are written in English in the code, marked with `_()` so Babel's extractor finds
them (`pybabel extract -F babel.cfg -o messages.pot platform/loom`), and translated from
the gettext catalogs in `loom/translations/<lang>/LC_MESSAGES/messages.po`, read with
Babel at start-up (no compiled .mo files to keep in step).

    gettext("zh", "{label} is required", label="客户名称")   # -> "客户名称不能为空"
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from babel.messages.pofile import read_po

DEFAULT_LANGUAGE = "zh"


def _(message: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return message


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict:
    path = resources.files("loom").joinpath("translations", lang, "LC_MESSAGES", "messages.po")
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        po = read_po(f, locale=lang)
    return {m.id: m.string for m in po if m.id and m.string and not m.fuzzy}


def gettext(lang: str | None, message: str, **params) -> str:
    text = catalog(lang or DEFAULT_LANGUAGE).get(message, message) if lang != "en" else message
    return text.format(**params) if params else text


class Message:
    """A message to show later, in whichever language the reader has."""

    __slots__ = ("message", "params")

    def __init__(self, message: str, **params):
        self.message, self.params = message, params

    def text(self, lang: str | None = None) -> str:
        params = {k: (v.text(lang) if hasattr(v, "text") else v) for k, v in self.params.items()}
        return gettext(lang, self.message, **params)

    def __str__(self):
        return self.text("en")

    def __repr__(self):
        return f"Message({self.text('en')!r})"

    def __eq__(self, other):
        return isinstance(other, Message) and (self.message, self.params) == (other.message, other.params)

    def __hash__(self):
        return hash(self.message)

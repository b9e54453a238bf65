"""Values the engine computes on every write: mnemonics, formulas, quick-search columns."""
from __future__ import annotations

import decimal
import re
from functools import lru_cache
from itertools import chain

from pypinyin import Style
from pypinyin.converter import UltimateConverter
from pypinyin.core import Pinyin
from pypinyin.core import seg as pinyin_seg   # the segmentation lazy_pinyin itself applies

from ..metadata.expressions import parse as parse_expression
from ..metadata.spec import FieldSpec, ObjectSpec
from ..storage.database import fold

_LATIN = re.compile(r"[A-Za-z0-9]+")
_RUN = re.compile(r"[^\W_]+", re.UNICODE)   # letters and digits of any script
# What pypinyin.lazy_pinyin builds on every call (with its default options), built once.
_PINYIN = Pinyin(UltimateConverter(v_to_u=False, neutral_tone_with_five=False, tone_sandhi=False))


def mnemonic(text: str | None) -> str | None:
    """Pinyin initials for Chinese, Latin letters and digits kept: 华信科技 IBM -> hxkjibm."""
    if not text:
        return None
    return "".join(_initials(word) for word in pinyin_seg(text))[:100] or None


@lru_cache(maxsize=65536)
def _initials(word: str) -> str:
    """Initials of one word as pypinyin segments a text (a phrase such as 重庆 is read as a
    whole: cq, not zq). Words recur across names (有限公司, 科技), so converting each once
    spares pypinyin's per-call work; the result is the same as converting the text."""
    out = []
    for part in _PINYIN.lazy_pinyin(word, style=Style.FIRST_LETTER, errors="default", strict=True):
        out.extend(m.lower() for m in _LATIN.findall(part))
    return "".join(out)


@lru_cache(maxsize=None)
def _expression(source: str):
    return parse_expression(source)


def formula_order(obj: ObjectSpec) -> list[FieldSpec]:
    """Formula fields so that each comes after the formulas it reads."""
    formulas = {f.name: f for f in obj.fields.values() if f.type == "formula"}
    done, order = set(), []

    def visit(name, trail=()):
        if name in done or name in trail:
            return
        for dep in _expression(formulas[name].expr).names:
            if dep in formulas:
                visit(dep, trail + (name,))
        done.add(name)
        order.append(formulas[name])
    for name in formulas:
        visit(name)
    return order


def evaluate_formula(f: FieldSpec, values: dict, context: dict):
    result = _expression(f.expr)(values, context)
    if result is None:
        return None
    kind = f.result or "decimal"
    try:
        if kind == "decimal":
            return decimal.Decimal(result).quantize(decimal.Decimal(1).scaleb(-(f.scale or 2)),
                                                    rounding=decimal.ROUND_HALF_UP)
        if kind == "integer":
            return int(decimal.Decimal(result).to_integral_value(rounding=decimal.ROUND_HALF_UP))
        if kind == "text":
            return str(result)[:10000]
        if kind == "boolean":
            return bool(result)
        if kind == "date":
            return result if hasattr(result, "year") else None
    except (decimal.InvalidOperation, TypeError, ValueError, OverflowError):
        return None
    return None


def folded(text: str) -> str:
    """storage.database.fold, without its per-character loop when str.lower() gives the
    same: equal length (no character became two) and no final sigma (the one mapping that
    str.lower() makes by context)."""
    low = text.lower()
    if len(low) == len(text) and "ς" not in low:
        return low
    return fold(text)


def search_columns(values) -> tuple[str | None, str | None]:
    """(search_text, search_tokens) of the quick-search values, folding each value once."""
    parts = [folded(str(v)) for v in values if v not in (None, "")]
    return "\n".join(parts) or None, _tokens(parts)


def search_text(values) -> str | None:
    """The quick-search fields, case-folded and joined (a trigram index serves 3+ characters)."""
    return search_columns(values)[0]


def search_tokens(values) -> str | None:
    """Single characters and overlapping pairs of every run of letters and digits, Chinese
    and Latin alike (华信 -> 华 信 华信), for 1-2 character terms that a trigram index cannot
    serve. Phone fragments and pinyin initials are searched mid-string, so Latin runs are
    split the same way rather than kept as words."""
    return search_columns(values)[1]


def _tokens(parts) -> str | None:
    """Each run's characters and pairs, interleaved (c0 c0c1 c1 c1c2 ... cn), first
    occurrence kept: built with C-level map/zip rather than a loop per character."""
    tokens: dict = {}
    for part in parts:
        for run in _RUN.findall(part):
            tokens.update(dict.fromkeys(chain.from_iterable(zip(run, map(str.__add__, run, run[1:])))))
            tokens[run[-1]] = None
    return " ".join(tokens) or None


def term_tokens(term: str) -> list[str]:
    """The tokens a 1-2 character term must match."""
    return [t for t in _RUN.findall(fold(term)) if t]

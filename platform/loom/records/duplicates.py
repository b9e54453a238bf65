"""Duplicate detection (查重/撞单): rules that say when two records are the same thing.

A rule names fields and how to compare them. Each write stores the rule's normalized key
in an indexed column (`dup_<rule>`), so checking a new record is an index lookup, not a
table scan:

- normalize `text`: case-folded, width-folded (ＡＢＣ = ABC), without spaces and punctuation;
- `company`: the same, and without legal suffixes and a leading province or city
  (北京华信科技有限公司 = 华信科技 = 華信科技 Co., Ltd.), because people write a company's
  name all these ways;
- `phone`: the digits, without a leading country code 86; `email`: lower-cased.

`match: exact` compares keys; `match: similar` compares keys sharing their first two
characters (the indexed block) by bigram similarity against `threshold` — a typo in the
first two characters is not caught, the price of never scanning the table. A block can
hold thousands of keys (华信 at a million customers): the same key is always looked up on
its own, then the BLOCK_LIMIT keys nearest to it in index order (half on each side),
which share the longest prefix with it.

A match either blocks the write or warns (the write goes ahead when the caller confirms).
What a match shows depends on the reader: records they may read are listed; others say
only that a record exists — with its owner's name when the rule reveals owners.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import sqlalchemy as sa

from ..metadata.spec import DuplicateRule, ObjectSpec
from ..storage.database import fold

SUFFIXES = sorted([
    "股份有限公司", "有限责任公司", "集团有限公司", "有限公司", "集团公司", "股份公司", "分公司", "总公司", "公司", "集团",
    "coltd", "co", "ltd", "limited", "inc", "incorporated", "corp", "corporation", "company", "llc", "gmbh", "plc",
    "sa", "ag", "bv", "group", "holdings",
], key=len, reverse=True)
PLACES = sorted(["北京市", "上海市", "天津市", "重庆市", "北京", "上海", "天津", "重庆", "广州", "深圳", "杭州", "南京", "苏州",
                 "武汉", "成都", "西安", "长沙", "郑州", "济南", "青岛", "厦门", "福州", "合肥", "宁波", "无锡", "东莞", "佛山",
                 "沈阳", "大连", "哈尔滨", "长春", "石家庄", "太原", "南昌", "昆明", "贵阳", "南宁", "海口", "兰州", "乌鲁木齐",
                 "广东省", "广东", "江苏省", "江苏", "浙江省", "浙江", "山东省", "山东", "四川省", "四川", "湖北省", "湖北",
                 "香港", "台湾", "中国"], key=len, reverse=True)
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
_BRACKETS = re.compile(r"[(（\[【].*?[)）\]】]")


def normalize(kind: str, text) -> str | None:
    if text in (None, ""):
        return None
    value = unicodedata.normalize("NFKC", str(text))
    if kind == "phone":
        digits = re.sub(r"\D", "", value)
        if len(digits) > 11 and digits.startswith("86"):
            digits = digits[2:]
        return digits or None
    if kind == "email":
        return value.strip().lower() or None
    value = fold(value)
    if kind == "company":
        value = _BRACKETS.sub("", value)                   # 华信科技(上海)有限公司
        words = _NOT_WORD.sub(" ", value).split()
        while words and words[-1] in SUFFIXES:            # Acme Co., Ltd. / Acme Inc
            words.pop()
        value = "".join(words)
        for suffix in SUFFIXES:
            if value.endswith(suffix) and len(value) > len(suffix):
                value = value[: -len(suffix)]
                break
        for place in PLACES:
            if value.startswith(place) and len(value) > len(place) + 1:
                value = value[len(place):]
                break
    value = _NOT_WORD.sub("", value)
    return value[:255] or None


def key(rule: DuplicateRule, record: dict) -> str | None:
    parts = [normalize(rule.normalize, record.get(f)) for f in rule.fields]
    if all(p is None for p in parts):
        return None
    return "|".join(p or "" for p in parts)[:255]


def keys(obj: ObjectSpec, record: dict) -> dict:
    """{column: key} for every rule of the object (what the service stores)."""
    return {rule.column: key(rule, record) for rule in obj.duplicates}


def _bigrams(text: str) -> set:
    return {text[i:i + 2] for i in range(len(text) - 1)} or {text}


def _dice(pa: set, pb: set) -> float:
    return 2 * len(pa & pb) / (len(pa) + len(pb))


def similarity(a: str, b: str) -> float:
    """Dice coefficient over character bigrams (cheap, order-aware enough for names)."""
    if a == b:
        return 1.0
    return _dice(_bigrams(a), _bigrams(b))


@dataclass
class Match:
    rule: DuplicateRule
    id: int
    owner: int | None
    readable: bool
    title: str | None = None


BLOCK_LIMIT = 300


def find(conn, runtime, obj: ObjectSpec, record: dict, actor) -> list[Match]:
    """Records of `obj` (not deleted, not this one) that a rule says are the same."""
    table = runtime.table(obj)
    out, seen = [], set()
    for rule in obj.duplicates:
        value = key(rule, record)
        if value is None:
            continue
        col = table.c[rule.column]
        q = sa.select(table.c.id, table.c.owner, col).where(table.c.deleted_at.is_(None))
        if record.get("id") is not None:
            q = q.where(table.c.id != record["id"])
        same = q.where(col == value).limit(20)
        if rule.match == "exact" or len(value) < 3:
            rows = conn.execute(same).all()
        else:
            # one statement: the same key (whatever the block's size) and the block's keys
            # nearest to it on either side (each part walks the index); similarity in Python
            block, half = value[:2], BLOCK_LIMIT // 2
            above = q.where(col > value, col < block + "\uffff").order_by(col, table.c.id).limit(half)
            below = q.where(col < value, col >= block).order_by(col.desc(), table.c.id.desc()).limit(half)
            mine = _bigrams(value)
            rows = [r for r in conn.execute(sa.union_all(*[part.subquery().select() for part in (same, above, below)]))
                    if r[2] == value or _dice(mine, _bigrams(r[2] or "")) >= rule.threshold]
            rows.sort(key=lambda r: r[2] != value)   # the same key first
        for id_, owner, _k in rows:
            if (rule.name, id_) not in seen:
                seen.add((rule.name, id_))
                out.append(Match(rule, id_, owner, False))
    if out:   # titles of the matches the actor may read (one query: the policy's filter applies)
        titles = runtime.records.titles(obj, {m.id for m in out}, actor, conn=conn)
        for m in out:
            m.readable = m.id in titles
            m.title = titles.get(m.id)
    return out


def groups(conn, runtime, obj: ObjectSpec, actor, rule: DuplicateRule, limit: int = 200) -> list[list[dict]]:
    """撞单分析: groups of readable records sharing a rule's key, largest first."""
    table = runtime.table(obj)
    readable = runtime.records.policy.filter(conn, actor, obj, table)
    col = table.c[rule.column]
    dupes = (sa.select(col, sa.func.count().label("n")).where(table.c.deleted_at.is_(None), col.is_not(None), readable)
             .group_by(col).having(sa.func.count() > 1).order_by(sa.func.count().desc()).limit(limit)).subquery()
    rows = conn.execute(sa.select(table.c.id, table.c.owner, col).join(dupes, dupes.c[rule.column] == col)
                        .where(table.c.deleted_at.is_(None), readable).order_by(col, table.c.id)).all()
    out: dict = {}
    for id_, owner, k in rows:
        out.setdefault(k, []).append({"id": id_, "owner": owner})
    return [g for g in out.values() if len({m["owner"] for m in g}) >= 1]

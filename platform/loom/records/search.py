"""Quick search (快速检索): the condition for a search box's terms.

Each term (the box is split on spaces; all terms must match) is a case-folded substring
of the record's quick-search fields, whatever its length or script. The indexes that
make it fast are described in storage/search_index.py:

- 3+ characters: the trigram index; 1-2 characters: the token index; both confirmed
  against `search_text`, so an index can only narrow the candidates, never change the
  answer.
- SQLite's planner cannot tell a rare term from a common one, so the index's matches are
  counted first (at most COMMON + 1) and the term gets the plan that suits its count
  (measured at 1,000,000 rows with bench/list_bench.py; CPU ms for a page | a count):
  - rare (≤ RARE) and, outside a list page, middling: `id IN (the index's rowids)` — each
    match is fetched; a page sorts them, a capped count stops at cap + 1;
  - middling on a list page (inside `ordered_page()`): `id + 0 IN (the index's rowids)` —
    `+ 0` keeps the planner from fetching every match: it walks the sort index and tests
    each entry's id against the matches without reading the row (华信, 6,000 matches:
    6 ms instead of 19). A count must not do this: with no order to walk it scans the
    table until cap + 1 rows match (80 ms instead of 5), hence the page's hint;
  - common (> COMMON): no index at all — the list walks its sort index and checks each
    row; with matches everywhere a page fills after a few hundred rows.
- PostgreSQL estimates a term's matches well (token statistics; within 15x for the
  trigram LIKE), but once the sort order can be walked it walks it for every term: 8888
  (761 matches) then read 65,000 rows, 450 ms. So a term the planner expects to match at
  most PG_RARE rows becomes `ctid = ANY(ARRAY(its matches from the index))` — fetched by
  address and sorted, 15-30 ms; a common term is left to the planner (cond AND confirm),
  which walks the sort order: 2-4 ms.
"""
from __future__ import annotations

import contextlib
import contextvars
import json

import sqlalchemy as sa
from sqlalchemy.sql.expression import ColumnClause

from ..storage.database import fold
from ..storage.search_index import token_table, trigram_table
from .computed import term_tokens

RARE = 2000       # SQLite: up to this many index matches, fetch them all and sort
COMMON = 20000    # SQLite: more than this, walk the sort order checking rows (no index)
PG_RARE = 15000   # PostgreSQL: at most this many matches (the planner's estimate): fetch them first
MAX_TERMS = 5

_ORDERED = contextvars.ContextVar("loom_search_ordered_page", default=False)


@contextlib.contextmanager
def ordered_page():
    """Searches made inside are for one page in sort order (a list page), not a count or
    an export: middling terms may walk the sort index (see the module docstring)."""
    token = _ORDERED.set(True)
    try:
        yield
    finally:
        _ORDERED.reset(token)


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _quote_fts(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def terms(text: str) -> list[str]:
    out = []
    text = "".join(c for c in text if c.isprintable() or c.isspace())   # a NUL would end an FTS string
    for word in fold(text).split():
        if word not in out:
            out.append(word)
    return out[:MAX_TERMS]


def _contains(conn, column, term):
    if conn is not None and conn.dialect.name == "postgresql":
        return sa.func.strpos(column, term) > 0
    return sa.func.instr(column, term) > 0


def _sqlite_index(table, term):
    """(FTS table, MATCH query) that finds the term's candidates, or None when no index
    can (punctuation inside a short term: the confirmation alone decides)."""
    name = getattr(table, "element", table).name   # the table itself, also for an alias
    if len(term) >= 3:
        return trigram_table(name), _quote_fts(term)
    tokens = term_tokens(term)
    if len(tokens) != 1 or tokens[0] != term:
        return None
    return token_table(name), _quote_fts(term)


def _sqlite_candidates(conn, table, term):
    """A condition on the table's id from the right FTS index (see the module's
    docstring for the three plans), or None when the term is common or unindexed."""
    found = _sqlite_index(table, term)
    if found is None:
        return None
    fts, query = found
    quoted = conn.dialect.identifier_preparer.quote_identifier(fts)
    n = conn.exec_driver_sql(f"SELECT count(*) FROM (SELECT 1 FROM {quoted} WHERE {quoted} MATCH ? "
                             f"LIMIT {COMMON + 1})", (query,)).scalar()
    if n > COMMON:
        return None
    rowids = sa.select(sa.literal_column("rowid", sa.Integer)).select_from(sa.table(fts)) \
        .where(sa.literal_column(quoted).op("MATCH")(sa.bindparam(None, query, sa.String)))
    if n <= RARE or not _ORDERED.get():
        return table.c.id.in_(rowids)
    return (table.c.id + sa.literal_column("0", sa.Integer)).in_(rowids)


def _postgres_candidates(table, term):
    if len(term) >= 3:
        return table.c.search_text.like(f"%{escape_like(term)}%", escape="\\")
    tokens = term_tokens(term)
    if len(tokens) != 1 or tokens[0] != term:
        return None
    vector = sa.func.to_tsvector(sa.literal_column("'simple'"), sa.func.coalesce(table.c.search_tokens, ""))
    return vector.op("@@")(sa.func.plainto_tsquery(sa.literal_column("'simple'"), term))


def _term_clause(conn, table, term):
    confirm = _contains(conn, table.c.search_text, term)
    if conn is None:
        return confirm
    if conn.dialect.name == "sqlite":
        candidates = _sqlite_candidates(conn, table, term)
        return confirm if candidates is None else sa.and_(candidates, confirm)
    return _postgres_clause(conn, table, term, confirm)


def _postgres_clause(conn, table, term, confirm):
    """A rare term's matches are fetched first (by ctid, from the index); a common term
    is left to the planner, which walks the sort order (see the module docstring)."""
    candidates = _postgres_candidates(table, term)
    if candidates is None:
        return confirm
    inner = getattr(table, "element", table).alias()
    inner_candidates = _postgres_candidates(inner, term)
    if _estimated_rows(conn, sa.select(sa.literal(1)).select_from(inner).where(inner_candidates)) > PG_RARE:
        return sa.and_(candidates, confirm)
    matches = sa.func.array(sa.select(_ctid(inner)).where(inner_candidates).scalar_subquery())
    return sa.and_(_ctid(table) == sa.any_(matches), confirm)


def _ctid(table):
    """PostgreSQL's row address as a column of `table` (or of an alias of it)."""
    return ColumnClause("ctid", _selectable=table)


def _estimated_rows(conn, statement) -> float:
    compiled = statement.compile(conn)
    plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + compiled.string, compiled.params).scalar()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return float(plan[0]["Plan"]["Plan Rows"])


def search_clause(service, obj, table, text: str, conn=None, hidden=frozenset()):
    """Rows whose quick-search fields contain every term of `text`. Fields in `hidden`
    (which the searcher may not read) take no part: the indexes cover every quick-search
    field, so such a search looks at the readable fields themselves, unindexed."""
    words = terms(text)
    if not words:
        return sa.true()
    if "search_text" not in table.c or hidden:
        names = [n for n in obj.search.quick if n not in hidden and n in table.c] or \
                ([obj.title] if obj.title in table.c and obj.title not in hidden else ["id"])
        columns = [sa.func.lower(sa.cast(table.c[n], sa.Text)) for n in names]
        return sa.and_(*[sa.or_(*[c.like(f"%{escape_like(w)}%", escape="\\") for c in columns]) for w in words])
    return sa.and_(*[_term_clause(conn, table, w) for w in words])

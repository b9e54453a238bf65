"""Date buckets of a report's groups: day, week, month, quarter, year.

A bucket is computed in SQL as a text key that sorts in time order and reads the same on
SQLite and PostgreSQL:

    day      2024-06-03        week     2024-06-03 (its Monday; shown as 2024-W23)
    month    2024-06           quarter  2024-Q2            year   2024

A datetime is bucketed by its day in the application's time zone (runtime.spec.timezone),
so an order placed at 2024-06-30 23:30 in Shanghai (15:30 UTC) counts in June, and one at
2024-07-01 00:10 (June 30, 16:10 UTC) in July.
"""
from __future__ import annotations

import calendar
import datetime as dt

import sqlalchemy as sa

BUCKETS = ("day", "week", "month", "quarter", "year")


def key_sql(expr, bucket: str, dialect: str, *, local_date=None):
    """The bucket key of a date expression (or of a timestamp: pass local_date, which turns
    it into its local day first)."""
    day = local_date(expr) if local_date is not None else expr
    if dialect == "postgresql":
        if bucket == "week":
            return sa.func.to_char(sa.func.date_trunc("week", day), "YYYY-MM-DD", type_=sa.String)
        pattern = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "quarter": 'YYYY-"Q"Q', "year": "YYYY"}[bucket]
        return sa.func.to_char(day, pattern, type_=sa.String)
    # SQLite keeps dates as ISO text; its date functions read them directly
    if bucket == "day":
        return sa.func.date(day, type_=sa.String)
    if bucket == "week":   # the Monday on or before the day
        return sa.func.date(day, "weekday 0", "-6 days", type_=sa.String)
    if bucket == "month":
        return sa.func.strftime("%Y-%m", day, type_=sa.String)
    if bucket == "year":
        return sa.func.strftime("%Y", day, type_=sa.String)
    month = sa.cast(sa.func.strftime("%m", day), sa.Integer)
    return sa.func.strftime("%Y", day, type_=sa.String) + sa.literal("-Q", sa.String) + \
        sa.cast((month + 2) // 3, sa.String)


def key_of(day: dt.date, bucket: str) -> str:
    """The same key computed in Python (tests and callers that bucket a single date)."""
    if bucket == "day":
        return day.isoformat()
    if bucket == "week":
        return (day - dt.timedelta(days=day.weekday())).isoformat()
    if bucket == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if bucket == "quarter":
        return f"{day.year:04d}-Q{(day.month + 2) // 3}"
    return f"{day.year:04d}"


def label(key, bucket: str) -> str:
    """How a key is shown: weeks as ISO weeks (2024-W23), the others as they are."""
    if key is None or bucket != "week":
        return key
    try:
        year, week, _day = dt.date.fromisoformat(key).isocalendar()
    except ValueError:
        return key
    return f"{year:04d}-W{week:02d}"


def days(key: str, bucket: str) -> tuple[dt.date, dt.date] | None:
    """The first and last day of a bucket (for a list filtered to it)."""
    try:
        if bucket == "day":
            d = dt.date.fromisoformat(key)
            return d, d
        if bucket == "week":
            d = dt.date.fromisoformat(key)
            return d, d + dt.timedelta(days=6)
        if bucket == "month":
            year, month = int(key[:4]), int(key[5:7])
            return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])
        if bucket == "quarter":
            year, quarter = int(key[:4]), int(key[-1])
            first = dt.date(year, 3 * quarter - 2, 1)
            last_month = 3 * quarter
            return first, dt.date(year, last_month, calendar.monthrange(year, last_month)[1])
        if bucket == "year":
            year = int(key)
            return dt.date(year, 1, 1), dt.date(year, 12, 31)
    except (TypeError, ValueError):
        return None
    return None

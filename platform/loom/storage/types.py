"""Column types that behave the same on SQLite and PostgreSQL.

- `Decimal`: exact NUMERIC on PostgreSQL. SQLite has no decimal type, so values are
  stored as REAL and rounded back to the field's scale when read; exact for the 15
  significant digits business amounts use.
- `UTCDateTime`: timestamps stored in UTC (naive on SQLite, timestamptz on PostgreSQL)
  and always returned timezone-aware.
"""
from __future__ import annotations

import datetime as dt
import decimal

from sqlalchemy import DateTime, Float, Numeric
from sqlalchemy.types import TypeDecorator

UTC = dt.timezone.utc


class Decimal(TypeDecorator):
    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2):
        super().__init__()
        self.precision, self.scale = precision, scale
        self._quantum = decimal.Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Float())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = decimal.Decimal(str(value)) if not isinstance(value, decimal.Decimal) else value
        value = value.quantize(self._quantum, rounding=decimal.ROUND_HALF_UP)  # as PostgreSQL rounds
        return float(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return decimal.Decimal(repr(value) if isinstance(value, float) else str(value)).quantize(
            self._quantum, rounding=decimal.ROUND_HALF_EVEN)

    @property
    def python_type(self):
        return decimal.Decimal


class UTCDateTime(TypeDecorator):
    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(DateTime(timezone=dialect.name != "sqlite"))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            return value.replace(tzinfo=None) if dialect.name == "sqlite" else value
        if isinstance(value, dt.date):  # a date compared with a timestamp: its midnight, UTC
            return self.process_bind_param(dt.datetime(value.year, value.month, value.day), dialect)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def python_type(self):
        return dt.datetime

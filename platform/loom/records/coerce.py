"""Turning input (form strings, JSON values, spreadsheet cells) into typed field values.

`coerce(field, raw, tz)` returns the value in the field's Python type, or raises
`Invalid` with a message for people. Checks that need only the value itself (lengths,
patterns, ranges, formats) happen here too; checks that need the database (unique,
lookups, dictionaries) are the service's.
"""
from __future__ import annotations

import datetime as dt
import decimal
import re

from ..i18n import Message, _
from ..metadata.spec import FieldSpec, Var

EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']+\.[^@\s<>\"'.]{2,}$")
PHONE = re.compile(r"^\+?[0-9 ()\-.]{3,30}(\s*(ext|x|转|分机)\.?\s*[0-9]{1,6})?$", re.IGNORECASE)
URL = re.compile(r"^https?://[^\s/$.?#].[^\s]*$", re.IGNORECASE)
TRUE = {"true", "1", "yes", "y", "on", "是", "t"}
FALSE = {"false", "0", "no", "n", "off", "否", "f"}


class Invalid(ValueError):
    def __init__(self, message: str, **params):
        self.msg = Message(message, **params)
        super().__init__(self.msg.text("en"))


def _text(raw) -> str:
    if isinstance(raw, (dict, list, tuple, set, bytes)):
        raise Invalid(_("expected a text"))
    return raw if isinstance(raw, str) else str(raw)


def _decimal(f: FieldSpec, raw) -> decimal.Decimal:
    if isinstance(raw, bool):
        raise Invalid(_("expected a number"))
    try:
        text = raw.strip().replace(",", "").replace("，", "").rstrip("%") if isinstance(raw, str) else raw
        value = decimal.Decimal(str(text))
    except (decimal.InvalidOperation, ValueError):
        raise Invalid(_("'{value}' is not a number"), value=str(raw)[:40]) from None
    if not value.is_finite():
        raise Invalid(_("'{value}' is not a number"), value=str(raw)[:40])
    scale = f.scale if f.scale is not None else 2
    # before quantize, which fails outright on numbers of more digits than the context holds
    if value and value.adjusted() >= (f.precision or 18) - scale:
        raise Invalid(_("the number is too large"))
    if value != value.quantize(decimal.Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_EVEN):
        raise Invalid(_("at most {n} decimal places"), n=scale)
    value = value.quantize(decimal.Decimal(1).scaleb(-scale))
    digits = len(value.as_tuple().digits) - max(0, -value.as_tuple().exponent) if value else 0
    if digits > (f.precision or 18) - scale:
        raise Invalid(_("the number is too large"))
    return value


def _integer(raw) -> int:
    if isinstance(raw, bool):
        raise Invalid(_("expected a whole number"))
    if isinstance(raw, int):
        value = raw
    else:
        try:
            number = decimal.Decimal(str(raw).strip().replace(",", ""))
        except decimal.InvalidOperation:
            raise Invalid(_("'{value}' is not a whole number"), value=str(raw)[:40]) from None
        if not number.is_finite() or number != number.to_integral_value():
            raise Invalid(_("'{value}' is not a whole number"), value=str(raw)[:40])
        value = int(number)
    if not -(2 ** 31) < value < 2 ** 31:
        raise Invalid(_("the number is too large"))
    return value


def _date(raw, tz) -> dt.date:
    if isinstance(raw, dt.datetime):
        return raw.astimezone(tz).date() if raw.tzinfo else raw.date()
    if isinstance(raw, dt.date):
        return raw
    text = _text(raw).strip().replace("/", "-").replace("年", "-").replace("月", "-").replace("日", "")
    try:
        return dt.date.fromisoformat(text[:10]) if len(text) >= 10 else dt.date(*map(int, text.split("-")))
    except (ValueError, TypeError):
        raise Invalid(_("'{value}' is not a date (expected YYYY-MM-DD)"), value=str(raw)[:40]) from None


def _datetime(raw, tz) -> dt.datetime:
    if isinstance(raw, dt.datetime):
        value = raw
    elif isinstance(raw, dt.date):
        value = dt.datetime(raw.year, raw.month, raw.day)
    else:
        text = _text(raw).strip().replace("Z", "+00:00")
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise Invalid(_("'{value}' is not a date and time (expected YYYY-MM-DD HH:MM)"), value=str(raw)[:40]) from None
    return (value.replace(tzinfo=tz) if value.tzinfo is None else value).astimezone(dt.timezone.utc)


def _boolean(raw) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    text = _text(raw).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise Invalid(_("expected yes or no"))


def is_empty(raw) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip()) or (isinstance(raw, (list, tuple)) and not raw)


def coerce(f: FieldSpec, raw, tz=dt.timezone.utc):
    """The typed value of `raw` for field `f`; None for empty input."""
    if is_empty(raw):
        return [] if f.type == "dictionary" and f.multiple else None
    t = f.value_type
    if t in ("text", "textarea", "email", "phone", "url", "autonumber", "mnemonic"):
        value = _text(raw)
        if f.trim and t != "textarea":
            value = value.strip()
        elif t == "textarea":
            value = value.rstrip()
        if "\x00" in value:
            raise Invalid(_("the text contains a NUL character"))
        if t == "email":
            value = value.strip()
            if not EMAIL.match(value):
                raise Invalid(_("'{value}' is not an e-mail address"), value=value[:60])
        elif t == "phone" and not PHONE.match(value):
            raise Invalid(_("'{value}' is not a phone number"), value=value[:40])
        elif t == "url":
            if not re.match(r"^[a-z][a-z0-9+.-]*://", value, re.IGNORECASE):
                value = "https://" + value
            if not URL.match(value):
                raise Invalid(_("'{value}' is not a web address"), value=value[:60])
        if f.max_length and len(value) > f.max_length:
            raise Invalid(_("at most {n} characters (got {got})"), n=f.max_length, got=len(value))
        if f.min_length and len(value) < f.min_length:
            raise Invalid(_("at least {n} characters"), n=f.min_length)
        if f.pattern and not re.fullmatch(f.pattern, value):
            raise Invalid(_("'{value}' does not have the expected format"), value=value[:60])
        return value
    if t == "integer":
        return _integer(raw)
    if t in ("decimal", "percent", "money"):
        return _decimal(f, raw)
    if t == "boolean":
        return _boolean(raw)
    if t == "date":
        return _date(raw, tz)
    if t == "datetime":
        return _datetime(raw, tz)
    if t in ("lookup", "user", "department"):
        if isinstance(raw, dict) and "id" in raw:
            raw = raw["id"]
        try:
            return _integer(raw)
        except Invalid:
            raise Invalid(_("expected a record id")) from None
    if t == "dictionary":
        if f.multiple:
            items = raw.replace("，", ",").split(",") if isinstance(raw, str) else raw
            if not isinstance(items, (list, tuple, set)):
                raise Invalid(_("expected a list of codes"))
            return sorted({_text(i).strip() for i in items if not is_empty(i)})
        return _text(raw).strip()
    if t == "state":
        return _text(raw)
    if t == "file":
        if not isinstance(raw, dict) or not {"name", "size"} <= set(raw):
            raise Invalid(_("expected an uploaded file"))
        if f.max_size and int(raw["size"]) > f.max_size:
            raise Invalid(_("the file is larger than {n} bytes"), n=f.max_size)
        if f.accept and raw.get("type") not in f.accept:
            raise Invalid(_("files of type {type} are not accepted"), type=raw.get("type"))
        return {k: raw[k] for k in ("name", "size", "type", "key") if k in raw}
    raise Invalid(_("this field cannot be set"))


def bound(f: FieldSpec, raw, ctx):
    """A min/max bound as a value of the field's type ($today-style variables resolved)."""
    if raw is None:
        return None
    if isinstance(raw, Var):
        if raw.name == "today":
            return ctx.today + dt.timedelta(days=raw.offset)
        if raw.name == "now":
            return ctx.now + dt.timedelta(**{("hours" if raw.unit == "h" else "days"): raw.offset})
        return None
    return coerce(f, raw, ctx.timezone)


def check_range(f: FieldSpec, value, ctx):
    if value is None or f.value_type not in ("integer", "decimal", "percent", "money", "date", "datetime"):
        return
    low, high = bound(f, f.min, ctx), bound(f, f.max, ctx)
    if f.value_type == "datetime":
        low = _datetime(low, ctx.timezone) if low is not None else None
        high = _datetime(high, ctx.timezone) if high is not None else None
    elif f.value_type == "date":
        low = _date(low, ctx.timezone) if low is not None else None
        high = _date(high, ctx.timezone) if high is not None else None
    if low is not None and value < low:
        raise Invalid(_("must be at least {n}"), n=str(low))
    if high is not None and value > high:
        raise Invalid(_("must be at most {n}"), n=str(high))

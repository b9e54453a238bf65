"""The month view of `list.calendar`: records placed on the days from their start field to
their end field (when the calendar names one), over the weeks the month's grid shows."""
from __future__ import annotations

import calendar as cal
import datetime as dt
from zoneinfo import ZoneInfo

from ..metadata.spec import All, Any_, Compare
from . import listing

LIMIT = 500


def _day(value, field, tz):
    return value.astimezone(tz).date() if field.type == "datetime" else value


def month_view(runtime, actor, obj, args, lang):
    tz = ZoneInfo(runtime.spec.timezone)
    today = dt.datetime.now(tz).date()
    try:
        year, month = map(int, (args.get("month") or today.strftime("%Y-%m")).split("-"))
        first = dt.date(year, month, 1)
    except ValueError:
        first = today.replace(day=1)
    last = first.replace(day=cal.monthrange(first.year, first.month)[1])
    weeks = cal.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month)
    shown_from, shown_to = weeks[0][0], weeks[-1][-1]
    spec = obj.list.calendar
    start_field = obj.fields[spec.start]
    end_field = obj.fields[spec.end] if spec.end else None
    state, base, _schemes = listing.view(runtime, actor, obj, args)
    if end_field is None:
        within = Compare((spec.start,), "between", (shown_from.isoformat(), shown_to.isoformat()))
    else:   # overlaps the grid: starts before its end, and ends (or, without an end, starts) after its start
        within = All((Compare((spec.start,), "lte", shown_to.isoformat()),
                      Any_((Compare((spec.end,), "gte", shown_from.isoformat()),
                            All((Compare((spec.end,), "is_null"),
                                 Compare((spec.start,), "gte", shown_from.isoformat())))))))
    where = All((base, within)) if base is not None else within
    page = runtime.records.query(obj, actor, where=where, search=state.q, sort=[spec.start], limit=LIMIT)
    days: dict = {}
    for row in page.rows:
        if row.get(spec.start) is None:
            continue
        begins = _day(row[spec.start], start_field, tz)
        ends = _day(row[spec.end], end_field, tz) if end_field and row.get(spec.end) else begins
        day = max(begins, shown_from)
        while day <= min(max(ends, begins), shown_to):
            days.setdefault(day, []).append((row, day != begins))   # (record, continued from an earlier day)
            day += dt.timedelta(days=1)
    previous = (first - dt.timedelta(days=1)).replace(day=1)
    following = last + dt.timedelta(days=1)
    return dict(obj=obj, weeks=weeks, days=days, first=first, today=today, title_field=spec.title or obj.title,
                previous=previous.strftime("%Y-%m"), following=following.strftime("%Y-%m"), more=page.has_more,
                time=start_field.type == "datetime", tz=tz)

"""Reports (METADATA.md section 8): groups and measures over the rows a viewer may read,
drawn as server-side SVG charts, served at /reports/ (see docs/reports.md).

    from loom.reports import run
    result = run(runtime, actor, "opportunity_funnel")
    for row in result.rows:
        print([result.text(i, v) for i, v in enumerate(row)])

Modules: query.py (the SQL and the Result), buckets.py (date buckets), charts.py (SVG),
drill.py (links from a group to the object's list), web.py (the pages).
"""
from __future__ import annotations

from .query import MAX_GROUPS, Column, Group, ReportRefused, Result, run

__all__ = ["MAX_GROUPS", "Column", "Group", "ReportRefused", "Result", "run"]

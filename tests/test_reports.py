"""Reports on the shipped CRM, on SQLite and PostgreSQL: what they count, for whom, and how
they are shown.

Every number a report gives is checked against the same number computed in Python from
the records the viewer can read through the record service (runtime.records.query), so
"a report only ever counts rows its viewer may read" is tested for each kind of viewer:
a sales rep (their own records), a sales manager (their department tree), finance (all),
an administrator. Dates are bucketed around month, quarter and year ends in the app's time
zone (Asia/Shanghai), where a UTC bucket would be wrong by a day. Field security: a
measure of a field one may not read is left out, a group by one is refused. The pages are
read as a browser would: the SVG parses, the table shows the values, each group links to
the list of exactly the records it counts, the CSV export is guarded against formulas.

One application per backend serves the module (it only reads after the set-up); test
reports beside the shipped ones come from an overlay folder.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import decimal
import html
import io
import re
import textwrap
import xml.etree.ElementTree as ET
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest

from loom.metadata.build import build_report
from loom.metadata.spec import Compare
from loom.reports import ReportRefused, run
from loom.reports import buckets, charts
from loom.reports.query import Group
from loom.records.errors import NotFound
from loom.security.actor import Actor
from loom.security.organization import create_user

from conftest import create_postgres_database
from web_helpers import actor, make_app, runtime_of, signed_in

TZ = ZoneInfo("Asia/Shanghai")
SYSTEM = Actor.system()
SVG = "{http://www.w3.org/2000/svg}"
D = decimal.Decimal
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

OVERLAY = {
    "revenue_by_industry.yaml": """
        report: revenue_by_industry
        object: customer
        label: {en: Revenue by industry, zh: 行业营业额}
        group_by: [industry]
        measures: [{agg: count}, {agg: sum, field: annual_revenue}]
        chart: bar
    """,
    "customers_by_revenue.yaml": """
        report: customers_by_revenue
        object: customer
        label: {en: Customers by revenue, zh: 按营业额}
        group_by: [annual_revenue]
        measures: [{agg: count}]
        chart: table
    """,
    "opportunities_by_customer.yaml": """
        report: opportunities_by_customer
        object: opportunity
        label: {en: Opportunities by customer, zh: 客户商机}
        group_by: [customer]
        measures: [{agg: count}, {agg: sum, field: amount}]
        chart: pie
    """,
    "requests_by_quarter.yaml": """
        report: requests_by_quarter
        object: service_request
        label: {en: Requests by quarter, zh: 季度工单}
        group_by: [{field: reported_at, bucket: quarter}, severity]
        measures: [{agg: count}]
        chart: line
    """,
}


# ---- the world ------------------------------------------------------------------------------------

class World:
    def __init__(self, app, backend):
        self.app, self.backend = app, backend
        self.rt = runtime_of(app)
        self.ids: dict = {}

    def actor(self, username):
        return actor(self.app, username)

    def client(self, username, lang="en"):
        return signed_in(self.app, username, lang)


def _local(text):
    """A moment written in Shanghai time."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=TZ)


def build(w: World):
    rt = w.rt
    create_user(rt, "rep9", name="Rep9", password="secret123", roles=["sales_rep"], department="service")
    uid = {u: w.actor(u).id for u in ("admin", "rep1", "rep2", "mgr", "rep9")}

    def make(obj, owner, **values):
        return rt.records.create(obj, dict(values, owner=uid[owner]), SYSTEM)["id"]

    c = w.ids
    c["huaxin"] = make("customer", "rep1", name="华信科技有限公司", industry="it", annual_revenue="1000000")
    c["evil"] = make("customer", "rep1", name="=1+2 恶意公司", industry="manufacturing", annual_revenue="500000.50")
    c["north"] = make("customer", "rep2", name="北方制造集团", industry="manufacturing")
    c["south"] = make("customer", "rep9", name="南方零售", industry="retail", annual_revenue="250000")
    c["plain"] = make("customer", "admin", name="Plain Ltd")
    opps = [  # owner, customer, stage, amount, expected close, competitors
        ("rep1", "huaxin", "initial", "100.10", "2024-01-31", []),
        ("rep1", "huaxin", "needs", "200.20", "2024-02-01", []),
        ("rep1", "evil", "initial", "300.35", "2024-03-31", []),
        ("rep1", "evil", "proposal", "1000", "2024-04-01", ["yonyou"]),
        ("rep2", "north", "initial", "50.05", "2023-12-31", []),
        ("rep2", "north", "negotiation", "70", "2024-06-30", ["yonyou", "kingdee"]),
        ("rep2", "huaxin", "needs", "80", "2024-07-01", []),          # rep2 may not read rep1's customer
        ("rep9", "south", "contract", "999.99", "2024-12-31", []),
        ("admin", "plain", "initial", "12.5", "2025-01-01", []),
    ]
    for i, (owner, customer, stage, amount, close, competitors) in enumerate(opps):
        c[f"opp{i}"] = make("opportunity", owner, name=f"Deal {i}", customer=c[customer], stage=stage, amount=amount,
                            expected_close_date=close, competitors=competitors)
    for i in (3, 5):
        rt.workflows.transition("opportunity", c[f"opp{i}"], "win", SYSTEM)
    binned = make("opportunity", "rep1", name="Binned", customer=c["huaxin"], amount="5", expected_close_date="2024-01-15")
    rt.records.delete("opportunity", binned, SYSTEM)       # the recycle bin is not counted
    requests = [  # reported at (Shanghai unless UTC is said), type, severity
        (_local("2024-03-31T23:30"), "INS", "critical"),
        (_local("2024-04-01T00:10"), "INS", "major"),        # 2024-03-31 16:10 UTC
        (_local("2023-12-31T23:59"), "REP", "critical"),
        (_local("2024-01-01T00:00"), "REP", "minor"),        # 2023-12-31 16:00 UTC
        (dt.datetime(2024, 6, 30, 12, 0, tzinfo=dt.timezone.utc), "REP", "critical"),
        (dt.datetime(2024, 6, 30, 16, 30, tzinfo=dt.timezone.utc), "MNT", "trivial"),   # July 1st in Shanghai
        (_local("2024-09-30T23:59:59"), "MNT", "minor"),
    ]
    for i, (at, kind, severity) in enumerate(requests):
        c[f"sr{i}"] = make("service_request", "rep1", subject=f"Request {i}", customer=c["huaxin" if i % 2 else "north"],
                           service_type=kind, severity=severity, reported_at=at, description="…",
                           priority="urgent" if severity == "critical" else "normal")


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, crm_metadata, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"reports_{request.param}")
    overlay = tmp / "overlay" / "reports"
    overlay.mkdir(parents=True)
    for name, text in OVERLAY.items():
        (overlay / name).write_text(textwrap.dedent(text), encoding="utf-8")
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp / 'reports.db'}", (lambda: None)
    else:
        url, drop = create_postgres_database()
    app = make_app(crm_metadata, tmp, LOOM_DATABASE_URL=url, LOOM_OVERLAY=str(tmp / "overlay"))
    w = World(app, request.param)
    try:
        build(w)
        yield w
    finally:
        w.rt.close()
        drop()


# ---- the oracle: the same numbers from the records the viewer can read -------------------------------

def readable(w, obj, who, where=None) -> list:
    page = w.rt.records.query(obj, who, where=where, limit=1000)
    assert not page.has_more
    return page.rows


def report(raw, name="t"):
    return build_report(name, raw)


def by_group(result) -> dict:
    """{group values: measure values} of a result."""
    n = len(result.groups)
    return {tuple(g.value for g in row[:n]): tuple(row[n:]) for row in result.rows}


def aggregate(rows, field, agg, scale=2):
    values = [r.get(field) for r in rows] if field else rows
    if agg == "count":
        return len(rows) if field is None else sum(v is not None for v in values)
    present = [v for v in values if v is not None]
    if not present:
        return None
    if agg == "sum":
        return sum(present, D(0))
    if agg == "avg":
        return (sum(present, D(0)) / len(present)).quantize(D(1).scaleb(-scale), rounding=decimal.ROUND_HALF_UP)
    return min(present) if agg == "min" else max(present)


def oracle(rows, key, measures) -> dict:
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {k: tuple(aggregate(rs, f, a) for a, f in measures) for k, rs in groups.items()}


MEASURES = [{"agg": "count"}, {"agg": "sum", "field": "amount"}, {"agg": "avg", "field": "amount"},
            {"agg": "min", "field": "expected_close_date"}, {"agg": "max", "field": "amount"}]
PAIRS = [(m["agg"], m.get("field")) for m in MEASURES]
VIEWERS = ("admin", "rep1", "rep2", "mgr", "fin", "rep9")


# ---- what reports count ---------------------------------------------------------------------------------

def test_group_by_dictionary_with_every_measure(world):
    w = world
    spec = report({"object": "opportunity", "group_by": ["stage"], "measures": MEASURES})
    for who in VIEWERS:
        viewer = w.actor(who)
        result = run(w.rt, viewer, spec, lang="en")
        rows = readable(w, "opportunity", viewer)
        expected = oracle(rows, lambda r: (r["stage"],), PAIRS)
        assert by_group(result) == expected, who
        assert result.totals[1:] == tuple(aggregate(rows, f, a) for a, f in PAIRS), who
    # stages in the dictionary's order (the funnel's order), labels and colours from it
    result = run(w.rt, w.actor("admin"), spec, lang="zh")
    stages = list(w.rt.spec.dictionaries["opportunity_stage"].items)
    shown = [row[0].value for row in result.rows]
    assert shown == sorted(shown, key=stages.index)
    first = result.rows[0][0]
    assert first == Group("initial", "初步接洽", "gray")
    assert [c.label for c in result.columns] == ["销售阶段", "数量", "预计金额合计", "平均预计金额", "最小预计成交日期",
                                                 "最大预计金额"]


def test_a_rep_counts_their_own_rows_a_manager_their_department_tree(world):
    w = world
    spec = report({"object": "opportunity", "group_by": ["owner"], "measures": [{"agg": "count"},
                                                                                {"agg": "sum", "field": "amount"}]})
    owners = {u: w.actor(u).id for u in ("rep1", "rep2", "rep9", "admin")}
    seen = {}
    for who in ("rep1", "rep2", "mgr", "fin", "admin"):
        result = run(w.rt, w.actor(who), spec)
        seen[who] = {g[0]: m for g, m in by_group(result).items()}
        rows = readable(w, "opportunity", w.actor(who))
        assert seen[who] == {k[0]: v for k, v in oracle(rows, lambda r: (r["owner"],), [("count", None),
                                                                                       ("sum", "amount")]).items()}
    assert set(seen["rep1"]) == {owners["rep1"]}
    assert seen["rep1"][owners["rep1"]] == (4, D("1600.65"))            # not the binned one
    assert set(seen["rep2"]) == {owners["rep2"]}
    assert set(seen["mgr"]) == {owners["rep1"], owners["rep2"]}         # sales tree: not service, not HQ
    assert set(seen["fin"]) == set(seen["admin"]) == set(owners.values())
    total = run(w.rt, w.actor("mgr"), spec).totals
    assert total[1:] == (7, D("1600.65") + D("200.05"))


def test_group_by_a_path_through_a_lookup(world):
    w = world
    spec = report({"object": "opportunity", "group_by": ["customer.industry"],
                   "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}]})
    for who in VIEWERS:
        viewer = w.actor(who)
        industries = {c["id"]: c.get("industry") for c in readable(w, "customer", viewer)}
        rows = readable(w, "opportunity", viewer)
        expected = oracle(rows, lambda r: (industries.get(r["customer"]),), [("count", None), ("sum", "amount")])
        assert by_group(run(w.rt, viewer, spec)) == expected, who
    # rep2 may not read rep1's customer: their deal with it counts as having no industry
    rep2 = by_group(run(w.rt, w.actor("rep2"), spec, lang="en"))
    assert rep2[(None,)] == (1, D("80.00"))
    labels = [row[0].label for row in run(w.rt, w.actor("rep2"), spec, lang="en").rows]
    assert labels == ["Manufacturing", "(empty)"]


def test_group_by_a_lookup_shows_titles_only_of_readable_records(world):
    w = world
    spec = report({"object": "opportunity", "group_by": ["customer"], "measures": [{"agg": "count"}]})
    rep2 = run(w.rt, w.actor("rep2"), spec)
    labels = {row[0].value: row[0].label for row in rep2.rows}
    assert labels[w.ids["north"]] == "北方制造集团"
    assert labels[w.ids["huaxin"]] == f"#{w.ids['huaxin']}"           # a customer rep2 may not read
    admin = run(w.rt, w.actor("admin"), spec)
    assert [row[0].label for row in admin.rows] == sorted(row[0].label for row in admin.rows)   # by title


DATES = {"day": "2024-03-31", "week": "2024-03-25", "month": "2024-03", "quarter": "2024-Q1", "year": "2024"}


@pytest.mark.parametrize("bucket", buckets.BUCKETS)
def test_datetime_buckets_follow_the_app_time_zone(world, bucket):
    w = world
    spec = report({"object": "service_request", "group_by": [{"field": "reported_at", "bucket": bucket}],
                   "measures": [{"agg": "count"}]})
    result = run(w.rt, w.actor("admin"), spec)
    rows = readable(w, "service_request", w.actor("admin"))
    expected = oracle(rows, lambda r: (buckets.key_of(r["reported_at"].astimezone(TZ).date(), bucket),),
                      [("count", None)])
    assert by_group(result) == expected
    keys = [row[0].value for row in result.rows]
    assert keys == sorted(keys)                                          # in time order
    got = {row[0].value: row[1] for row in result.rows}
    if bucket == "month":
        # 23:30 on March 31st and 00:10 on April 1st in Shanghai: both March 31st in UTC
        assert got == {"2023-12": 1, "2024-01": 1, "2024-03": 1, "2024-04": 1, "2024-06": 1, "2024-07": 1, "2024-09": 1}
    if bucket == "quarter":
        assert got == {"2023-Q4": 1, "2024-Q1": 2, "2024-Q2": 2, "2024-Q3": 2}
        assert [row[0].label for row in result.rows] == ["2023-Q4", "2024-Q1", "2024-Q2", "2024-Q3"]
    if bucket == "year":
        assert got == {"2023": 1, "2024": 6}
    if bucket == "week":
        assert all(re.fullmatch(r"\d{4}-W\d{2}", row[0].label) for row in result.rows)
        assert "2024-W01" in [row[0].label for row in result.rows]       # Monday 2024-01-01


@pytest.mark.parametrize("bucket", buckets.BUCKETS)
def test_date_buckets_around_month_ends(world, bucket):
    w = world
    spec = report({"object": "opportunity", "group_by": [{"field": "expected_close_date", "bucket": bucket}],
                   "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}]})
    for who in ("admin", "mgr", "rep1"):
        result = run(w.rt, w.actor(who), spec)
        rows = readable(w, "opportunity", w.actor(who))
        expected = oracle(rows, lambda r: (buckets.key_of(r["expected_close_date"], bucket),),
                          [("count", None), ("sum", "amount")])
        assert by_group(result) == expected, who
    if bucket == "quarter":
        admin = {row[0].value: row[1] for row in run(w.rt, w.actor("admin"), spec).rows}
        assert admin == {"2023-Q4": 1, "2024-Q1": 3, "2024-Q2": 2, "2024-Q3": 1, "2024-Q4": 1, "2025-Q1": 1}


def test_buckets_in_python_and_their_days():
    assert buckets.key_of(dt.date(2024, 12, 30), "week") == "2024-12-30"
    assert buckets.label("2024-12-30", "week") == "2025-W01"             # ISO weeks
    assert buckets.days("2024-02", "month") == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    assert buckets.days("2024-Q4", "quarter") == (dt.date(2024, 10, 1), dt.date(2024, 12, 31))
    assert buckets.days("2023", "year") == (dt.date(2023, 1, 1), dt.date(2023, 12, 31))
    assert buckets.days("2024-03-25", "week") == (dt.date(2024, 3, 25), dt.date(2024, 3, 31))
    assert buckets.days("junk", "month") is None


def test_where_two_groups_sort_and_limit(world):
    w = world
    where = {"all": [{"field": "amount", "op": "gte", "value": 70}, {"field": "state", "op": "eq", "value": "open"}]}
    spec = report({"object": "opportunity", "where": where, "group_by": ["stage", "owner"],
                   "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}]})
    from loom.records.conditions_input import parse_condition
    cond = parse_condition(w.rt.spec, "opportunity", where)
    for who in ("admin", "mgr", "rep1"):
        rows = readable(w, "opportunity", w.actor(who), cond)
        expected = oracle(rows, lambda r: (r["stage"], r["owner"]), [("count", None), ("sum", "amount")])
        assert by_group(run(w.rt, w.actor(who), spec)) == expected, who
    top = report({"object": "opportunity", "group_by": ["owner"], "measures": [{"agg": "sum", "field": "amount"}],
                  "sort": ["-sum_amount"], "limit": 2})
    result = run(w.rt, w.actor("admin"), top)
    sums = [row[1] for row in result.rows]
    assert len(sums) == 2 and sums == sorted(sums, reverse=True)
    assert sums[0] == D("1600.65")
    every = readable(w, "opportunity", w.actor("admin"))
    assert result.totals[1] == sum(r["amount"] for r in every)           # totals cover the rows not shown
    assert not result.truncated
    # the shipped pipeline report: open deals, largest pipeline first
    shipped = run(w.rt, w.actor("mgr"), "pipeline_by_owner")
    amounts = [row[1] for row in shipped.rows]
    assert amounts == sorted(amounts, reverse=True)


def test_filters_narrow_a_report_with_the_viewers_fields_only(world):
    w = world
    spec = report({"object": "opportunity", "group_by": ["stage"], "measures": [{"agg": "count"}]})
    narrowed = run(w.rt, w.actor("admin"), spec, {"field": "owner", "op": "eq", "value": w.actor("rep2").id})
    assert by_group(narrowed) == {("initial",): (1,), ("needs",): (1,), ("negotiation",): (1,)}
    condition = Compare(("stage",), "eq", "initial")
    assert by_group(run(w.rt, w.actor("rep1"), spec, condition)) == {("initial",): (2,)}
    from loom.records.errors import ValidationError
    customers = report({"object": "customer", "group_by": ["industry"], "measures": [{"agg": "count"}]})
    with pytest.raises(ValidationError):   # a rep may not filter by revenue they may not read
        run(w.rt, w.actor("rep1"), customers, {"field": "annual_revenue", "op": "gt", "value": 1})


def test_a_multi_value_group_counts_a_record_in_each_of_its_codes(world):
    w = world
    spec = report({"object": "opportunity", "group_by": ["competitors"],
                   "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}]})
    result = run(w.rt, w.actor("admin"), spec)
    got = by_group(result)
    assert got[("yonyou",)] == (2, D("1070.00"))
    assert got[("kingdee",)] == (1, D("70.00"))
    assert got[(None,)][0] == 7
    every = readable(w, "opportunity", w.actor("admin"))
    assert result.totals[1:] == (len(every), sum(r["amount"] for r in every))   # each record once


def test_no_groups_gives_one_row(world):
    w = world
    spec = report({"object": "opportunity", "measures": [{"agg": "count"}, {"agg": "avg", "field": "amount"}]})
    rows = readable(w, "opportunity", w.actor("rep1"))
    result = run(w.rt, w.actor("rep1"), spec)
    assert result.rows == [(len(rows), aggregate(rows, "amount", "avg"))]
    assert result.totals == result.rows[0]


def test_field_security(world):
    w = world
    spec = w.rt.spec.reports["revenue_by_industry"]
    rep = run(w.rt, w.actor("rep1"), spec, lang="en")
    assert [c.key for c in rep.columns] == ["industry", "count"]         # the revenue measure is left out
    assert rep.hidden == ["Sum of Annual revenue"]
    mgr = run(w.rt, w.actor("mgr"), spec, lang="en")
    assert [c.key for c in mgr.columns] == ["industry", "count", "sum_annual_revenue"]
    assert by_group(mgr)[("manufacturing",)] == (2, D("500000.50"))
    with pytest.raises(ReportRefused) as refused:
        run(w.rt, w.actor("rep1"), "customers_by_revenue", lang="en")
    assert "Annual revenue" in refused.value.text("en")
    with pytest.raises(ReportRefused):     # through a lookup, too
        run(w.rt, w.actor("rep1"), report({"object": "opportunity", "group_by": ["customer.annual_revenue"]}))
    assert run(w.rt, w.actor("fin"), "customers_by_revenue").rows
    only_hidden = report({"object": "customer", "group_by": ["industry"],
                          "measures": [{"agg": "max", "field": "annual_revenue"}]})
    with pytest.raises(ReportRefused):
        run(w.rt, w.actor("rep1"), only_hidden)


def test_a_report_on_an_object_one_may_not_read_is_not_there(world):
    w = world
    with pytest.raises(NotFound):
        run(w.rt, w.actor("agent"), "opportunity_funnel")
    with pytest.raises(NotFound):
        run(w.rt, w.actor("admin"), "no_such_report")


# ---- charts ------------------------------------------------------------------------------------------

def parse_svg(text):
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby").split()
    ids = {e.get("id"): e for e in root.iter() if e.get("id")}
    assert ids[title_id].tag == f"{SVG}title" and ids[desc_id].tag == f"{SVG}desc"
    return root


def marks(root):
    """Shapes with their own tooltip: bars, points, slices, stages."""
    return [e for e in root.iter() if e.tag in (f"{SVG}rect", f"{SVG}circle", f"{SVG}path")
            and e.find(f"{SVG}title") is not None]


@pytest.mark.parametrize("kind", ["bar", "line", "pie", "funnel"])
def test_every_chart_kind_draws_an_accessible_svg(world, kind):
    w = world
    one = report({"object": "opportunity", "group_by": ["stage"], "chart": kind,
                  "measures": [{"agg": "sum", "field": "amount"}, {"agg": "count"}]})
    result = run(w.rt, w.actor("admin"), one, lang="zh")
    hrefs = [f"/o/opportunity/?n={i}" for i in range(len(result.rows))]
    root = parse_svg(charts.render(charts.from_result(result, hrefs)))
    drawn = marks(root)
    assert len(drawn) == len(result.rows)
    tips = [m.find(f"{SVG}title").text for m in drawn]
    assert any(t.startswith("初步接洽") for t in tips)
    assert len([a for a in root.iter(f"{SVG}a") if a.get("href", "").startswith("/o/opportunity/")]) >= len(result.rows)
    if kind in ("bar", "pie"):   # dictionary colours: "initial" is gray, "proposal" purple
        fills = {m.get("fill") for m in drawn}
        assert {charts.COLORS["gray"], charts.COLORS["purple"]} <= fills
    desc = root.find(f"{SVG}desc").text
    assert "初步接洽" in desc and "预计金额" in desc
    two = report({"object": "service_request", "chart": kind, "measures": [{"agg": "count"}],
                  "group_by": [{"field": "reported_at", "bucket": "quarter"}, "severity"]})
    result = run(w.rt, w.actor("admin"), two, lang="en")
    root = parse_svg(charts.render(charts.from_result(result)))
    assert len(marks(root)) == len(result.rows)                          # one mark per (quarter, severity)
    table = dataclasses.replace(one, chart="table")
    assert charts.from_result(run(w.rt, w.actor("admin"), table)) is None


def test_chart_text_fits_cjk_and_numbers_are_compact():
    assert charts.text_width("客户", 12) == 24 and charts.text_width("ab", 12) < 14
    long = "华东区重点客户集团股份有限公司上海分公司"
    short = charts.fit(long, 12, 100)
    assert short.endswith("…") and charts.text_width(short, 12) <= 100
    assert charts.fit("Acme", 12, 100) == "Acme"
    assert charts.compact(12_345_678, "zh") == "1,235万"
    assert charts.compact(45_000, "zh") == "4.5万"
    assert charts.compact(250_000_000, "zh") == "2.5亿"
    assert charts.compact(1_500_000, "en") == "1.5M"
    assert charts.compact(950, "en") == "950"
    ticks = charts.nice_ticks(0, 97)
    assert ticks[0] == 0 and ticks[-1] >= 97 and len(ticks) <= 7


# ---- pages ----------------------------------------------------------------------------------------------

def svg_of(page: str):
    found = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="chart .*?</svg>', page, re.S)
    assert found, "no chart on the page"
    return parse_svg(found.group(0))


def table_rows(page: str) -> list:
    body = re.search(r'<table class="list report-table">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", td)).strip() for td in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        links = [html.unescape(h) for h in re.findall(r'class="drill" href="([^"]+)"', tr)]
        rows.append((cells, links))
    return rows


def list_ids(page: str, obj: str) -> set:
    return {int(i) for i in re.findall(rf'class="row-link" href="/o/{obj}/(\d+)', page)}


def test_the_reports_index_shows_what_one_may_open(world):
    w = world
    page = w.client("rep1").get("/reports/").get_data(as_text=True)
    for name in ("opportunity_funnel", "sales_by_month", "pipeline_by_owner", "customers_by_industry",
                 "service_requests_by_type_and_severity", "revenue_by_industry"):
        assert f'href="/reports/{name}"' in page
    agent = w.client("agent").get("/reports/")
    assert agent.status_code == 200
    text = agent.get_data(as_text=True)
    assert 'href="/reports/customers_by_industry"' in text
    assert 'href="/reports/opportunity_funnel"' not in text               # agents may not read opportunities
    home = w.client("rep1", "zh").get("/").get_data(as_text=True)
    assert 'href="/reports/"' in home and "全部报表" in home
    assert 'href="/reports/opportunity_funnel"' in home                   # the menu's report entries


def test_a_report_page_draws_the_chart_the_table_and_the_totals(world):
    w = world
    client = w.client("mgr")
    response = client.get("/reports/opportunity_funnel")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    result = run(w.rt, w.actor("mgr"), "opportunity_funnel", lang="en")
    root = svg_of(page)
    assert root.find(f"{SVG}title").text == "Opportunity funnel"
    assert len(marks(root)) == len(result.rows)
    rows = table_rows(page)
    assert [r[0][0] for r in rows] == [row[0].label for row in result.rows]
    for (cells, _links), row in zip(rows, result.rows):
        assert cells[1] == str(row[1])                                     # the count
        assert cells[2] == f"¥{row[2]:,.2f}"                               # the amount, as money
    foot = re.search(r"<tfoot>(.*?)</tfoot>", page, re.S).group(1)
    assert "Total" in foot and f"¥{result.totals[2]:,.2f}" in foot
    zh = w.client("mgr", "zh").get("/reports/opportunity_funnel").get_data(as_text=True)
    assert "合计" in zh and "商机漏斗" in zh and "初步接洽" in zh


def test_each_group_links_to_the_list_of_the_records_it_counts(world):
    w = world
    for who in ("mgr", "rep1", "admin"):
        client = w.client(who)
        for name in ("opportunity_funnel", "sales_by_month", "customers_by_industry",
                     "service_requests_by_type_and_severity", "pipeline_by_owner"):
            page = client.get(f"/reports/{name}").get_data(as_text=True)
            if "No records to report on." in page:
                continue
            result = run(w.rt, w.actor(who), name, lang="en")
            count_at = next(i for i, c in enumerate(result.columns) if c.agg == "count")
            for (cells, links), row in zip(table_rows(page), result.rows):
                assert links, (who, name, cells)
                listed = client.get(links[-1]).get_data(as_text=True)
                assert len(list_ids(listed, result.object.name)) == row[count_at], (who, name, links[-1])
    # a month links to its first and last day, with the report's own `where`
    page = w.client("admin").get("/reports/sales_by_month").get_data(as_text=True)
    links = [link for _cells, row_links in table_rows(page) for link in row_links]
    assert "/o/opportunity/?f.state=won&f.expected_close_date.from=2024-04-01&f.expected_close_date.to=2024-04-30" \
        in links


def test_page_filters_narrow_the_report_and_its_links(world):
    w = world
    client = w.client("admin")
    page = client.get("/reports/opportunity_funnel?f.stage=initial").get_data(as_text=True)
    rows = table_rows(page)
    assert [r[0][0] for r in rows] == ["Initial contact"]
    assert "f.stage=initial" in rows[0][1][0]
    bad = client.get("/reports/sales_by_month?f.expected_close_date.from=not-a-date")
    assert bad.status_code == 400


def test_field_security_on_the_pages(world):
    w = world
    page = w.client("rep1").get("/reports/revenue_by_industry").get_data(as_text=True)
    assert "Annual revenue" in page.split("<table", 1)[0]                # named in the note only
    header = re.search(r"<thead>(.*?)</thead>", page, re.S).group(1)
    assert "revenue" not in header.lower()
    assert "500,000.50" not in page and "1,000,000" not in page
    refused = w.client("rep1").get("/reports/customers_by_revenue")
    assert refused.status_code == 403
    assert "Annual revenue" in refused.get_data(as_text=True)
    assert w.client("mgr").get("/reports/customers_by_revenue").status_code == 200


def test_missing_and_unreadable_reports_are_404(world):
    w = world
    assert w.client("agent").get("/reports/opportunity_funnel").status_code == 404
    assert w.client("agent").get("/reports/opportunity_funnel/export.csv").status_code == 404
    assert w.client("admin").get("/reports/no_such_report").status_code == 404
    assert w.client("rep1").get("/reports/opportunity_funnel/export.csv").status_code == 403   # no export right


def test_the_csv_export(world):
    w = world
    response = w.client("mgr").get("/reports/opportunities_by_customer/export.csv")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment; filename=opportunities_by_customer-")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["Customer", "Count", "Sum of Amount"]
    body = {r[0]: r[1:] for r in rows[1:-1]}
    assert body["'=1+2 恶意公司"] == ["2", "1300.35"]                     # a formula is not run
    assert body["华信科技有限公司"] == ["3", "380.30"]
    assert rows[-1] == ["Total", "7", "1800.70"]
    zh = w.client("mgr", "zh").get("/reports/opportunity_funnel/export.csv").get_data(as_text=True)
    assert "合计" in zh and "初步接洽" in zh
    narrowed = w.client("mgr").get("/reports/opportunity_funnel/export.csv?f.stage=needs").get_data(as_text=True)
    assert len(list(csv.reader(io.StringIO(narrowed.lstrip("\ufeff"))))) == 3   # header, needs, total

"""Report charts as SVG, drawn on the server: bar, line, pie and funnel.

No JavaScript library and nothing from a CDN: a chart is a small SVG document in the page
(or on its own), readable without scripts, printable, and accessible: the root has
role="img" with a <title> and a <desc> listing the values, and every bar, point, slice and
stage has its own <title> (a tooltip in browsers). Marks link to the records they count
when the page gives links (drill-down). Text widths are estimated per character (CJK
characters are square, Latin about half as wide) to place labels and shorten long ones
with an ellipsis.

Colours: dictionary items and states keep their own colour (the same as their badges);
other groups take turns in a fixed palette.

    chart = from_result(result, hrefs)     # None for `chart: table` or nothing to draw
    svg = render(chart)                    # str
"""
from __future__ import annotations

import decimal
import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from ..i18n import _, gettext

COLORS = {"gray": "#6b7280", "blue": "#2563eb", "green": "#16a34a", "red": "#dc2626", "orange": "#ea580c",
          "yellow": "#ca8a04", "purple": "#7c3aed", "teal": "#0d9488", "pink": "#db2777", "plain": "#64748b"}
PALETTE = ("#2563eb", "#16a34a", "#ea580c", "#7c3aed", "#0d9488", "#db2777", "#ca8a04", "#dc2626", "#0891b2",
           "#65a30d", "#9333ea", "#475569")
ACCENT = "#2563eb"
INK, MUTED, GRID = "#1f2733", "#6b7585", "#e5e7eb"
FONT = 'font-family="-apple-system, Segoe UI, PingFang SC, Microsoft YaHei, Noto Sans CJK SC, sans-serif"'
WIDTH = 960
KINDS = ("bar", "line", "pie", "funnel")
NUMBER_TYPES = ("integer", "decimal", "percent", "money", "formula", "rollup")


@dataclass
class Series:
    label: str
    color: str
    values: list                 # a number or None per category
    texts: list                  # the values as shown
    hrefs: list                  # a link per category, or None


@dataclass
class Chart:
    kind: str
    title: str
    measure: str                 # the measure drawn
    group: str                   # what the categories are
    categories: list             # labels
    series: list                 # Series (one unless a second group splits them)
    notes: list = field(default_factory=list)   # per category: every measure, for tooltips
    lang: str = "zh"
    summable: bool = True        # counts and sums add up (stack totals, pie shares)
    key: str = "chart"           # for element ids
    colors: list = field(default_factory=list)  # per category (one series)


# ---- text ------------------------------------------------------------------------------------

def _char_width(c: str, size: float) -> float:
    o = ord(c)
    if o > 0x2e80 or 0xff01 <= o <= 0xff60:
        return size                          # CJK and full-width forms: square
    if c in "ilI.,:;|!'`":
        return size * 0.3
    if c in "mwMW@%":
        return size * 0.85
    if c.isupper() or c.isdigit():
        return size * 0.62
    return size * 0.55


def text_width(text: str, size: float = 12) -> float:
    return sum(_char_width(c, size) for c in text)


def fit(text: str, size: float, width: float) -> str:
    """The text, shortened with an ellipsis to fit `width`."""
    if text_width(text, size) <= width:
        return text
    out, used, limit = [], 0.0, width - text_width("…", size)
    for c in text:
        used += _char_width(c, size)
        if used > limit:
            break
        out.append(c)
    return "".join(out).rstrip() + "…"


def _attr(value) -> str:
    return escape(str(value), {'"': "&quot;"})


def _text(x, y, text, size=12, *, anchor="start", fill=INK, weight="normal", full: str | None = None) -> str:
    """A text; `full` is the whole text when `text` was shortened (shown as its tooltip)."""
    tip = _title(full) if full and full != text else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" text-anchor="{anchor}" '
            f'font-weight="{weight}" {FONT}>{tip}{escape(text)}</text>')


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _link(href, inner: str) -> str:
    return f'<a href="{_attr(href)}">{inner}</a>' if href else inner


# ---- numbers ---------------------------------------------------------------------------------

def compact(value: float, lang: str) -> str:
    """Axis numbers: 1.2万 / 3亿 in Chinese, 12K / 3.4M in English."""
    sign, v = ("-" if value < 0 else ""), abs(value)
    steps = ((1e8, "亿"), (1e4, "万")) if lang == "zh" else ((1e9, "B"), (1e6, "M"), (1e3, "K"))
    for size, unit in steps:
        if v >= size:
            n = v / size
            return f"{sign}{n:.1f}".rstrip("0").rstrip(".") + unit if n < 100 else f"{sign}{n:,.0f}{unit}"
    if v == int(v):
        return f"{sign}{int(v):,}"
    return f"{sign}{v:,.2f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list:
    """Round tick values covering [lo, hi] (0 included)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        hi = lo + 1
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v < hi + step * 0.999:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _number(value):
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, decimal.Decimal)):
        return float(value)
    return None


# ---- from a report's result ----------------------------------------------------------------------

def _color(group, index: int, fallback: str | None = None) -> str:
    if group is not None and getattr(group, "color", None):
        own = group.color if str(group.color).startswith("#") else PALETTE[index % len(PALETTE)]
        return COLORS.get(group.color, own)
    return fallback or PALETTE[index % len(PALETTE)]


def from_result(result, hrefs=None, *, lang: str | None = None) -> Chart | None:
    """The chart of a report's result, or None (a table report, no groups, nothing to draw,
    or a first measure that is not a number)."""
    kind = result.report.chart
    lang = lang or result.lang
    if kind not in KINDS or not result.rows or not result.groups:
        return None
    columns = result.columns
    groups = [i for i, c in enumerate(columns) if c.is_group]
    measures = [i for i, c in enumerate(columns) if not c.is_group]
    m = measures[0]
    measure = columns[m]
    if measure.shown_as is None or measure.shown_as.value_type not in NUMBER_TYPES:
        return None
    hrefs = list(hrefs) if hrefs is not None else [None] * len(result.rows)
    summable = measure.agg in ("count", "sum")
    title = result.report.label.text(lang)
    notes_of = [" · ".join(f"{columns[j].label}: {result.text(j, row[j]) or '—'}" for j in measures)
                for row in result.rows]
    if len(groups) == 1 or kind in ("pie", "funnel"):
        cats = [" · ".join(row[i].label for i in groups) for row in result.rows]
        dictionary_like = any(row[groups[0]].color for row in result.rows)
        colors = [(_color(row[groups[0]], n) if dictionary_like or kind == "pie" else ACCENT) if len(groups) == 1
                  else PALETTE[n % len(PALETTE)] for n, row in enumerate(result.rows)]
        series = [Series(measure.label, ACCENT, [_number(row[m]) for row in result.rows],
                         [result.text(m, row[m]) for row in result.rows], hrefs)]
        return Chart(kind, title, measure.label, " · ".join(columns[i].label for i in groups), cats, series,
                     notes_of, lang, summable, result.report.name, colors)
    # two groups, bar or line: the first gives the categories, the second the series
    first, second = groups[0], groups[1]
    cat_keys, cat_labels, ser_keys, ser_groups = [], [], [], []
    for row in result.rows:
        if row[first].value not in cat_keys:
            cat_keys.append(row[first].value)
            cat_labels.append(row[first].label)
        if row[second].value not in ser_keys:
            ser_keys.append(row[second].value)
            ser_groups.append(row[second])
    order = _natural_order(result, columns[second])
    if order is not None:
        pairs = sorted(zip(ser_keys, ser_groups), key=lambda p: (p[0] is None, order.get(p[0], len(order))))
        ser_keys, ser_groups = [p[0] for p in pairs], [p[1] for p in pairs]
    series = []
    for n, (key, group) in enumerate(zip(ser_keys, ser_groups)):
        values, texts, links = [None] * len(cat_keys), [""] * len(cat_keys), [None] * len(cat_keys)
        series.append(Series(group.label, _color(group, n), values, texts, links))
    cat_index = {k: i for i, k in enumerate(cat_keys)}
    ser_index = {k: i for i, k in enumerate(ser_keys)}
    notes = [[] for _ in cat_keys]
    for row, href in zip(result.rows, hrefs):
        s, c = series[ser_index[row[second].value]], cat_index[row[first].value]
        s.values[c], s.texts[c], s.hrefs[c] = _number(row[m]), result.text(m, row[m]), href
        notes[c].append(f"{row[second].label}: {result.text(m, row[m])}")
    return Chart(kind, title, measure.label, columns[first].label, cat_labels, series,
                 [" · ".join(n) for n in notes], lang, summable, result.report.name, [ACCENT] * len(cat_labels))


def _natural_order(result, column):
    leaf = column.field
    if column.bucket or leaf is None:
        return None
    if leaf.type == "dictionary":
        return {c: i for i, c in enumerate(result.spec.dictionaries[leaf.dictionary].items)}
    if leaf.type == "state":
        lifecycle = result.spec.lifecycle_of(result.spec.objects[column.owner])
        return {s: i for i, s in enumerate(lifecycle.states)} if lifecycle else None
    return None


# ---- drawing ------------------------------------------------------------------------------------

def render(chart: Chart | None) -> str:
    if chart is None:
        return ""
    draw = {"bar": _bar, "line": _line, "pie": _pie, "funnel": _funnel}[chart.kind]
    return draw(chart)


def _open(chart: Chart, height: float) -> str:
    ident = f"chart-{chart.key}"
    kinds = {"bar": _("Bar chart"), "line": _("Line chart"), "pie": _("Pie chart"), "funnel": _("Funnel chart")}
    parts = []
    for n, cat in enumerate(chart.categories[:40]):
        values = "; ".join(f"{s.label}: {s.texts[n]}" if len(chart.series) > 1 else s.texts[n]
                           for s in chart.series if s.values[n] is not None)
        parts.append(f"{cat}: {values}")
    more = "; …" if len(chart.categories) > 40 else ""
    desc = gettext(chart.lang, _("{kind} of {measure} by {group}"), kind=gettext(chart.lang, kinds[chart.kind]),
                   measure=chart.measure, group=chart.group) + ". " + "; ".join(parts) + more
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{chart.kind}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" '
            f'width="{WIDTH}" height="{height:.0f}" role="img" aria-labelledby="{ident}-title {ident}-desc">'
            f'<title id="{ident}-title">{escape(chart.title)}</title><desc id="{ident}-desc">{escape(desc)}</desc>')


def _legend(chart: Chart, y: float) -> tuple[str, float]:
    """Swatches for several series, wrapped over lines: (svg, height used)."""
    if len(chart.series) < 2:
        return "", 0
    out, x, line = ['<g class="legend">'], 16.0, 0
    for s in chart.series:
        label = fit(s.label, 12, 160)
        w = 14 + 6 + text_width(label, 12) + 18
        if x + w > WIDTH - 16 and x > 16:
            x, line = 16.0, line + 1
        yy = y + line * 20
        out.append(f'<rect x="{x:.1f}" y="{yy - 10:.1f}" width="12" height="12" rx="2" fill="{s.color}"/>')
        out.append(_text(x + 18, yy, label, 12, fill=INK))
        x += w
    out.append("</g>")
    return "".join(out), (line + 1) * 20 + 6


def _bar(chart: Chart) -> str:
    """Horizontal bars (long labels stay readable), stacked when a second group splits them."""
    n = len(chart.categories)
    label_w = min(max(text_width(c, 12) for c in chart.categories) + 14, 230)
    stacked = len(chart.series) > 1
    totals = []
    for i in range(n):
        vals = [s.values[i] for s in chart.series if s.values[i] is not None]
        pos, neg = sum(v for v in vals if v > 0), sum(v for v in vals if v < 0)
        totals.append((pos, neg))
    if stacked and chart.summable:
        ends = [compact(p + q, chart.lang) for p, q in totals]
    elif stacked:
        ends = [""] * n
    else:   # large numbers as on the axis (1,234万); the exact value is in the tooltip
        ends = [compact(v, chart.lang) if v is not None and abs(v) >= 10000 else t
                for v, t in zip(chart.series[0].values, chart.series[0].texts)]
    value_w = min(max((text_width(t, 12) for t in ends), default=0) + 16, 150)
    legend, legend_h = _legend(chart, 22)
    top = 14 + legend_h
    row_h, bar_h = 30, 18
    lo = min([0.0] + [q for _p, q in totals])
    hi = max([0.0] + [p for p, _q in totals])
    ticks = nice_ticks(lo, hi)
    x0, x1 = 16 + label_w, WIDTH - 16 - value_w
    scale = (x1 - x0) / ((ticks[-1] - ticks[0]) or 1)

    def x(v):
        return x0 + (v - ticks[0]) * scale
    height = top + n * row_h + 34
    out = [_open(chart, height), legend]
    for t in ticks:   # grid and axis labels
        out.append(f'<line x1="{x(t):.1f}" y1="{top - 4}" x2="{x(t):.1f}" y2="{top + n * row_h:.1f}" stroke="{GRID}"/>')
        out.append(_text(x(t), top + n * row_h + 18, compact(t, chart.lang), 11, anchor="middle", fill=MUTED))
    zero = x(0)
    for i, cat in enumerate(chart.categories):
        y = top + i * row_h + (row_h - bar_h) / 2
        out.append(_text(x0 - 8, y + bar_h / 2 + 4, fit(cat, 12, label_w - 14), 12, anchor="end", full=cat))
        pos_at, neg_at = zero, zero
        for k, s in enumerate(chart.series):
            v = s.values[i]
            if v is None or v == 0:
                continue
            if v > 0:
                left, pos_at = pos_at, pos_at + v * scale
                width = pos_at - left
            else:
                neg_at, width = neg_at + v * scale, -v * scale
                left = neg_at
            color = s.color if stacked else chart.colors[i]
            tip = f"{cat}{' · ' + s.label if stacked else ''}: {s.texts[i]}"
            if not stacked and chart.notes:
                tip = f"{cat}: {chart.notes[i]}"
            edge = ' stroke="#fff" stroke-width="1"' if stacked else ""
            mark = (f'<rect x="{left:.1f}" y="{y:.1f}" width="{max(width, 1):.1f}" height="{bar_h}" rx="3" '
                    f'fill="{color}"{edge}>{_title(tip)}</rect>')
            out.append(_link(s.hrefs[i], mark))
        out.append(_text(max(pos_at, zero) + 6, y + bar_h / 2 + 4, ends[i], 12, fill=INK))
    out.append(f'<line x1="{zero:.1f}" y1="{top - 4}" x2="{zero:.1f}" y2="{top + n * row_h:.1f}" stroke="#9ca3af"/>')
    out.append("</svg>")
    return "".join(out)


def _line(chart: Chart) -> str:
    n = len(chart.categories)
    values = [v for s in chart.series for v in s.values if v is not None]
    ticks = nice_ticks(min(values + [0.0]), max(values + [0.0]))
    tick_w = max(text_width(compact(t, chart.lang), 11) for t in ticks)
    legend, legend_h = _legend(chart, 22)
    top, bottom = 20 + legend_h, 44
    plot_h = 240
    height = top + plot_h + bottom
    x0, x1 = 24 + tick_w, WIDTH - 24
    step = (x1 - x0) / (n - 1) if n > 1 else 0

    def x(i):
        return x0 + i * step if n > 1 else (x0 + x1) / 2

    def y(v):
        return top + plot_h - (v - ticks[0]) / ((ticks[-1] - ticks[0]) or 1) * plot_h
    out = [_open(chart, height), legend]
    for t in ticks:
        out.append(f'<line x1="{x0:.1f}" y1="{y(t):.1f}" x2="{x1:.1f}" y2="{y(t):.1f}" stroke="{GRID}"/>')
        out.append(_text(x0 - 6, y(t) + 4, compact(t, chart.lang), 11, anchor="end", fill=MUTED))
    widest = max(text_width(c, 11) for c in chart.categories) + 10
    every = max(1, math.ceil(widest / step)) if n > 1 and step else 1
    room = step * every if n > 1 else x1 - x0
    for i, cat in enumerate(chart.categories):
        if i % every == 0:
            out.append(_text(x(i), top + plot_h + 18, fit(cat, 11, room - 4), 11, anchor="middle", fill=MUTED,
                             full=cat))
    single = len(chart.series) == 1
    for s in chart.series:
        points = [(x(i), y(v)) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="2.5" '
                       f'stroke-linejoin="round" stroke-linecap="round"/>')
        for i, v in enumerate(s.values):
            if v is None:
                continue
            tip = f"{chart.categories[i]}: {chart.notes[i]}" if single and chart.notes else \
                f"{chart.categories[i]} · {s.label}: {s.texts[i]}"
            mark = (f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="#fff" stroke="{s.color}" stroke-width="2.5">'
                    f'{_title(tip)}</circle>')
            out.append(_link(s.hrefs[i], mark))
            if single and n <= 16:
                out.append(_text(x(i), y(v) - 9, compact(v, chart.lang), 11, anchor="middle", fill=INK))
    out.append(f'<line x1="{x0:.1f}" y1="{y(0):.1f}" x2="{x1:.1f}" y2="{y(0):.1f}" stroke="#9ca3af"/>')
    out.append("</svg>")
    return "".join(out)


def _arc(cx, cy, r, a):
    return cx + r * math.cos(a), cy + r * math.sin(a)


def _pie(chart: Chart) -> str:
    s = chart.series[0]
    items = [(i, v) for i, v in enumerate(s.values) if v is not None and v > 0]
    total = sum(v for _i, v in items)
    n = len(chart.categories)
    cx, cy, r, inner = 150, 150, 118, 62
    height = max(300, 34 + n * 24)
    out = [_open(chart, height)]
    angle = -math.pi / 2
    for i, v in items:
        share = v / total if total else 0
        tip = f"{chart.categories[i]}: {chart.notes[i] if chart.notes else s.texts[i]} ({share:.1%})"
        color = chart.colors[i]
        if share >= 0.9999:
            mark = (f'<g>{_title(tip)}<circle cx="{cx}" cy="{cy}" r="{(r + inner) / 2}" fill="none" stroke="{color}" '
                    f'stroke-width="{r - inner}"/></g>')
        else:
            end = angle + share * 2 * math.pi
            large = 1 if end - angle > math.pi else 0
            ox0, oy0 = _arc(cx, cy, r, angle)
            ox1, oy1 = _arc(cx, cy, r, end)
            ix1, iy1 = _arc(cx, cy, inner, end)
            ix0, iy0 = _arc(cx, cy, inner, angle)
            d = (f"M{ox0:.2f},{oy0:.2f} A{r},{r} 0 {large} 1 {ox1:.2f},{oy1:.2f} L{ix1:.2f},{iy1:.2f} "
                 f"A{inner},{inner} 0 {large} 0 {ix0:.2f},{iy0:.2f} Z")
            mark = f'<path d="{d}" fill="{color}" stroke="#fff" stroke-width="1.5">{_title(tip)}</path>'
            angle = end
        out.append(_link(s.hrefs[i], mark))
    if chart.summable and total:
        out.append(_text(cx, cy - 2, compact(total, chart.lang), 20, anchor="middle", weight="600"))
        out.append(_text(cx, cy + 18, fit(chart.measure, 11, inner * 2 - 10), 11, anchor="middle", fill=MUTED))
    lx = 300
    for i, cat in enumerate(chart.categories):
        yy = 30 + i * 24
        v = s.values[i]
        share = f"{v / total:.1%}" if total and v is not None and v > 0 else "—"
        label = fit(cat, 12, 230)
        row = (f'<rect x="{lx}" y="{yy - 10}" width="12" height="12" rx="2" fill="{chart.colors[i]}"/>'
               + _text(lx + 20, yy, label, 12, full=cat) + _text(lx + 370, yy, s.texts[i], 12, anchor="end")
               + _text(lx + 430, yy, share, 12, anchor="end", fill=MUTED))
        out.append(_link(s.hrefs[i], f"<g>{_title(cat)}{row}</g>"))
    out.append("</svg>")
    return "".join(out)


def _funnel(chart: Chart) -> str:
    s = chart.series[0]
    n = len(chart.categories)
    stage_h, gap = 40, 6
    cx, max_w, min_w = 230, 420, 24
    height = 16 + n * (stage_h + gap) + 10
    peak = max([v for v in s.values if v is not None and v > 0] or [0])
    first = next((v for v in s.values if v is not None and v > 0), None)
    widths = [max(min_w, max_w * v / peak) if peak and v is not None and v > 0 else min_w for v in s.values]
    out = [_open(chart, height)]
    for i, cat in enumerate(chart.categories):
        y = 16 + i * (stage_h + gap)
        w = widths[i]
        if i + 1 < n:   # the narrowing between this stage and the next
            nw = widths[i + 1]
            out.append(f'<path d="M{cx - w / 2:.1f},{y + stage_h:.1f} L{cx + w / 2:.1f},{y + stage_h:.1f} '
                       f'L{cx + nw / 2:.1f},{y + stage_h + gap:.1f} L{cx - nw / 2:.1f},{y + stage_h + gap:.1f} Z" '
                       f'fill="{chart.colors[i]}" opacity="0.25"/>')
        v = s.values[i]
        share = f" ({v / first:.0%})" if first and v is not None and i > 0 else ""
        tip = f"{cat}: {chart.notes[i] if chart.notes else s.texts[i]}{share}"
        mark = (f'<rect x="{cx - w / 2:.1f}" y="{y:.1f}" width="{w:.1f}" height="{stage_h}" rx="4" '
                f'fill="{chart.colors[i]}">{_title(tip)}</rect>')
        out.append(_link(s.hrefs[i], mark))
        lx = cx + max_w / 2 + 24
        out.append(_text(lx, y + 16, fit(cat, 13, WIDTH - lx - 16), 13, weight="600", full=cat))
        detail = fit((chart.notes[i] if chart.notes else s.texts[i]) + share, 12, WIDTH - lx - 16)
        out.append(_text(lx, y + 33, detail, 12, fill=MUTED))
    out.append("</svg>")
    return "".join(out)

"""Workflow pictures as SVG: states, transitions, approval steps.

A small layered layout: states go in columns by their distance from the initial state,
transitions are arrows (curved when they go back or skip a column), each labelled with
its name and, for a transition that starts an approval, the approval's steps. Final
states have a double border, locked states a dashed one, and the current state of a
record is filled.
"""
from __future__ import annotations

from xml.sax.saxutils import escape

from ..metadata.build import raw_condition
from ..metadata.spec import AppSpec, ApprovalFlow, Lifecycle

W, H, GAP_X, GAP_Y, PAD = 150, 46, 170, 64, 36
COLORS = {"gray": "#6b7280", "blue": "#2563eb", "green": "#16a34a", "red": "#dc2626", "orange": "#ea580c",
          "yellow": "#ca8a04", "purple": "#7c3aed", "teal": "#0d9488", "pink": "#db2777"}
FONT = 'font-family="-apple-system, Segoe UI, PingFang SC, Microsoft YaHei, Noto Sans CJK SC, sans-serif"'


OUTCOME_WORDS = {"approved": {"zh": "审批通过", "en": "approved"}, "rejected": {"zh": "审批驳回", "en": "rejected"}}


def _edges(spec: AppSpec, lifecycle: Lifecycle, lang: str) -> list:
    """(source, target, label lines, dashed, title): every transition from each of its sources,
    and the moves an approval's outcome makes (approved or rejected, out of the transition's
    `to` state) — without them a state reached only by approval floats unconnected."""
    edges = []
    for t in lifecycle.transitions.values():
        lines = [(t.label.text(lang), 11)]
        flow = spec.workflows.get(t.approval) if t.approval else None
        if isinstance(flow, ApprovalFlow):
            steps = [s.label.text(lang) for s in flow.steps]
            tokens = [("审批: " if lang == "zh" else "approval: ") + steps[0]] + ["→ " + s for s in steps[1:]]
            lines.extend((line, 10) for line in _wrap(tokens, 10, GAP_X - 24))
        edges.extend((source, t.to, lines, bool(t.approval), t.name) for source in t.sources)
        if isinstance(flow, ApprovalFlow):
            targets: dict = {}   # both outcomes to one state: one arrow saying both
            for word, outcome in (("approved", flow.on_approved), ("rejected", flow.on_rejected)):
                if outcome.to and outcome.to != t.to:
                    targets.setdefault(outcome.to, []).append(word)
            for target, words in targets.items():
                text = " / ".join(OUTCOME_WORDS[w].get(lang, OUTCOME_WORDS[w]["en"]) for w in words)
                edges.append((t.to, target, [(text, 11)], True, f"{flow.name}: {' / '.join(words)}"))
    seen, unique = set(), []
    for edge in edges:  # two transitions' approvals ending alike draw one arrow
        key = (edge[0], edge[1], edge[2][0][0])
        if key not in seen:
            seen.add(key)
            unique.append(edge)
    return unique


def _layers(lifecycle: Lifecycle, edges) -> dict:
    """Columns by the longest path from the initial state, moves back (to a state on the way
    there) left out: a lifecycle reads left to right in the order its states are usually
    reached, rather than piling every state one move away into one column."""
    out: dict = {}
    for source, target, *_rest in edges:
        if target not in out.setdefault(source, []):
            out[source].append(target)
    back, done, path = set(), set(), []

    def visit(state):   # depth first, in file order: a move to a state on the path is a move back
        path.append(state)
        for target in out.get(state, ()):
            if target in path:
                back.add((state, target))
            elif target not in done:
                visit(target)
        path.pop()
        done.add(state)
        order.append(state)
    order: list = []
    visit(lifecycle.initial)
    depth = {lifecycle.initial: 0}
    for state in reversed(order):           # a topological order of the moves forward
        for target in out.get(state, ()):
            if (state, target) not in back and state in depth:
                depth[target] = max(depth.get(target, 0), depth[state] + 1)
    last = max(depth.values(), default=0) + 1
    return {s: depth.get(s, last) for s in lifecycle.states}


def _width(text: str, size: int) -> float:
    """Rough rendered width: CJK characters are square, Latin about half as wide."""
    return sum(size if ord(c) > 0x2e80 else size * 0.58 for c in text)


def _wrap(tokens, size, width) -> list:
    """Tokens joined into lines no wider than `width` (a token wider than that stands alone)."""
    lines: list = []
    for token in tokens:
        if lines and _width(lines[-1] + " " + token, size) <= width:
            lines[-1] += " " + token
        else:
            lines.append(token)
    return lines


SYMBOLS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


def _condition_text(spec: AppSpec, obj_name: str, cond, lang: str) -> str:
    """A short reading of a step's `when`: `Amount > 100000` for one comparison, else `…`."""
    raw = raw_condition(cond)
    if not raw or "field" not in raw:
        return "…"
    obj = spec.objects.get(obj_name)
    f = obj.fields.get(raw["field"]) if obj else None
    name = f.label.text(lang) if f else raw["field"]
    op, value = raw["op"], raw.get("value")
    if op in ("is_null", "not_null"):
        return f"{name} {'为空' if op == 'is_null' else '已填'}" if lang == "zh" else \
            f"{name} {'is empty' if op == 'is_null' else 'is set'}"
    shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"{name} {SYMBOLS.get(op, op)} {shown}"


def _lock(x, y, color):
    """A small padlock (no emoji font is needed to see it)."""
    return (f'<g transform="translate({x},{y})"><path d="M2,6 V4 a3,3 0 0 1 6,0 V6" fill="none" stroke="{color}" '
            f'stroke-width="1.4"/><rect x="0" y="6" width="10" height="7" rx="1.5" fill="{color}"/></g>')


def _label(x, y, lines, fill="#4b5563"):
    """A label with a white backing so it stays readable over lines."""
    out = []
    for i, (text, size) in enumerate(lines):
        w = _width(text, size)
        yy = y + i * (size + 3)
        out.append(f'<rect x="{x - w / 2 - 3:.0f}" y="{yy - size:.0f}" width="{w + 6:.0f}" height="{size + 4}" rx="3" '
                   f'fill="#fff" opacity="0.9"/>')
        out.append(_text(x, yy, text, size, fill=fill))
    return "".join(out)


def _text(x, y, text, size=13, weight="normal", fill="#1f2733", anchor="middle"):
    return (f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" font-weight="{weight}" fill="{fill}" '
            f'text-anchor="{anchor}" {FONT}>{escape(text)}</text>')


def lifecycle_svg(spec: AppSpec, lifecycle: Lifecycle, lang: str, current: str | None = None) -> str:
    edges = _edges(spec, lifecycle, lang)
    layers = _layers(lifecycle, edges)
    columns: dict = {}
    for state in lifecycle.states:
        columns.setdefault(layers[state], []).append(state)
    row_of = {state: row for states in columns.values() for row, state in enumerate(states)}
    # moves back between states of the top row arc over them, clear of the arrows going forward
    over = [(a, b) for a, b, *_rest in edges if layers[b] < layers[a] and row_of[a] == row_of[b] == 0]
    top = PAD + 20 + (34 + 22 * len(over) if over else 0)
    pos = {state: (PAD + layers[state] * (W + GAP_X), top + row_of[state] * (H + GAP_Y)) for state in lifecycle.states}
    beside = max([sum(1 for a, b, *_r in edges if layers[a] == layers[b] == col and a != b) for col in columns] + [0])
    width = PAD * 2 + (max(columns) + 1) * (W + GAP_X) - GAP_X + 90 + 30 * beside  # room for arcs to the right
    under = sum(1 for a, b, *_r in edges if a != b and layers[a] != layers[b] and (a, b) not in over
                and not (layers[b] == layers[a] + 1))
    height = top + PAD + max(len(s) for s in columns.values()) * (H + GAP_Y) + max(0, 18 * under + 40 - GAP_Y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(lifecycle.label.text(lang))}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>',
             f'<rect width="{width}" height="{height}" fill="#fff"/>',
             _text(PAD, 24, lifecycle.label.text(lang), 15, "600", anchor="start")]
    seen_pairs: dict = {}
    side: dict = {}    # column -> arcs drawn out to its right so far
    below = 0          # arcs drawn under the states so far
    for source, target, lines, dashed, title in edges:
        if source not in pos or target not in pos:
            continue
        (x1, y1), (x2, y2) = pos[source], pos[target]
        n = seen_pairs.get((source, target), 0)
        seen_pairs[(source, target)] = n + 1
        if source == target:  # a loop on one state
            cx, cy = x1 + W / 2, y1
            path = f"M{cx - 20},{cy} C{cx - 40},{cy - 50} {cx + 40},{cy - 50} {cx + 20},{cy}"
            lx, ly = cx, cy - 42
        elif layers[target] == layers[source] + 1 and n == 0:
            sx, sy, ex, ey = x1 + W, y1 + H / 2, x2, y2 + H / 2
            path = f"M{sx},{sy} C{sx + GAP_X / 2},{sy} {ex - GAP_X / 2},{ey} {ex},{ey}"
            lx, ly = (sx + ex) / 2, (sy + ey) / 2 - 6
        elif layers[target] == layers[source]:  # same column: an arc out to the right, each further out
            k = side.get(layers[source], 0)
            side[layers[source]] = k + 1
            reach = 46 + 30 * k
            sx, sy, ex, ey = x1 + W, y1 + H / 2 - 6, x2 + W, y2 + H / 2 + 6
            path = f"M{sx},{sy} C{sx + reach},{sy} {ex + reach},{ey} {ex},{ey}"
            lx, ly = sx + reach * 0.75, (sy + ey) / 2 - 4 + 16 * (k % 2)   # neighbours' labels alternate
        elif (source, target) in over:  # back along the top row: an arc above
            k = over.index((source, target))
            sx, sy, ex, ey = x1 + W / 2 + 12, y1, x2 + W / 2 + 12, y2
            high = sy - 30 - 30 * k
            path = f"M{sx},{sy} C{sx},{high} {ex},{high} {ex},{ey}"
            lx, ly = (sx + ex) / 2, sy + 0.75 * (high - sy) + 4     # the curve's peak
        else:  # back, or skipping columns: an arc below, each a little deeper than the last
            below += 1
            bend = 24 + 18 * below + 8 * abs(layers[target] - layers[source])
            sx, sy, ex, ey = x1 + W / 2, y1 + H, x2 + W / 2, y2 + H
            low = max(sy, ey) + bend
            path = f"M{sx},{sy} C{sx},{low} {ex},{low} {ex},{ey}"
            lx, ly = (sx + ex) / 2, (sy + ey) / 8 + 0.75 * low + 4     # the curve's lowest point
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        parts.append(f'<path d="{path}" fill="none" stroke="#9ca3af" stroke-width="1.5"{dash} '
                     f'marker-end="url(#arrow)"><title>{escape(title)}</title></path>')
        parts.append(_label(lx, ly, lines))
    for state_name, state in lifecycle.states.items():
        x, y = pos[state_name]
        color = COLORS.get(state.color or "blue", "#2563eb")
        is_current = state_name == current
        fill = color if is_current else "#fff"
        dash = ' stroke-dasharray="6 3"' if state.locked else ""
        parts.append(f'<g class="state{" current" if is_current else ""}" data-state="{escape(state_name)}">')
        parts.append(f'<rect x="{x}" y="{y}" width="{W}" height="{H}" rx="10" fill="{fill}" stroke="{color}" '
                     f'stroke-width="{3 if is_current else 2}"{dash}/>')
        if state.final:
            parts.append(f'<rect x="{x + 4}" y="{y + 4}" width="{W - 8}" height="{H - 8}" rx="7" fill="none" '
                         f'stroke="{"#fff" if is_current else color}" stroke-width="1"/>')
        if state.initial:
            parts.append(f'<circle cx="{x - 16}" cy="{y + H / 2}" r="6" fill="#374151"/>'
                         f'<path d="M{x - 10},{y + H / 2} L{x - 2},{y + H / 2}" stroke="#374151" stroke-width="2" '
                         f'marker-end="url(#arrow)"/>')
        parts.append(_text(x + W / 2, y + H / 2 + 5, state.label.text(lang), 14, "600", "#fff" if is_current else "#1f2733"))
        if state.locked:
            parts.append(_lock(x + W - 18, y + 6, "#fff" if is_current else color))
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _approvers_text(spec: AppSpec, flow: ApprovalFlow, step, lang: str) -> str:
    kind, value = step.approvers.kind, step.approvers.value
    zh = lang == "zh"
    if kind == "role":
        return spec.roles[value].label.text(lang) if value in spec.roles else value
    if kind == "manager_of":
        whose = {"submitter": ("提交人", "submitter's"), "owner": ("负责人", "owner's")}.get(value, (value, value))
        return f"{whose[0]}的部门经理" if zh else f"the {whose[1]} manager"
    if kind == "user_field":
        obj = spec.objects.get(flow.object)
        f = obj.fields.get(value) if obj else None
        return f.label.text(lang) if f else value
    return ", ".join(value)


def approval_svg(spec: AppSpec, flow: ApprovalFlow, lang: str) -> str:
    steps = list(flow.steps)
    boxes = [("start", "▶")] + [(s.name, s.label.text(lang)) for s in steps] + [("end", "✓")]
    width = PAD * 2 + len(boxes) * (W + 60) - 60
    height = 200
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="{escape(flow.label.text(lang))}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>',
             f'<rect width="{width}" height="{height}" fill="#fff"/>', _text(PAD, 24, flow.label.text(lang), 15, "600", anchor="start")]
    for i, (name, label) in enumerate(boxes):
        x, y = PAD + i * (W + 60), 60
        if i:
            parts.append(f'<path d="M{x - 60},{y + H / 2} L{x - 2},{y + H / 2}" stroke="#9ca3af" stroke-width="1.5" '
                         f'marker-end="url(#arrow)"/>')
        parts.append(f'<rect x="{x}" y="{y}" width="{W}" height="{H}" rx="10" fill="#fff" stroke="#7c3aed" stroke-width="2"/>')
        parts.append(_text(x + W / 2, y + H / 2 + 5, label, 14, "600"))
        if 0 < i < len(boxes) - 1:
            step = steps[i - 1]
            parts.append(_text(x + W / 2, y + H + 18, _approvers_text(spec, flow, step, lang), 11, fill="#4b5563"))
            policy = {"all": {"zh": "全部同意", "en": "all"}, "any": {"zh": "任一同意", "en": "any"}}[step.policy]
            parts.append(_text(x + W / 2, y + H + 34, policy.get(lang, policy["en"]), 11, fill="#6b7280"))
            if step.when is not None:
                when = ("条件: " if lang == "zh" else "when ") + _condition_text(spec, flow.object, step.when, lang)
                parts.append(_text(x + W / 2, y + H + 50, when, 11, fill="#6b7280"))
    if flow.on_approved.to or flow.on_rejected.to:
        lifecycle = spec.lifecycle_of(spec.objects[flow.object]) if flow.object in spec.objects else None

        def state(name):
            found = lifecycle.states.get(name) if lifecycle and name else None
            return found.label.text(lang) if found else (name or "—")
        parts.append(_text(PAD, height - 14, f"✓ → {state(flow.on_approved.to)}    ✗ → {state(flow.on_rejected.to)}",
                           12, fill="#4b5563", anchor="start"))
    parts.append("</svg>")
    return "".join(parts)


def svg(spec: AppSpec, name: str, lang: str, current: str | None = None) -> str:
    flow = spec.workflows[name]
    if isinstance(flow, Lifecycle):
        return lifecycle_svg(spec, flow, lang, current)
    return approval_svg(spec, flow, lang)

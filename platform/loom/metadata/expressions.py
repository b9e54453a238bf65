"""The formula language: small, safe expressions over a record's fields.

    amount * probability / 100
    round(quantity * unit_price * (1 - discount / 100), 2)
    concat(last_name, first_name)
    days_between(created_at, today())
    amount if currency == "CNY" else amount * rate

Parsed with Python's `ast` and compiled once into closures. Only the node types below are
accepted: no attribute access, subscripts, imports, comprehensions or lambdas, and only
the listed functions. Work is bounded: no `**` (use `power(x, n)` with n up to 64),
strings only concatenate through `concat` with a length cap, and every expression is
limited in size. Semantics suit business data: numbers are Decimals, an empty operand
makes the result empty (None), and division by zero gives None instead of an error.
"""
from __future__ import annotations

import ast
import datetime as dt
import operator
import re
from decimal import ROUND_HALF_UP, Decimal, DivisionByZero, InvalidOperation
from typing import Callable

from .problems import suggest

MAX_NODES = 200
MAX_TEXT = 10_000


class ExpressionError(ValueError):
    def __init__(self, message: str, column: int = 0):
        super().__init__(message)
        self.column = column


def _num(v):
    if v is None or isinstance(v, Decimal):
        return v
    if isinstance(v, bool):
        return Decimal(int(v))
    if isinstance(v, (int, float)):
        return Decimal(str(v))
    raise TypeError(f"expected a number, got {type(v).__name__}")


def _arith(op):
    def apply(a, b):
        if a is None or b is None:
            return None
        if isinstance(a, (dt.date, dt.datetime)) or isinstance(b, (dt.date, dt.datetime)):
            return _date_arith(op, a, b)
        try:
            return op(_num(a), _num(b))
        except (DivisionByZero, InvalidOperation, ZeroDivisionError):
            return None
    return apply


def _date_arith(op, a, b):
    """date + n / date - n (days), date - date (days)."""
    if op is operator.add and isinstance(b, (int, Decimal)) and not isinstance(b, bool):
        return a + dt.timedelta(days=int(b))
    if op is operator.sub:
        if isinstance(b, (int, Decimal)) and not isinstance(b, bool):
            return a - dt.timedelta(days=int(b))
        if type(a) is type(b):
            return Decimal((a - b).days)
    raise TypeError("dates only add or subtract days, or subtract another date")


def _round(x, digits=0):
    x = _num(x)
    if x is None:
        return None
    digits = int(_num(digits) or 0)
    return x.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def _power(x, n):
    x, n = _num(x), _num(n)
    if x is None or n is None:
        return None
    if n != n.to_integral_value() or abs(n) > 64:
        raise TypeError("power() takes a whole exponent between -64 and 64")
    try:
        return x ** int(n)
    except (DivisionByZero, InvalidOperation, ZeroDivisionError):
        return None


def _concat(*parts):
    text = "".join("" if p is None else str(p) for p in parts)
    if len(text) > MAX_TEXT:
        raise TypeError(f"text longer than {MAX_TEXT} characters")
    return text


def _nullsafe(fn):
    def call(*args):
        return None if any(a is None for a in args) else fn(*args)
    return call


def _days_between(a, b):
    if a is None or b is None:
        return None
    if isinstance(a, dt.datetime):
        a = a.date()
    if isinstance(b, dt.datetime):
        b = b.date()
    return Decimal((b - a).days)


FUNCTIONS: dict[str, tuple[Callable, int, int]] = {   # name -> (function, min args, max args)
    "round": (_round, 1, 2),
    "abs": (_nullsafe(lambda x: abs(_num(x))), 1, 1),
    "min": (lambda *xs: min((x for x in xs if x is not None), default=None), 1, 16),
    "max": (lambda *xs: max((x for x in xs if x is not None), default=None), 1, 16),
    "coalesce": (lambda *xs: next((x for x in xs if x is not None), None), 1, 16),
    "power": (_power, 2, 2),
    "concat": (_concat, 1, 16),
    "upper": (_nullsafe(lambda s: str(s).upper()), 1, 1),
    "lower": (_nullsafe(lambda s: str(s).lower()), 1, 1),
    "len": (_nullsafe(lambda s: Decimal(len(str(s)))), 1, 1),
    "today": (None, 0, 0),   # resolved from the evaluation context
    "now": (None, 0, 0),
    "days_between": (_days_between, 2, 2),
    "add_days": (_nullsafe(lambda d, n: d + dt.timedelta(days=int(_num(n)))), 2, 2),
    "year": (_nullsafe(lambda d: Decimal(d.year)), 1, 1),
    "month": (_nullsafe(lambda d: Decimal(d.month)), 1, 1),
}

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}


class Expression:
    """A compiled formula: `expr(values, context)` -> value."""

    def __init__(self, source: str, names: frozenset, fn):
        self.source, self.names, self._fn = source, names, fn

    def __call__(self, values, context=None):
        try:
            return self._fn(values, context or {})
        except (TypeError, ValueError, ArithmeticError, OverflowError):
            return None

    def __repr__(self):
        return f"Expression({self.source!r})"


def parse(source: str) -> Expression:
    """Compile `source`, or raise ExpressionError naming what is not allowed."""
    if re.match(r"\s*(import|from)\s", source):
        raise ExpressionError("a formula is one expression over fields; import is not allowed", 1)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"invalid expression: {e.msg}", e.offset or 0) from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ExpressionError(f"the expression is too long ({count} parts; at most {MAX_NODES})")
    names: set = set()
    fn = _compile(tree.body, names)
    return Expression(source, frozenset(names), fn)


def _compile(node, names: set):
    col = getattr(node, "col_offset", 0) + 1
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return lambda v, c: value
        if isinstance(value, (int, float)):
            value = Decimal(str(value))
            return lambda v, c: value
        raise ExpressionError(f"unsupported constant {value!r}", col)
    if isinstance(node, ast.Name):
        name = node.id
        if name in ("true", "True"):
            return lambda v, c: True
        if name in ("false", "False"):
            return lambda v, c: False
        if name in ("null", "None"):
            return lambda v, c: None
        names.add(name)
        return lambda v, c: v.get(name)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            raise ExpressionError("'**' is not allowed; use power(x, n)", col)
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed", col)
        left, right, apply = _compile(node.left, names), _compile(node.right, names), _arith(op)
        return lambda v, c: apply(left(v, c), right(v, c))
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand, names)
        if isinstance(node.op, ast.USub):
            return lambda v, c: None if (x := operand(v, c)) is None else -_num(x)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return lambda v, c: not operand(v, c)
        raise ExpressionError("operator ~ is not allowed", col)
    if isinstance(node, ast.BoolOp):
        parts = [_compile(n, names) for n in node.values]
        if isinstance(node.op, ast.And):
            return lambda v, c: all(p(v, c) for p in parts)
        return lambda v, c: any(p(v, c) for p in parts)
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1:
            raise ExpressionError("compare two values at a time (a < b and b < c)", col)
        op = _COMPARE.get(type(node.ops[0]))
        if op is None:
            raise ExpressionError(f"comparison {type(node.ops[0]).__name__} is not allowed", col)
        left, right = _compile(node.left, names), _compile(node.comparators[0], names)

        def compare(v, c):
            a, b = left(v, c), right(v, c)
            if a is None or b is None:
                return None
            if isinstance(a, (int, float)) or isinstance(b, (int, float)):
                a, b = _num(a), _num(b)
            return op(a, b)
        return compare
    if isinstance(node, ast.IfExp):
        test, body, orelse = (_compile(n, names) for n in (node.test, node.body, node.orelse))
        return lambda v, c: body(v, c) if test(v, c) else orelse(v, c)
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):  # name.upper(): say what is wrong, not what is right
            return _compile(node.func, names)
        if not isinstance(node.func, ast.Name):
            raise ExpressionError("only the built-in functions may be called", col)
        name = node.func.id
        if name not in FUNCTIONS:
            raise ExpressionError(f"unknown function '{name}'" + suggest(name, FUNCTIONS), col)
        if node.keywords:
            raise ExpressionError(f"{name}() takes no keyword arguments", col)
        fn, least, most = FUNCTIONS[name]
        if not least <= len(node.args) <= most:
            raise ExpressionError(f"{name}() takes {least}" + (f" to {most}" if most != least else "")
                                  + f" argument{'s' if most != 1 else ''}", col)
        args = [_compile(a, names) for a in node.args]
        if name in ("today", "now"):
            return lambda v, c: c.get(name) or (dt.date.today() if name == "today"
                                                else dt.datetime.now(dt.timezone.utc))
        return lambda v, c: fn(*(a(v, c) for a in args))
    if isinstance(node, ast.Attribute):
        raise ExpressionError("attribute access (a.b) is not allowed in formulas", col)
    if isinstance(node, ast.Subscript):
        raise ExpressionError("subscripts (a[b]) are not allowed in formulas", col)
    raise ExpressionError(f"{type(node).__name__} is not allowed in formulas", col)

"""A small metadata filter language for selective restore (engine layer).

    expr     := or_expr
    or_expr  := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | "(" expr ")" | compare
    compare  := FIELD OP VALUE | FIELD "in" "[" VALUE ("," VALUE)* "]" | FIELD "exists"
    OP       := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
    FIELD    := a metadata key ([A-Za-z_][A-Za-z0-9_.-]*; dots reach into nested objects),
                or `id` / `document` / `uri` for those parts of a record
    VALUE    := a JSON literal: "text" or 'text', 12, -1.5, true, false, null

Comparisons follow Python's, with types kept: 1 = 1.0 is true (numbers compare as numbers),
"1" = 1 is false; an ordering between values of different kinds is false, never an error.
A missing field equals nothing except `null`. Examples:
    source = "wiki" and page >= 10
    lang in ["en", "de"] or not reviewed = true
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable

from ..errors import UsageError

Predicate = Callable[[dict[str, Any]], bool]
_TOKEN = re.compile(r"""\s*(?:(?P<op>==|!=|<=|>=|=|<|>|\(|\)|\[|\]|,)
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
    |(?P<word>[A-Za-z_][A-Za-z0-9_.\-]*))""", re.X)
_MISSING = object()


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise UsageError(f"--where: cannot read the filter at {text[pos:pos + 12]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1].lower() != value):
            raise UsageError(f"--where: expected {value or 'more'} "
                             f"{'at ' + repr(tok[1]) if tok else 'at the end'}")
        self.i += 1
        return tok

    def is_word(self, w: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "word" and tok[1].lower() == w

    def expr(self) -> Predicate:
        left = self.and_expr()
        while self.is_word("or"):
            self.take()
            right = self.and_expr()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def and_expr(self) -> Predicate:
        left = self.not_expr()
        while self.is_word("and"):
            self.take()
            right = self.not_expr()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def not_expr(self) -> Predicate:
        if self.is_word("not"):
            self.take()
            inner = self.not_expr()
            return lambda r: not inner(r)
        if self.peek() == ("op", "("):
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        return self.compare()

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            if text[0] == "'":
                text = '"' + text[1:-1].replace('\\"', '"').replace('"', '\\"') + '"'
            return json.loads(text)
        if kind == "num":
            return json.loads(text)
        if kind == "word" and text in ("true", "false", "null"):
            return json.loads(text)
        raise UsageError(f"--where: {text!r} is not a value (quote text: \"{text}\")")

    def compare(self) -> Predicate:
        kind, field = self.take()
        if kind != "word":
            raise UsageError(f"--where: expected a field name at {field!r}")
        path = field.split(".")
        if self.is_word("exists"):
            self.take()
            return lambda r: _get(r, path) is not _MISSING
        if self.is_word("in"):
            self.take()
            self.take("[")
            options = [self.value()]
            while self.peek() == ("op", ","):
                self.take()
                options.append(self.value())
            self.take("]")
            return lambda r: any(_eq(_get(r, path), o) for o in options)
        kind, op = self.take()
        if kind != "op" or op in "()[],":
            raise UsageError(f"--where: expected an operator after {field!r}")
        value = self.value()
        return _OPS[op](path, value)


def _get(record: dict[str, Any], path: list[str]) -> Any:
    cur: Any = record
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    return type(v).__name__


def _eq(a: Any, b: Any) -> bool:
    if a is _MISSING:
        return b is None
    return _kind(a) == _kind(b) and a == b


def _ordered(test: Callable[[Any, Any], bool]):
    def build(path, value):
        def pred(r):
            a = _get(r, path)
            if a is _MISSING or a is None or value is None or _kind(a) != _kind(value):
                return False
            try:
                return test(a, value)
            except TypeError:
                return False
        return pred
    return build


_OPS = {
    "=": lambda p, v: lambda r: _eq(_get(r, p), v),
    "==": lambda p, v: lambda r: _eq(_get(r, p), v),
    "!=": lambda p, v: lambda r: not _eq(_get(r, p), v),
    "<": _ordered(lambda a, b: a < b),
    "<=": _ordered(lambda a, b: a <= b),
    ">": _ordered(lambda a, b: a > b),
    ">=": _ordered(lambda a, b: a >= b),
}


def parse_where(text: str) -> Predicate:
    """Compile a filter; the predicate takes {**metadata, "id":..., "document":..., "uri":...}."""
    p = _Parser(text)
    pred = p.expr()
    if p.peek() is not None:
        raise UsageError(f"--where: unexpected {p.peek()[1]!r}")
    return pred

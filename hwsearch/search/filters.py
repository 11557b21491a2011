"""Filter expressions for fronts (``hwsearch front --where "latency_ms < 2 and accuracy > 0.9"``).

Grammar (``not`` binds tighter than ``and``, ``and`` tighter than ``or``)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | comparison
    comparison := METRIC OP NUMBER        OP: <  <=  >  >=  ==  !=

A hand-written tokenizer and recursive-descent parser: nothing is ever evaluated as Python.
A comparison on a metric a point lacks (or that is NaN) is false.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from hwsearch.errors import FilterError
from hwsearch.search.objectives import format_number

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_KEYWORDS = ("and", "or", "not")

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<paren>[()])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # number, name, keyword, op, paren, end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            hint = {
                "=": " ('=' compares only as '==')",
                "[": " (a filter compares metrics, not config knobs)",
            }.get(text[pos], "")
            raise FilterError(f"unexpected character {text[pos]!r} at column {pos + 1}{hint}")
        kind = match.lastgroup or ""
        if kind != "space":
            word = match.group()
            if kind == "name" and word.lower() in _KEYWORDS:
                tokens.append(_Token("keyword", word.lower(), pos))
            else:
                tokens.append(_Token(kind, word, pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


# Expression nodes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    metric: str
    op: str
    bound: float

    def evaluate(self, values: Mapping[str, float]) -> bool:
        value = values.get(self.metric)
        if value is None or math.isnan(value):
            return False
        return _OPS[self.op](float(value), self.bound)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {format_number(self.bound)}"


@dataclass(frozen=True)
class Not:
    operand: Node

    def evaluate(self, values: Mapping[str, float]) -> bool:
        return not self.operand.evaluate(values)

    def __str__(self) -> str:
        return f"not {_wrap(self.operand)}"


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Node, ...]

    def evaluate(self, values: Mapping[str, float]) -> bool:
        if self.op == "and":
            return all(o.evaluate(values) for o in self.operands)
        return any(o.evaluate(values) for o in self.operands)

    def __str__(self) -> str:
        return f" {self.op} ".join(_wrap(o) for o in self.operands)


Node = Comparison | Not | BoolOp


def _wrap(node: Node) -> str:
    return f"({node})" if isinstance(node, BoolOp) else str(node)


class _Parser:
    def __init__(self, text: str, known: Collection[str], max_depth: int) -> None:
        self.tokens = _tokenize(text)
        self.known = known
        self.i = 0
        self.depth = 0
        self.max_depth = max_depth

    def _deeper(self, token: _Token) -> None:
        """One more level of '(' or 'not'; bounded, so parsing (and evaluating, printing)
        the tree never recurses past ``max_depth``."""
        self.depth += 1
        if self.depth > self.max_depth:
            raise FilterError(
                f"nested more than {self.max_depth} levels deep (parentheses and 'not') "
                f"at column {token.pos + 1}"
            )

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def _where(self, token: _Token) -> str:
        return "at the end" if token.kind == "end" else f"at column {token.pos + 1}"

    def _found(self, token: _Token) -> str:
        return "nothing" if token.kind == "end" else repr(token.text)

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise FilterError("empty filter; write e.g. 'latency_ms < 2 and accuracy > 0.9'")
        node = self.expr()
        if self.token.kind != "end":
            raise FilterError(
                f"expected 'and', 'or' or the end {self._where(self.token)}, "
                f"found {self._found(self.token)}"
            )
        return node

    def expr(self) -> Node:
        operands = [self.and_expr()]
        while self.token.kind == "keyword" and self.token.text == "or":
            self.i += 1
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.token.kind == "keyword" and self.token.text == "and":
            self.i += 1
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def not_expr(self) -> Node:
        token = self.token
        if token.kind == "keyword" and token.text == "not":
            self.i += 1
            self._deeper(token)
            inner = self.not_expr()
            self.depth -= 1
            return Not(inner)
        if token.kind == "paren" and token.text == "(":
            self.i += 1
            self._deeper(token)
            node = self.expr()
            self.depth -= 1
            if not (self.token.kind == "paren" and self.token.text == ")"):
                raise FilterError(
                    f"expected ')' {self._where(self.token)} to close the '(' at column "
                    f"{token.pos + 1}, found {self._found(self.token)}"
                )
            self.i += 1
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        name = self.token
        if name.kind != "name":
            raise FilterError(
                f"expected a metric name {self._where(name)}, found {self._found(name)}"
            )
        if name.text not in self.known:
            raise FilterError(
                f"unknown metric {name.text!r} at column {name.pos + 1} (a filter compares "
                f"metrics, not config knobs); known: {', '.join(sorted(self.known))}"
            )
        self.i += 1
        op = self.token
        if op.kind != "op":
            raise FilterError(
                f"expected a comparison (< <= > >= == !=) after {name.text!r} "
                f"{self._where(op)}, found {self._found(op)}"
            )
        self.i += 1
        number = self.token
        if number.kind != "number":
            raise FilterError(
                f"expected a number after {op.text!r} {self._where(number)}, "
                f"found {self._found(number)}"
            )
        self.i += 1
        return Comparison(name.text, op.text, float(number.text))


@dataclass(frozen=True)
class Filter:
    """A parsed filter; call it with a point's metric values to test the point."""

    text: str
    root: Node

    def __call__(self, values: Mapping[str, float]) -> bool:
        return self.root.evaluate(values)

    @property
    def metrics(self) -> set[str]:
        """The metrics the filter reads."""
        out: set[str] = set()
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Comparison):
                out.add(node.metric)
            elif isinstance(node, Not):
                stack.append(node.operand)
            else:
                stack.extend(node.operands)
        return out

    def __str__(self) -> str:
        return str(self.root)


def parse_filter(
    text: str,
    known: Collection[str],
    *,
    max_length: int | None = None,
    max_depth: int | None = None,
) -> Filter:
    """Parse ``text``; :class:`~hwsearch.errors.FilterError` says where and why it fails.

    ``max_length`` (characters) and ``max_depth`` (nesting of '(' and 'not') default to the
    process's limits (:class:`hwsearch.search.limits.SpecLimits` ``where_length``,
    ``where_depth``)."""
    from hwsearch.search.limits import current_limits

    if not isinstance(text, str):
        raise FilterError(f"a filter must be a string, got {type(text).__name__}")
    limits = current_limits()
    length = limits.where_length if max_length is None else max_length
    if len(text) > length:
        raise FilterError(f"a filter of {len(text)} characters is longer than {length}")
    depth = limits.where_depth if max_depth is None else max_depth
    return Filter(text, _Parser(text, known, depth).parse())


__all__ = ["BoolOp", "Comparison", "Filter", "Not", "parse_filter"]

"""Streamtime's search query language (reference/streamtime-v2.md §2.3): a builder for the client and a
grammar (lark) for the emulator.

The language, as the vendor describes it: ``<selector> <operator> <value>`` comparisons joined by
``AND``/``OR`` and grouped by parentheses; operators ``= != > >= < <=``, ``CONTAINS``, ``NOT CONTAINS``,
``IN``, ``NOT IN``; values in double quotes (strings, dates and even booleans), lists in square brackets.
Keywords are case-insensitive (the prose writes them upper case, the vendor's examples lower case).

The builder writes every value double-quoted, the one form every vendor example uses; a ``"`` or ``\\``
inside a value is escaped with a backslash (an assumption: the reference shows no escaped value).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence, Union

from lark import Lark, Token, Transformer, UnexpectedInput

COMPARISONS = ("=", "!=", ">", ">=", "<", "<=")
LIST_OPERATORS = ("contains", "not contains", "in", "not in")


# --- the builder (client side) -------------------------------------------------------------------
def quote(value: str | int | float | bool | dt.date) -> str:
    """A value as the language wants it: double-quoted, booleans as ``"true"``/``"false"``, dates ISO."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        raise TypeError("the language compares dates (YYYY-MM-DD), not datetimes")
    elif isinstance(value, (dt.date, int, float, str)):
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
    else:
        raise TypeError(f"cannot quote a {type(value).__name__}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_selector(selector: str) -> str:
    if not selector or not all(c.isalnum() or c == "_" for c in selector) or selector[0].isdigit():
        raise ValueError(f"not a selector: {selector!r}")
    return selector


def compare(selector: str, operator: str, value) -> str:
    """One comparison; a list value for ``in``/``contains`` and their negations."""
    operator = operator.lower()
    if operator in LIST_OPERATORS:
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise ValueError(f"{operator} needs at least one value")
        return f"{_check_selector(selector)} {operator} [{', '.join(quote(v) for v in values)}]"
    if operator not in COMPARISONS:
        raise ValueError(f"unknown operator {operator!r}")
    return f"{_check_selector(selector)} {operator} {quote(value)}"


def all_of(*conditions: str) -> str:
    """Conditions joined by ``and``; each one parenthesised when it holds an ``or``."""
    parts = [c if " or " not in c else f"({c})" for c in conditions if c]
    return " and ".join(parts)


def date_window(selector: str, first: dt.date, last: dt.date) -> str:
    """``<selector> >= "first" and <selector> <= "last"``: the days first..last, both included."""
    return all_of(compare(selector, ">=", first), compare(selector, "<=", last))


# --- the grammar (emulator side) -----------------------------------------------------------------
GRAMMAR = r"""
?start: disjunction
?disjunction: conjunction (_OR conjunction)*
?conjunction: _atom (_AND _atom)*
_atom: "(" disjunction ")" | comparison
comparison: SELECTOR OPERATOR STRING          -> scalar
          | SELECTOR LIST_OPERATOR (list | STRING) -> listed
list: "[" STRING ("," STRING)* "]"

_OR.2: /or\b/i
_AND.2: /and\b/i
LIST_OPERATOR.2: /not\s+contains\b/i | /not\s+in\b/i | /contains\b/i | /in\b/i
OPERATOR: ">=" | "<=" | "!=" | "=" | ">" | "<"
SELECTOR: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(?:[^"\\]|\\.)*"/

%import common.WS
%ignore WS
"""


@dataclass(frozen=True)
class Comparison:
    selector: str
    operator: str  # lower case, single spaces: "=", ">=", "not in", ...
    value: Union[str, tuple[str, ...]]  # unquoted


@dataclass(frozen=True)
class And:
    parts: tuple["Query", ...]


@dataclass(frozen=True)
class Or:
    parts: tuple["Query", ...]


Query = Union[Comparison, And, Or]


class QuerySyntaxError(ValueError):
    """The text is not a query of the language."""


def _unquote(token: Token) -> str:
    text = str(token)[1:-1]
    out, escaped = [], False
    for char in text:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)


class _ToQuery(Transformer):
    def scalar(self, items):
        selector, operator, value = items
        return Comparison(str(selector), str(operator), _unquote(value))

    def listed(self, items):
        selector, operator, values = items
        values = values if isinstance(values, tuple) else (_unquote(values),)
        return Comparison(str(selector), " ".join(str(operator).lower().split()), values)

    def list(self, items):
        return tuple(_unquote(item) for item in items)

    def conjunction(self, items):
        return And(tuple(items))

    def disjunction(self, items):
        return Or(tuple(items))


_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)


def parse(text: str) -> Query:
    """The query as a tree of :class:`Comparison`, :class:`And` and :class:`Or`; QuerySyntaxError otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise QuerySyntaxError("the query is empty")
    try:
        return _ToQuery().transform(_PARSER.parse(text))
    except UnexpectedInput as error:
        raise QuerySyntaxError(f"cannot parse the query at column {error.column}") from None


def comparisons(query: Query) -> Sequence[Comparison]:
    """Every comparison in the query, in order."""
    if isinstance(query, Comparison):
        return [query]
    return [c for part in query.parts for c in comparisons(part)]

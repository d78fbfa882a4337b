"""A small parser for the values of ``--model`` arguments (``widths=(16, 32)``, ``name='a'``).

It reads plain data only: numbers, quoted strings, ``True``/``False``/``None`` (and JSON's
``true``/``false``/``null``), and lists, tuples and dicts of them. Tuples become lists (as
cards store them). Nothing is evaluated: a value it cannot read raises ``ValueError``.

Example:
    >>> parse_literal("(16, 32)"), parse_literal("'a'"), parse_literal("{'k': [1.5, None]}")
    ([16, 32], 'a', {'k': [1.5, None]})
"""
from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["parse_literal"]

MAX_DEPTH = 32  # nesting a model argument may have (a deeper one is refused, not a RecursionError)
_NUMBER = re.compile(r"[+-]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?")
_WORDS = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def parse_literal(text: str) -> Any:
    """The value ``text`` writes (see the module docstring); ValueError if it is not one."""
    p = _Parser(text)
    value = p.value(0)
    p.skip()
    if p.i != len(text):
        raise ValueError(f"unexpected {text[p.i:p.i + 10]!r} at position {p.i} of {text!r}")
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def skip(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def fail(self, what: str) -> ValueError:
        return ValueError(f"expected {what} at position {self.i} of {self.s!r}")

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError(f"{self.s[:40]!r}... nests deeper than {MAX_DEPTH} levels")
        self.skip()
        if self.i >= len(self.s):
            raise self.fail("a value")
        ch = self.s[self.i]
        if ch in "[(":
            return self.sequence("]" if ch == "[" else ")", depth)
        if ch == "{":
            return self.mapping(depth)
        if ch in "'\"":
            return self.string(ch)
        for word, v in _WORDS.items():
            if self.s.startswith(word, self.i) and not self.s[self.i + len(word):self.i + len(word) + 1].isalnum():
                self.i += len(word)
                return v
        m = _NUMBER.match(self.s, self.i)
        if m is None:
            raise self.fail("a number, a quoted string, True/False/None, a list, a tuple or a dict")
        self.i = m.end()
        token = m.group(0)
        return float(token) if any(c in token for c in ".eE") else int(token)

    def items(self, close: str, depth: int, item: Any) -> list[Any]:
        out: list[Any] = []
        self.i += 1  # the opening bracket
        while True:
            self.skip()
            if self.s.startswith(close, self.i):
                self.i += 1
                return out
            out.append(item(depth + 1))
            self.skip()
            if self.s.startswith(",", self.i):
                self.i += 1
            elif not self.s.startswith(close, self.i):
                raise self.fail(f"',' or {close!r}")

    def sequence(self, close: str, depth: int) -> list[Any]:
        return self.items(close, depth, self.value)

    def mapping(self, depth: int) -> dict[Any, Any]:
        def pair(d: int) -> tuple[Any, Any]:
            key = self.value(d)
            if isinstance(key, (list, dict)):
                raise ValueError(f"a dict key must be a string or a number, got {key!r} in {self.s!r}")
            self.skip()
            if not self.s.startswith(":", self.i):
                raise self.fail("':'")
            self.i += 1
            return key, self.value(d)

        return dict(self.items("}", depth, pair))

    def string(self, quote: str) -> str:
        if quote == '"':  # JSON's rules
            try:
                value, end = json.JSONDecoder().raw_decode(self.s, self.i)
            except json.JSONDecodeError as err:
                raise ValueError(f"unterminated or malformed string in {self.s!r} ({err.msg})") from None
            self.i = end
            return str(value)
        out, j = [], self.i + 1
        while j < len(self.s) and self.s[j] != quote:
            if self.s[j] == "\\" and j + 1 < len(self.s):
                out.append(_ESCAPES.get(self.s[j + 1], "\\" + self.s[j + 1]))
                j += 2
            else:
                out.append(self.s[j])
                j += 1
        if j >= len(self.s):
            raise ValueError(f"unterminated string in {self.s!r}")
        self.i = j + 1
        return "".join(out)

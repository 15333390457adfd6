"""Where each key and array element of a TOML document is, for located configuration errors.

`tomllib` parses but keeps no positions. `key_positions` scans a document that `tomllib` has
already accepted and maps every key path (table headers, dotted keys, inline tables, array
elements by index, arrays of tables by index) to its 1-based line and column. It only skips over
values, so it needs none of TOML's value grammar beyond where strings and brackets end. On text it
does not understand it returns what it found so far: a position is a convenience, never a reason
to fail.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from collections.abc import Sequence

Key = tuple[str | int, ...]
Position = tuple[int, int]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}\r\n#]")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.found: dict[Key, Position] = {}
        self._table_arrays: dict[Key, int] = {}

    def position(self, offset: int) -> Position:
        line_start = self.text.rfind("\n", 0, offset) + 1
        return self.text.count("\n", 0, offset) + 1, offset - line_start + 1

    def record(self, path: Key, offset: int) -> None:
        self.found.setdefault(path, self.position(offset))

    def skip(self, newlines: bool = True) -> None:
        """Skips blanks and comments, and line breaks when `newlines`."""
        text = self.text
        while self.i < len(text):
            char = text[self.i]
            if char in " \t" or (newlines and char in "\r\n"):
                self.i += 1
            elif char == "#":
                end = text.find("\n", self.i)
                self.i = len(text) if end < 0 else end
            else:
                return

    def key(self) -> list[tuple[str, int]]:
        """A dotted key: each part with the offset where it starts."""
        parts = []
        while True:
            self.skip(newlines=False)
            start = self.i
            if self.text[start] in "\"'":
                self.string()
                raw = self.text[start:self.i]
                name = next(iter(tomllib.loads(f"{raw} = 0")))  # tomllib decodes the escapes
            else:
                match = _BARE_KEY.match(self.text, start)
                if match is None:
                    raise ValueError("not a key")
                name, self.i = match.group(), match.end()
            parts.append((name, start))
            self.skip(newlines=False)
            if not self.text.startswith(".", self.i):
                return parts
            self.i += 1

    def expect(self, token: str) -> None:
        self.skip(newlines=False)
        if not self.text.startswith(token, self.i):
            raise ValueError(f"expected {token!r}")
        self.i += len(token)

    def record_key(self, base: Key, parts: Sequence[tuple[str, int]]) -> Key:
        path = base
        for name, offset in parts:
            path = (*path, name)
            self.record(path, offset)
        return path

    def document(self) -> None:
        table: Key = ()
        while True:
            self.skip()
            if self.i >= len(self.text):
                return
            if self.text.startswith("[[", self.i):
                self.i += 2
                path = self.record_key((), self.key())
                self.expect("]]")
                index = self._table_arrays[path] = self._table_arrays.get(path, -1) + 1
                table = (*path, index)
                self.found.setdefault(table, self.found[path])
            elif self.text.startswith("[", self.i):
                self.i += 1
                table = self.record_key((), self.key())
                self.expect("]")
            else:
                path = self.record_key(table, self.key())
                self.expect("=")
                self.value(path)

    def value(self, path: Key) -> None:
        self.skip(newlines=False)
        char = self.text[self.i]
        if char in "\"'":
            self.string()
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        else:  # numbers, booleans, dates and times: up to the next delimiter
            match = _SCALAR_END.search(self.text, self.i)
            self.i = len(self.text) if match is None else match.start()

    def string(self) -> None:
        text, quote = self.text, self.text[self.i]
        if text.startswith(quote * 3, self.i):
            self.i += 3
            while not text.startswith(quote * 3, self.i):
                self.i += 2 if quote == '"' and text[self.i] == "\\" else 1
            self.i += 3
            while self.i < len(text) and text[self.i] == quote:  # up to two quotes end the content
                self.i += 1
            return
        self.i += 1
        while text[self.i] != quote:
            self.i += 2 if quote == '"' and text[self.i] == "\\" else 1
        self.i += 1

    def array(self, path: Key) -> None:
        self.i += 1
        index = 0
        while True:
            self.skip()
            if self.text[self.i] == "]":
                self.i += 1
                return
            self.record((*path, index), self.i)
            self.value((*path, index))
            self.skip()
            if self.text[self.i] == ",":
                self.i += 1
            index += 1

    def inline_table(self, path: Key) -> None:
        self.i += 1
        while True:
            self.skip()
            if self.text[self.i] == "}":
                self.i += 1
                return
            key = self.record_key(path, self.key())
            self.expect("=")
            self.value(key)
            self.skip()
            if self.text[self.i] == ",":
                self.i += 1


def key_positions(text: str) -> dict[Key, Position]:
    """Every key path of a valid TOML document with its (line, col), first occurrence wins."""
    scanner = _Scanner(text)
    # On a surprise, the positions found so far; callers fall back to the nearest enclosing key.
    with contextlib.suppress(IndexError, ValueError, KeyError, StopIteration, tomllib.TOMLDecodeError):
        scanner.document()
    return scanner.found


def locate(positions: dict[Key, Position], path: Sequence[str | int]) -> Position:
    """The position of `path`, or of its nearest enclosing key that has one, else 1:1."""
    for end in range(len(path), 0, -1):
        found = positions.get(tuple(path[:end]))
        if found is not None:
            return found
    return 1, 1

"""A fast reader for the plain block YAML manifests are written in — adapter.

A typical manifest is one document of block mappings and sequences whose values are one-line
plain or quoted scalars and short one-line flow collections. This reader handles exactly that
subset (one regular expression splits the text into lines and their parts) and builds the same
`Document` as the event reader (`yamlread`): the same data with the same types, and the same
position for every key and value.
The moment a file steps outside the subset (several documents, anchors, tags, block or multi-line
scalars, escapes, tabs, duplicate keys, keys that are not plain words, anything it is unsure of)
it gives up and returns None, and the event reader reads the file instead, with its full checks
and messages. `tests/manifest/test_yamlblock.py` checks that the two agree on every file this one
accepts.

Why: the event reader spends most of its time on PyYAML's event and mark objects, one of each per
key and value; this reader needs about 60 % of its instructions for a benchmark manifest.
"""

from __future__ import annotations

import json
import re
from json.scanner import make_scanner
from typing import Any

from expctl.errors import Location
from expctl.manifest.yamlread import (
    _TYPED_FIRST,
    _WILDCARD,
    MAX_DEPTH,
    SCALAR_TAGS,
    STR_TAG,
    Document,
    Path_,
    construct_scalar,
)
from expctl.manifest.yamlread import _resolve_plain as resolve_plain

# Deeper than this (block and flow levels together), the event reader's depth check decides.
_DEPTH_LIMIT = MAX_DEPTH // 2


_new = tuple.__new__


# Characters the subset allows: line feeds, printable ASCII, and the printable non-ASCII characters
# PyYAML accepts except the ones YAML reads as line breaks or a byte order mark. Tabs, carriage
# returns and everything else send the file to the event reader.
_OUTSIDE_SUBSET = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")

_ASCII_IN_SUBSET = bytes([0x0A, *range(0x20, 0x7F)])
# Every line as its indentation, a sequence entry's dash, a plain-word key, the spaces after the
# key's colon, and the rest of the line (groups that did not take part are empty strings).
_LINES = re.compile(r"^( *)(- +)?(?:([A-Za-z_][A-Za-z0-9_.-]*):( +|$))?(.*)$", re.MULTILINE)
# A one-line scalar value in block context, with an optional trailing comment.
_DOUBLE = re.compile(r'"([^"\\]*)"(?: +#.*)? *$')
_SINGLE = re.compile(r"'([^']*)'(?: +#.*)? *$")
# (A '#' only starts a comment after a space: the body takes spaces only before another character.)
_PLAIN = re.compile(r"((?:[A-Za-z0-9_./~(]|[-+](?=[^ ]))(?:[^ ]| +(?=[^ #]))*)(?: +#.*)? *$")
# Characters a plain scalar may start with, but not a quoted one, a flow collection, or '-' / '+'
# (plain only when another character follows): the loop reads those values inline.
_PLAIN_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./~(")
_LINE_END = re.compile(r"(?: +#.*)? *$")
# One token of a flow collection: punctuation, ': ', a quoted scalar, or a plain word.
_FLOW = re.compile(r""" *(?:([{}\[\],])|(:)|"([^"\\]*)"|'([^']*)'(?!')"""
                   r"""|((?:[A-Za-z0-9_./~(]|[-+](?=[^ ,\[\]{}]))[^ ,\[\]{}:#'"]*))""")
_PUNCT, _COLON, _DQ, _SQ, _WORD = 1, 2, 3, 4, 5

_CACHE_LIMIT = 4096
_typed_cache: dict[str, Any] = {}
_str_keys: dict[str, bool] = {}


def _token_start(match: re.Match[str], group: int) -> int:
    """Where a flow token starts: a quoted scalar at its opening quote, as YAML marks it."""
    return match.start(group) - (group in (_DQ, _SQ))


class _Decline(Exception):
    """The text is outside the subset: the event reader must read it."""


def _after_entry(text: str, pos: int, closer: str) -> tuple[bool, int]:
    """After an entry of a flow collection: whether `closer` ends it, and where reading goes on."""
    after = _FLOW.match(text, pos)
    if after is None or after.lastindex != _PUNCT or after.group(_PUNCT) not in (closer, ","):
        raise _Decline
    return after.group(_PUNCT) == closer, after.end()


def _typed_plain(text: str) -> Any:
    """A plain scalar's value as PyYAML's safe loader types it; declines the odd tags (merge and
    value keys, timestamps that do not construct) that the event reader handles."""
    if not _WILDCARD and text[:1] not in _TYPED_FIRST:
        return text
    cached = _typed_cache.get(text, _typed_cache)
    if cached is not _typed_cache:
        return cached
    tag = resolve_plain(text)
    if tag == STR_TAG:
        if len(_typed_cache) < _CACHE_LIMIT:
            _typed_cache[text] = text  # e.g. 'openai', 'no-cache': strings that only start like a number or bool
        return text
    if tag not in SCALAR_TAGS:
        raise _Decline
    try:
        value = construct_scalar(tag, text)
    except Exception as err:  # PyYAML's constructors raise several kinds on bad text
        raise _Decline from err
    if len(_typed_cache) < _CACHE_LIMIT:  # values are immutable (numbers, booleans, None, dates)
        _typed_cache[text] = value
    return value


def _is_str_key(key: str) -> bool:
    """Whether a plain word stays a string as a key ('on', 'yes', 'null' do not)."""
    known = _str_keys.get(key)
    if known is None:
        known = resolve_plain(key) == STR_TAG
        if len(_str_keys) < _CACHE_LIMIT:
            _str_keys[key] = known
    return known


# YAML 1.1 reads a number as a float only in these forms (e.g. 1e5 and 1.5E3 are strings).
_YAML_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?")


class _NotYaml(ValueError):
    """JSON that YAML would read differently: the flow tokenizer reads it instead."""


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        raise _NotYaml  # a duplicate key: the event reader reports it
    return mapping


def _json_float(text: str) -> float:
    if _YAML_FLOAT.fullmatch(text) is None:
        raise _NotYaml
    return float(text)


def _json_constant(text: str) -> Any:
    raise _NotYaml  # NaN, Infinity: not YAML


# JSON is YAML's flow style when it has no escapes and its floats are written as YAML writes them;
# the C decoder reads such a collection many times faster than the tokenizer.
_JSON_SCAN = make_scanner(json.JSONDecoder(  # type: ignore[arg-type]  # typeshed types the context oddly
    object_pairs_hook=_json_object, parse_float=_json_float, parse_constant=_json_constant))


_JSON_MAPPING_SECOND = frozenset(('"', "}"))


class _Reader:
    """Reads one file's lines into one document, or raises `_Decline`.

    With `record` off, the inside of a flow collection is read without noting where each key and
    value starts; `map_flows` notes it later if anybody asks.
    """

    def __init__(self, path: str, record: bool = False) -> None:
        self.path = path
        self.record = record
        self.key_locations: dict[Path_, Location] = {}
        self.value_locations: dict[Path_, Location] = {}
        self.unmapped_flows: dict[Path_, tuple[int, int, str]] = {}

    def scalar(self, rest: str, number: int, column: int, path: Path_, depth: int) -> Any:
        """A one-line value: quoted, plain, or a flow collection; the line must end after it."""
        self.value_locations[path] = _new(Location, (self.path, number + 1, column + 1))
        first = rest[0]
        if first in {"{", "["}:
            return self.flow_collection(rest, first, number, column, path, depth)
        if first == '"':
            if rest[-1] == '"' and rest.count('"') == 2 and "\\" not in rest:
                return rest[1:-1]  # what _DOUBLE would take, without its per-character loop
            match = _DOUBLE.match(rest)
        elif first == "'":
            match = _SINGLE.match(rest)
        else:
            match = _PLAIN.match(rest)
            if match is None:
                raise _Decline
            text = match.group(1)
            if ": " in text or text[-1] == ":":
                raise _Decline  # YAML would read a mapping here (or refuse the line)
            return _typed_plain(text)
        if match is None:
            raise _Decline
        return match.group(1)

    def flow_collection(self, rest: str, first: str, number: int, column: int, path: Path_, depth: int) -> Any:
        value: Any = None
        # JSON when it has no escapes, and a mapping's first key is quoted ({from_env: X} is not).
        if "\\" not in rest and (first == "[" or rest[1:2] in _JSON_MAPPING_SECOND) and (
                rest.count("{") + rest.count("[") + depth < _DEPTH_LIMIT):
            try:
                value, end = _JSON_SCAN(rest, 0)  # raw_decode's scanner, without its Python frame
            except (StopIteration, ValueError):
                value = None
        if value is None:
            value, end = self.flow(rest, 0, number, column, path, depth)
        if _LINE_END.match(rest, end) is None:
            raise _Decline
        if value:
            self.unmapped_flows[path] = (number, column, rest)
        return value

    def flow(self, text: str, pos: int, number: int, offset: int, path: Path_, depth: int) -> tuple[Any, int]:
        """The flow value starting at `text[pos:]` and where it ends; `offset` is the column of
        `text[0]` in its line."""
        match = _FLOW.match(text, pos)
        if match is None:
            raise _Decline
        group = match.lastindex
        if self.record:
            self.value_locations[path] = _new(Location, (self.path, number + 1,
                                                         offset + _token_start(match, group) + 1))  # type: ignore[arg-type]
        if group == _WORD:
            return _typed_plain(match.group(_WORD)), match.end()
        if group in (_DQ, _SQ):
            return match.group(group), match.end()
        if group != _PUNCT or depth >= _DEPTH_LIMIT:
            raise _Decline
        opener = match.group(_PUNCT)
        if opener == "{":
            return self.flow_mapping(text, match.end(), number, offset, path, depth + 1)
        if opener == "[":
            return self.flow_sequence(text, match.end(), number, offset, path, depth + 1)
        raise _Decline

    def flow_mapping(self, text: str, pos: int, number: int, offset: int, path: Path_,
                     depth: int) -> tuple[dict[str, Any], int]:
        mapping: dict[str, Any] = {}
        match = _FLOW.match(text, pos)
        if match is not None and match.group(_PUNCT) == "}":
            return mapping, match.end()
        while True:
            if match is None:
                raise _Decline
            group = match.lastindex
            key = match.group(group)  # type: ignore[arg-type]
            if group in (_PUNCT, _COLON) or key in mapping or (group == _WORD and not _is_str_key(key)):
                raise _Decline
            here = (*path, key)
            if self.record:
                self.key_locations[here] = _new(Location, (self.path, number + 1,
                                                           offset + _token_start(match, group) + 1))  # type: ignore[arg-type]
            colon = _FLOW.match(text, match.end())
            # After a plain key YAML wants ': ' (a:1 is one plain word); after a quoted one, ':' will do.
            if colon is None or colon.lastindex != _COLON or (
                    group == _WORD and text[colon.end():colon.end() + 1] != " "):
                raise _Decline
            mapping[key], pos = self.flow(text, colon.end(), number, offset, here, depth)
            done, pos = _after_entry(text, pos, "}")
            if done:
                return mapping, pos
            match = _FLOW.match(text, pos)

    def flow_sequence(self, text: str, pos: int, number: int, offset: int, path: Path_,
                      depth: int) -> tuple[list[Any], int]:
        sequence: list[Any] = []
        match = _FLOW.match(text, pos)
        if match is not None and match.group(_PUNCT) == "]":
            return sequence, match.end()
        while True:
            value, pos = self.flow(text, pos, number, offset, (*path, len(sequence)), depth)
            sequence.append(value)
            done, pos = _after_entry(text, pos, "]")
            if done:
                return sequence, pos

    def lines(self, text: str) -> tuple[dict[str, Any], int]:  # noqa: PLR0915 - one flat loop is the fast path
        """The document's root mapping and the line it starts on.

        The innermost open block collection lives in local variables (`top`, its `path`, the
        column its keys or dashes sit at, whether it is a mapping); enclosing ones wait on `stack`.
        A key with nothing after it (`pending`) opens whatever block the next line starts.
        """
        file = self.path
        key_locations, value_locations = self.key_locations, self.value_locations
        str_keys, plain, plain_start = _str_keys, _PLAIN.match, _PLAIN_START
        typed_first, always_type = _TYPED_FIRST, bool(_WILDCARD)
        root: dict[str, Any] = {}
        top: Any = root
        path: Path_ = ()
        indent_of_top, is_map = 0, True
        stack: list[tuple[Any, Path_, int, bool]] = []
        pending: tuple[str, Path_, int] | None = None
        start = -1
        for number, (spaces, dash, key, gap, rest) in enumerate(_LINES.findall(text)):
            if not dash and not key:
                if not rest or rest[0] == "#":
                    continue  # blank or comment line
                raise _Decline  # a continuation line, a document marker, a flow or quoted key, ...
            indent = len(spaces)
            if start < 0:
                if indent or dash:
                    raise _Decline
                start = number
                value_locations[()] = _new(Location, (file, number + 1, 1))
            if pending is not None:
                # The block a bare `key:` opens: a sequence may sit at the key's own column.
                pending_key, pending_path, key_column = pending
                pending = None
                if indent < key_column or (not dash and indent == key_column) or len(stack) >= _DEPTH_LIMIT:
                    raise _Decline  # an empty value: the event reader types it
                new: Any = [] if dash else {}
                top[pending_key] = new
                value_locations[pending_path] = _new(Location, (file, number + 1, indent + 1))
                stack.append((top, path, indent_of_top, is_map))
                top, path, indent_of_top, is_map = new, pending_path, indent, not dash
            else:
                while indent < indent_of_top:
                    top, path, indent_of_top, is_map = stack.pop()
                if not is_map and not dash and indent == indent_of_top and stack:
                    top, path, indent_of_top, is_map = stack.pop()  # the end of a sequence at its key's column
                if indent != indent_of_top:
                    raise _Decline
            column = indent
            if dash:
                if is_map:
                    raise _Decline
                column += len(dash)
                item_path = (*path, len(top))
                if not key:
                    if not rest or rest[0] == "#":
                        raise _Decline
                    top.append(self.scalar(rest, number, column, item_path, len(stack)))
                    continue
                if len(stack) >= _DEPTH_LIMIT:
                    raise _Decline
                item: dict[str, Any] = {}
                top.append(item)
                value_locations[item_path] = _new(Location, (file, number + 1, column + 1))
                stack.append((top, path, indent_of_top, is_map))
                top, path, indent_of_top, is_map = item, item_path, column, True
            elif not is_map:
                raise _Decline
            if key in top or not (str_keys.get(key) or _is_str_key(key)):  # key is set here
                raise _Decline  # a duplicate, or a key YAML reads as a boolean or null
            here = (*path, key)
            key_locations[here] = _new(Location, (file, number + 1, column + 1))
            if not rest or rest[0] == "#":
                pending = (key, here, column)
                continue
            value_column = column + len(key) + 1 + len(gap)
            if rest[0] not in plain_start:
                top[key] = self.scalar(rest, number, value_column, here, len(stack))
                continue
            # The common value, a plain scalar, inline (`scalar` does the same).
            value_locations[here] = _new(Location, (file, number + 1, value_column + 1))
            if " #" in rest or rest[-1] == " ":  # a comment or trailing spaces to cut off
                match = plain(rest)
                if match is None:
                    raise _Decline
                value = match.group(1)
            else:
                value = rest  # what _PLAIN would take: the whole rest of the line
            if ": " in value or value[-1] == ":":
                raise _Decline
            top[key] = _typed_plain(value) if always_type or value[0] in typed_first else value
        if start < 0 or pending is not None:
            raise _Decline
        return root, start


def map_flows(doc: Document) -> None:
    """Notes where each key and value inside the document's unmapped flow collections starts."""
    reader = _Reader(doc.path, record=True)
    for path, (number, column, text) in doc.unmapped_flows.items():
        try:
            reader.flow(text, 0, number, column, path, 0)
        except _Decline:  # never for a collection the reader accepted (tested); its start is known anyway
            continue
    doc.key_locations.update(reader.key_locations)
    doc.value_locations.update(reader.value_locations)


def read_block_document(path: str, text: str) -> Document | None:
    """The one document of `text` if it is in the subset this reader handles, else None."""
    if text.isascii():  # the common case, checked without a per-character regex loop
        if text.encode().translate(None, _ASCII_IN_SUBSET):
            return None  # something is left once every allowed byte is deleted
    elif _OUTSIDE_SUBSET.search(text) is not None:
        return None
    reader = _Reader(path)
    try:
        root, start = reader.lines(text)
    except _Decline:
        return None
    return Document(path, 0, Location(path, start + 1, 1), root, reader.key_locations, reader.value_locations,
                    reader.unmapped_flows, map_flows)

"""Safe YAML reading with a position for every key and value — adapter.

Builds plain Python data straight from the parser's event stream (the C parser when PyYAML has
it), so that positions are exact and hostile input fails fast: the first anchor or alias ends the
file (no alias expansion ever happens, so no billion-laughs blow-up), duplicate keys and custom
tags are problems, and nesting depth is bounded. Parser messages are used without their context
snippet, which could quote a secret from the offending line.

Most manifests are read by the faster line reader (`yamlblock`); this reader takes every file
that one declines. The common events (plain or quoted scalars, untagged collections) are still
handled inline with little per-event work, and positions are kept as the parser's own mark
objects until the document ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from expctl.errors import Location, Problem
from expctl.manifest.secretscan import find_key_like

try:
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

MAX_DEPTH = 64
Path_ = tuple[str | int, ...]
YAML_TAG_PREFIX = "tag:yaml.org,2002:"
STR_TAG = YAML_TAG_PREFIX + "str"
MERGE_TAG = YAML_TAG_PREFIX + "merge"
# Tags a scalar may carry (explicitly or by resolution); collection tags on scalars are refused.
SCALAR_TAGS = frozenset(YAML_TAG_PREFIX + t for t in ("null", "bool", "int", "float", "binary", "timestamp", "str"))
# The only tags a mapping or a sequence may carry.
COLLECTION_TAGS = {yaml.MappingStartEvent: YAML_TAG_PREFIX + "map", yaml.SequenceStartEvent: YAML_TAG_PREFIX + "seq"}
# Plain scalars are typed by their first character (YAML 1.1 implicit resolvers, as PyYAML's safe
# loader): a plain scalar whose first character has no resolver is a string, without a regex.
_IMPLICIT: dict[str | None, list[tuple[str, Any]]] = _Loader.yaml_implicit_resolvers
_WILDCARD = _IMPLICIT.get(None, [])
_TYPED_FIRST = frozenset(k for k in _IMPLICIT if k is not None)
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def construct_scalar(tag: str, value: str) -> Any:
    """The value PyYAML's safe loader builds for a scalar of a standard `tag`; its constructors raise
    several kinds of exception on text that does not fit the tag."""
    return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, yaml.ScalarNode(tag, value))


def _resolve_plain(value: str) -> str:
    """The tag PyYAML's safe resolver gives a plain (unquoted, untagged) scalar."""
    for tag, regexp in _IMPLICIT.get(value[:1], []) + _WILDCARD:
        if regexp.match(value):
            return str(tag)
    return STR_TAG


@dataclass
class Document:
    """One YAML document: its data and where each key and value starts.

    `key_locations` / `value_locations` map a path to where that key or value starts. A reader may
    leave the inside of some one-line flow collections unmapped (`unmapped_flows`: the path of each
    such collection → what `map_flows` needs to map it); the first question about a place inside
    one of them maps them all.
    """

    path: str
    index: int
    start: Location
    data: Any = None
    key_locations: dict[Path_, Location] = field(default_factory=dict)
    value_locations: dict[Path_, Location] = field(default_factory=dict)
    unmapped_flows: dict[Path_, Any] = field(default_factory=dict)
    map_flows: Callable[[Document], None] | None = None

    def all_locations(self) -> tuple[dict[Path_, Location], dict[Path_, Location]]:
        """Every key's and every value's location."""
        self._map_flows()
        return self.key_locations, self.value_locations

    def _map_flows(self) -> None:
        if self.unmapped_flows and self.map_flows is not None:
            self.map_flows(self)
            self.unmapped_flows = {}

    def _in_unmapped_flow(self, path: Path_) -> bool:
        flows = self.unmapped_flows
        for end in range(len(path) + 1):  # noqa: SIM110 - a loop, not any(): this runs for every experiment
            if path[:end] in flows:
                return True
        return False

    def field_locations(self, base: Path_, names: tuple[str, ...], every: bool = False) -> dict[str, Location]:
        """Where the values of the fields `names` of the mapping at `base` start: for the fields
        present, or (`every`) for all, a missing one at the closest known position above it."""
        if self.unmapped_flows and self._in_unmapped_flow(base):
            self._map_flows()
        values = self.value_locations
        found = {}
        for name in names:
            location = values.get((*base, name))
            if location is not None:
                found[name] = location
            elif every:
                found[name] = self.location_of((*base, name))
        return found

    def location_of(self, path: Path_, prefer_key: bool = False) -> Location:
        """The closest known position for `path` (walking up to the document start)."""
        table = self.key_locations if prefer_key else self.value_locations
        location = table.get(path)
        if location is not None:
            return location
        if self.unmapped_flows and self._in_unmapped_flow(path):
            self._map_flows()
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            location = table.get(prefix) or self.value_locations.get(prefix)
            if location is not None:
                return location
        return self.start


class _Abort(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.code)
        self.problem = problem


def _where(path: str, event: Any) -> Location:
    mark = event.start_mark
    return Location(path, mark.line + 1, mark.column + 1)


def _abort(path: str, event: Any, code: str, message: str, hint: str) -> _Abort:
    return _Abort(Problem(code, _where(path, event), message, hint))


class _Reader:
    """Turns one file's parser events into documents.

    The innermost open collection lives in local variables (`parent`, its path `base`, whether it
    is a mapping, and the key read but not yet given a value); enclosing ones wait on a stack. The
    common events are handled inline: this loop runs for every key and value of every manifest.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.documents: list[Document] = []
        self.problems: list[Problem] = []

    def read(self, text: str) -> None:
        loader = _Loader(text)
        try:
            self._loop(loader.get_event)
        finally:
            loader.dispose()

    def _loop(self, next_event: Any) -> None:  # noqa: PLR0915 - one flat loop is the fast path
        scalar_event, map_start, seq_start = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent
        map_end, seq_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
        typed_first, always_resolve = _TYPED_FIRST, bool(_WILDCARD)
        stack: list[tuple[Any, Path_, bool]] = []
        parent: Any = None
        base: Path_ = ()
        is_map = False
        key: str | None = None
        doc = Document(self.path, 0, Location(self.path, 1, 1))
        key_marks: dict[Path_, Any] = {}
        value_marks: dict[Path_, Any] = {}
        while True:
            event = next_event()
            kind = type(event)
            if kind is scalar_event:
                value = event.value
                if event.anchor is not None or event.tag is not None or (
                        event.implicit[0] and (always_resolve or value[:1] in typed_first)
                        and _resolve_plain(value) != STR_TAG):
                    value = self._typed_scalar(event, is_map and key is None)
                if is_map:
                    if key is None:
                        fresh = type(value) is str and value not in parent
                        key = value if fresh else self._odd_key(key_marks, event, value, parent, base)
                        key_marks[(*base, key)] = event.start_mark
                        continue
                    value_marks[(*base, key)] = event.start_mark
                    parent[key] = value
                    key = None
                elif parent is not None:
                    value_marks[(*base, len(parent))] = event.start_mark
                    parent.append(value)
                else:
                    value_marks[()] = event.start_mark
                    doc.data = value
            elif kind is map_end or kind is seq_end:
                parent, base, is_map = stack.pop()
            elif kind is map_start or kind is seq_start:
                if event.anchor is not None or event.tag is not None or len(stack) >= MAX_DEPTH or (
                        is_map and key is None):
                    self._check_collection(event, len(stack), is_map and key is None)
                new: Any = {} if kind is map_start else []
                if is_map:
                    here: Path_ = (*base, key)  # type: ignore[arg-type]  # _check_collection: key is set
                    parent[key] = new
                    key = None
                elif parent is not None:
                    here = (*base, len(parent))
                    parent.append(new)
                else:
                    here = ()
                    doc.data = new
                value_marks[here] = event.start_mark
                stack.append((parent, base, is_map))
                parent, base, is_map = new, here, kind is map_start
            elif kind is yaml.DocumentStartEvent:
                doc = Document(self.path, len(self.documents), _where(self.path, event))
                key_marks, value_marks = {}, {}
            elif kind is yaml.DocumentEndEvent:
                doc.key_locations, doc.value_locations = self._located(key_marks), self._located(value_marks)
                self.documents.append(doc)
            elif kind is yaml.AliasEvent:
                raise _abort(self.path, event, "E103", "YAML aliases are not allowed", "write the value out in full")
            elif kind is yaml.StreamEndEvent:
                return

    def _located(self, marks: dict[Path_, Any]) -> dict[Path_, Location]:
        path = self.path
        return {where: Location(path, mark.line + 1, mark.column + 1) for where, mark in marks.items()}

    def _odd_key(self, key_marks: dict[Path_, Any], event: Any, key: Any, mapping: dict[str, Any], base: Path_) -> str:
        """A key that is not a fresh string: typed scalars become their text; duplicates are reported."""
        if type(key) is not str:
            key = str(key)
        if key in mapping:
            first = key_marks.get((*base, key))
            where = f" (first at line {first.line + 1})" if first is not None else ""
            shown = "(a key-like name)" if find_key_like(key) else f"'{key[:64]}'"
            self.problems.append(Problem("E102", _where(self.path, event), f"duplicate key {shown}{where}",
                                         "keep one of the two keys"))
        return str(key)

    def _check_anchor(self, event: Any) -> None:
        if event.anchor is not None:
            raise _abort(self.path, event, "E103", "YAML anchors are not allowed", "write the value out in full")

    def _check_collection(self, event: Any, depth: int, at_key: bool) -> None:
        """Refuses an anchored, too deep, oddly tagged collection, or one used as a mapping key."""
        self._check_anchor(event)
        if depth >= MAX_DEPTH:
            raise _abort(self.path, event, "E105", f"nesting deeper than {MAX_DEPTH} levels", "flatten the structure")
        if event.tag not in (None, "!", COLLECTION_TAGS[type(event)]):
            custom = not event.tag.startswith(YAML_TAG_PREFIX)
            message = "custom YAML tags are not allowed" if custom else "unsupported YAML tag"
            raise _abort(self.path, event, "E104", message, "remove the tag")
        if at_key:
            raise _abort(self.path, event, "E101", "mapping keys must be plain strings", "use a string key")

    def _typed_scalar(self, event: Any, at_key: bool) -> Any:
        """An anchored or tagged scalar (refused unless the tag is standard), or a plain one that
        resolves to more than a string."""
        self._check_anchor(event)
        tag = event.tag
        if tag in (None, "!"):
            if not event.implicit[0]:
                return event.value  # quoted, or '!'-tagged: always a string
            tag = _resolve_plain(event.value)
            if tag == MERGE_TAG and at_key:
                raise _abort(self.path, event, "E104", "YAML merge keys ('<<') are not allowed",
                             "write the keys out in full")
            if tag not in SCALAR_TAGS:
                return event.value  # '=' and '<<' as plain values: just text
        elif not tag.startswith(YAML_TAG_PREFIX):
            raise _abort(self.path, event, "E104", "custom YAML tags are not allowed", "remove the tag")
        if tag == STR_TAG:
            return event.value
        if tag not in SCALAR_TAGS:
            raise _abort(self.path, event, "E104", "unsupported YAML tag", "remove the tag")
        try:
            return construct_scalar(tag, event.value)
        except Exception as err:  # PyYAML's scalar constructors raise KeyError, AttributeError, ... on bad text
            raise _abort(self.path, event, "E101", "value cannot be read as its YAML type", "quote the value") from err


def parse_documents(path: str, text: str) -> tuple[list[Document], list[Problem]]:
    """All documents of one file, or the problems that stop it from being read. Files in the
    plain block subset manifests are usually written in take the faster line reader."""
    from expctl.manifest.yamlblock import read_block_document  # noqa: PLC0415 - it imports this module

    fast = read_block_document(path, text)
    if fast is not None:
        return [fast], []
    return read_events(path, text)


def read_events(path: str, text: str) -> tuple[list[Document], list[Problem]]:
    """`parse_documents` by the event reader alone: any YAML, every check."""
    reader = _Reader(path)
    try:
        reader.read(text)
    except _Abort as abort:
        return [], [*reader.problems, abort.problem]
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        location = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        message = f"YAML syntax error: {err.problem or err.context or 'unreadable'}"
        return [], [*reader.problems, Problem("E101", location, message, "fix the YAML syntax")]
    except yaml.YAMLError:
        return [], [*reader.problems, Problem("E101", Location(path, 1, 1), "YAML cannot be read", "")]
    # Duplicate keys are reported but do not stop validation of the rest of the document.
    return [d for d in reader.documents if d.data is not None], reader.problems

"""Safe YAML reading with a position for every key and value — adapter.

A small recursive composer builds plain Python data from PyYAML's event stream (libyaml's C
parser when PyYAML has it), so that positions are exact and hostile input fails fast: the first
anchor or alias ends the file (nothing is ever expanded, so no billion-laughs blow-up), duplicate
keys and custom tags are problems, and nesting depth is bounded. Scalars are typed as PyYAML's
safe loader types them (YAML 1.1: `yes` is true, `0x1f` is 31, ...). Parser messages are used
without their context snippet, which could quote a secret from the offending line.

Why events rather than `yaml.compose`: the composer resolves aliases without saying so and drops
anchors and document start marks, so refusing anchors and locating documents would take a second
pass over the text; the events give all of it in one pass, and in document order, so the first
problem in the file is the one reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from expctl.core.codes import problem
from expctl.core.errors import Location, Problem
from expctl.core.manifest.secretscan import find_key_like

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # SafeLoader: PyYAML built without libyaml

MAX_DEPTH = 64
Path_ = tuple[str | int, ...]
YAML_TAG_PREFIX = "tag:yaml.org,2002:"
STR_TAG = YAML_TAG_PREFIX + "str"
MERGE_TAG = YAML_TAG_PREFIX + "merge"
# Tags a scalar may carry (explicitly or by resolution); collection tags on scalars are refused.
SCALAR_TAGS = frozenset(YAML_TAG_PREFIX + t for t in ("null", "bool", "int", "float", "binary", "timestamp", "str"))
# The only tags a mapping or a sequence may carry.
COLLECTION_TAGS = {yaml.MappingStartEvent: YAML_TAG_PREFIX + "map", yaml.SequenceStartEvent: YAML_TAG_PREFIX + "seq"}
# Plain scalars are typed as PyYAML's safe loader types them, by implicit resolvers listed under
# their first character: one whose first character has none (`name`, `label`, ...) is a string
# without trying a regex. Resolvers listed under None would apply to every scalar.
_IMPLICIT: dict[str | None, list[tuple[str, Any]]] = _Loader.yaml_implicit_resolvers
_WILDCARD = _IMPLICIT.get(None, [])
_TYPED_FIRST = frozenset(k for k in _IMPLICIT if k is not None)
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _resolve_plain(value: str) -> str:
    """The tag PyYAML's safe resolver gives a plain (unquoted, untagged) scalar."""
    for tag, regexp in _IMPLICIT.get(value[:1], []) + _WILDCARD:
        if regexp.match(value):
            return str(tag)
    return STR_TAG


@dataclass
class Document:
    """One YAML document: its data and where it, each key and each value start."""

    path: str
    start: Location
    data: Any = None
    key_locations: dict[Path_, Location] = field(default_factory=dict)
    value_locations: dict[Path_, Location] = field(default_factory=dict)

    def all_locations(self) -> tuple[dict[Path_, Location], dict[Path_, Location]]:
        """Every key's and every value's location."""
        return self.key_locations, self.value_locations

    def field_locations(self, base: Path_, names: tuple[str, ...], every: bool = False) -> dict[str, Location]:
        """Where the values of the fields `names` of the mapping at `base` start: for the fields
        present, or (`every`) for all, a missing one at the closest known position above it."""
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
    return _Abort(problem(code, _where(path, event), message, hint))


class _Reader:
    """Composes one file's parser events into documents, one method per kind of node.

    `depth` is the number of collections around a node; `here` is its path in the document.
    """

    def __init__(self, path: str, next_event: Any) -> None:
        self.path = path
        self.next_event = next_event
        self.problems: list[Problem] = []
        self.keys: dict[Path_, Location] = {}
        self.values: dict[Path_, Location] = {}

    def documents(self) -> list[Document]:
        next_event = self.next_event
        next_event()  # the stream start
        documents = []
        while type(start := next_event()) is yaml.DocumentStartEvent:
            self.keys, self.values = {}, {}
            data = self._node(next_event(), 0, ())
            next_event()  # the document end
            documents.append(Document(self.path, _where(self.path, start), data, self.keys, self.values))
        return documents

    def _node(self, event: Any, depth: int, here: Path_) -> Any:
        self.values[here] = _where(self.path, event)
        kind = type(event)
        if kind is yaml.ScalarEvent:
            return self._scalar(event, at_key=False)
        if kind is yaml.AliasEvent:
            raise _abort(self.path, event, "E103", "YAML aliases are not allowed", "write the value out in full")
        self._check_collection(event, depth, at_key=False)
        next_event = self.next_event
        if kind is yaml.SequenceStartEvent:
            items: list[Any] = []
            while type(event := next_event()) is not yaml.SequenceEndEvent:
                items.append(self._node(event, depth + 1, (*here, len(items))))
            return items
        mapping: dict[str, Any] = {}
        while type(event := next_event()) is not yaml.MappingEndEvent:
            key = self._key(event, mapping, depth + 1, here)
            mapping[key] = self._node(next_event(), depth + 1, (*here, key))
        return mapping

    def _key(self, event: Any, mapping: dict[str, Any], depth: int, base: Path_) -> str:
        """The text of a mapping key (a typed scalar becomes its text); duplicates are reported."""
        if type(event) is yaml.AliasEvent:
            raise _abort(self.path, event, "E103", "YAML aliases are not allowed", "write the value out in full")
        if type(event) is not yaml.ScalarEvent:
            self._check_collection(event, depth, at_key=True)  # raises: keys are scalars
        value = self._scalar(event, at_key=True)
        key: str = value if type(value) is str else str(value)
        where = _where(self.path, event)
        if key in mapping:
            first = self.keys.get((*base, key))
            at = f" (first at line {first.line})" if first is not None else ""
            shown = "(a key-like name)" if find_key_like(key) else f"'{key[:64]}'"
            self.problems.append(problem("E102", where, f"duplicate key {shown}{at}"))
        self.keys[(*base, key)] = where
        return key

    def _check_collection(self, event: Any, depth: int, at_key: bool) -> None:
        """Refuses an anchored, too deep, oddly tagged collection, or one used as a mapping key."""
        if event.anchor is not None:
            raise _abort(self.path, event, "E103", "YAML anchors are not allowed", "write the value out in full")
        if depth >= MAX_DEPTH:
            raise _abort(self.path, event, "E105", f"nesting deeper than {MAX_DEPTH} levels", "flatten the structure")
        if event.tag not in (None, "!", COLLECTION_TAGS[type(event)]):
            custom = not event.tag.startswith(YAML_TAG_PREFIX)
            message = "custom YAML tags are not allowed" if custom else "unsupported YAML tag"
            raise _abort(self.path, event, "E104", message, "remove the tag")
        if at_key:
            raise _abort(self.path, event, "E101", "mapping keys must be plain strings", "use a string key")

    def _scalar(self, event: Any, at_key: bool) -> Any:
        value = event.value
        if event.anchor is None and event.tag is None and not (
                event.implicit[0] and (_WILDCARD or value[:1] in _TYPED_FIRST)):
            return value  # quoted, or plain and cannot resolve to anything but a string
        return self._typed_scalar(event, at_key)

    def _typed_scalar(self, event: Any, at_key: bool) -> Any:
        """An anchored or tagged scalar (refused unless the tag is standard), or a plain one that
        may resolve to more than a string."""
        if event.anchor is not None:
            raise _abort(self.path, event, "E103", "YAML anchors are not allowed", "write the value out in full")
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
            return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, yaml.ScalarNode(tag, event.value))
        except Exception as err:  # PyYAML's scalar constructors raise KeyError, AttributeError, ... on bad text
            raise _abort(self.path, event, "E101", "value cannot be read as its YAML type", "quote the value") from err


def parse_documents(path: str, text: str) -> tuple[list[Document], list[Problem]]:
    """All non-empty documents of one file, or the problems that stop it from being read.
    Duplicate keys are reported but do not stop validation of the rest of the document."""
    loader = _Loader(text)
    reader = _Reader(path, loader.get_event)
    try:
        documents = reader.documents()
    except _Abort as abort:
        return [], [*reader.problems, abort.problem]
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        location = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        message = f"YAML syntax error: {err.problem or err.context or 'unreadable'}"
        return [], [*reader.problems, problem("E101", location, message)]
    except yaml.YAMLError:
        return [], [*reader.problems, problem("E101", Location(path, 1, 1), "YAML cannot be read", "")]
    finally:
        loader.dispose()
    return [d for d in documents if d.data is not None], reader.problems


def walk(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any, bool]]:
    """Every node of loaded data with its path, and every mapping key (as text, flagged True), so
    rules can look at values and keys without each writing the same traversal."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [(path, value)]
    while stack:
        here, item = stack.pop()
        yield here, item, False
        if isinstance(item, dict):
            for key, child in item.items():
                yield (*here, key), str(key), True
                stack.append(((*here, key), child))
        elif isinstance(item, list):
            stack.extend(((*here, i), child) for i, child in enumerate(item))

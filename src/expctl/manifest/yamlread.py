"""Safe YAML reading with a position for every key and value — adapter.

Builds plain Python data straight from the parser's event stream (the C parser when PyYAML has
it), so that positions are exact and hostile input fails fast: the first anchor or alias ends the
file (no alias expansion ever happens, so no billion-laughs blow-up), duplicate keys and custom
tags are problems, and nesting depth is bounded. Parser messages are used without their context
snippet, which could quote a secret from the offending line.
"""

from __future__ import annotations

from collections.abc import Iterator
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


@dataclass
class Document:
    """One YAML document: its data and where each key and value starts."""

    path: str
    index: int
    start: Location
    data: Any = None
    key_locations: dict[Path_, Location] = field(default_factory=dict)
    value_locations: dict[Path_, Location] = field(default_factory=dict)

    def location_of(self, path: Path_, prefer_key: bool = False) -> Location:
        """The closest known position for `path` (walking up to the document start)."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            table = self.key_locations if prefer_key else self.value_locations
            if prefix in table:
                return table[prefix]
            if prefix in self.value_locations:
                return self.value_locations[prefix]
        return self.start


class _Abort(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.code)
        self.problem = problem


@dataclass
class _Frame:
    container: dict[Any, Any] | list[Any]
    path: Path_
    pending_key: Any = None
    has_key: bool = False


class _Builder:
    """Turns parser events into documents; one instance per file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.documents: list[Document] = []
        self.problems: list[Problem] = []
        self._stack: list[_Frame] = []
        self._doc: Document | None = None
        self._resolver = yaml.resolver.Resolver()
        self._constructor = yaml.constructor.SafeConstructor()

    def loc(self, event: Any) -> Location:
        mark = event.start_mark
        return Location(self.path, mark.line + 1, mark.column + 1)

    def feed(self, event: Any) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self._doc = Document(self.path, len(self.documents), self.loc(event))
        elif isinstance(event, yaml.DocumentEndEvent):
            assert self._doc is not None
            self.documents.append(self._doc)
            self._doc = None
        elif isinstance(event, yaml.AliasEvent):
            self._abort(event, "E103", "YAML aliases are not allowed", "write the value out in full")
        elif isinstance(event, yaml.ScalarEvent):
            self._check_anchor(event)
            self._add(event, self._scalar(event))
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self._check_anchor(event)
            self._start_collection(event)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self._stack.pop()

    def _abort(self, event: Any, code: str, message: str, hint: str) -> None:
        raise _Abort(Problem(code, self.loc(event), message, hint))

    def _check_anchor(self, event: Any) -> None:
        if event.anchor is not None:
            self._abort(event, "E103", "YAML anchors are not allowed", "write the value out in full")

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag in (None, "!"):
            if not event.implicit[0]:
                return event.value  # quoted: always a string
            tag = self._resolver.resolve(yaml.ScalarNode, event.value, (True, False))  # type: ignore[no-untyped-call]
            if tag == MERGE_TAG and self._is_key_position():
                self._abort(event, "E104", "YAML merge keys ('<<') are not allowed", "write the keys out in full")
            if tag not in SCALAR_TAGS:
                return event.value  # '=' and '<<' as plain values: just text
        elif not tag.startswith(YAML_TAG_PREFIX):
            self._abort(event, "E104", "custom YAML tags are not allowed", "remove the tag")
        if tag == STR_TAG:
            return event.value
        if tag not in SCALAR_TAGS:
            self._abort(event, "E104", "unsupported YAML tag", "remove the tag")
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark)
        constructor: Any = self._constructor.yaml_constructors[tag]
        try:
            return constructor(self._constructor, node)
        except Exception:  # PyYAML's scalar constructors raise KeyError, AttributeError, ... on bad text
            self._abort(event, "E101", "value cannot be read as its YAML type", "quote the value")
        return None  # pragma: no cover - _abort raises

    def _is_key_position(self) -> bool:
        return bool(self._stack) and isinstance(self._stack[-1].container, dict) and not self._stack[-1].has_key

    def _start_collection(self, event: Any) -> None:
        if len(self._stack) >= MAX_DEPTH:
            self._abort(event, "E105", f"nesting deeper than {MAX_DEPTH} levels", "flatten the structure")
        if event.tag not in (None, "!", COLLECTION_TAGS[type(event)]):
            custom = not event.tag.startswith(YAML_TAG_PREFIX)
            message = "custom YAML tags are not allowed" if custom else "unsupported YAML tag"
            self._abort(event, "E104", message, "remove the tag")
        if self._is_key_position():
            self._abort(event, "E101", "mapping keys must be plain strings", "use a string key")
        container: dict[Any, Any] | list[Any] = (
            {} if isinstance(event, yaml.MappingStartEvent) else []
        )
        path = self._add(event, container)
        self._stack.append(_Frame(container, path))

    def _add(self, event: Any, value: Any) -> Path_:
        doc = self._doc
        assert doc is not None
        location = self.loc(event)
        if not self._stack:
            doc.data = value
            doc.value_locations[()] = location
            return ()
        frame = self._stack[-1]
        if isinstance(frame.container, list):
            path = (*frame.path, len(frame.container))
            frame.container.append(value)
        elif not frame.has_key:
            self._set_key(frame, event, value, location)
            return frame.path
        else:
            path = (*frame.path, frame.pending_key)
            frame.container[frame.pending_key] = value
            frame.has_key = False
        doc.value_locations[path] = location
        return path

    def _set_key(self, frame: _Frame, event: Any, key: Any, location: Location) -> None:
        if not isinstance(key, str):
            key = str(key)
        if key in frame.container:
            assert self._doc is not None
            first = self._doc.key_locations.get((*frame.path, key))
            where = f" (first at line {first.line})" if first else ""
            shown = "(a key-like name)" if find_key_like(key) else f"'{key[:64]}'"
            self.problems.append(Problem("E102", location, f"duplicate key {shown}{where}", "keep one of the two keys"))
        frame.pending_key = key
        frame.has_key = True
        assert self._doc is not None
        self._doc.key_locations[(*frame.path, key)] = location


def _events(text: str) -> Iterator[Any]:
    return yaml.parse(text, Loader=_Loader)


def parse_documents(path: str, text: str) -> tuple[list[Document], list[Problem]]:
    """All documents of one file, or the problems that stop it from being read."""
    builder = _Builder(path)
    try:
        for event in _events(text):
            builder.feed(event)
    except _Abort as abort:
        return [], [*builder.problems, abort.problem]
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        location = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        message = f"YAML syntax error: {err.problem or err.context or 'unreadable'}"
        return [], [*builder.problems, Problem("E101", location, message, "fix the YAML syntax")]
    except yaml.YAMLError:
        return [], [*builder.problems, Problem("E101", Location(path, 1, 1), "YAML cannot be read", "")]
    # Duplicate keys are reported but do not stop validation of the rest of the document.
    return [d for d in builder.documents if d.data is not None], builder.problems

"""The fast path of YAML reading: the C composer builds the node tree, one walk builds the data.

Used only for files that cannot contain anything the careful event-based reader (`yamlread`)
exists to refuse: no anchors, aliases, tags or merge keys (`&`, `*`, `!`, `<<` appear nowhere in
the text), no deep nesting (bounded indentation and flow depth, so the recursive C composer stays
shallow). Anything unusual on the way — a duplicate key, a non-scalar key, a scalar that does not
construct, a parser error — returns None and the caller reads the file again the careful way, which
reports the problem with its position. For the files it accepts, the result is the same documents
with the same positions (a differential test checks this).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from expctl.errors import Location
from expctl.manifest.yamlread import (
    MAX_DEPTH,
    SCALAR_TAGS,
    STR_TAG,
    YAML_TAG_PREFIX,
    Document,
    Path_,
    _Loader,
)

# Anything the careful reader treats specially; also '%' directives, tabs and line breaks other
# than "\n" (YAML also breaks lines at \r, NEL, LS and PS), so that counting "\n" finds `---` lines.
_SPECIAL = re.compile("[&*!%\t\r\x85\u2028\u2029]|<<")
# Three flow collections opened without a close in between, or very deep block indentation.
_DEEP_FLOW = re.compile(r"[\[{][^\]}]*[\[{][^\]}]*[\[{]")
_DEEP_BLOCK = re.compile(r"^ {96,}", re.MULTILINE)
_DOCUMENT_MARKER = re.compile(r"^---(?=[ \t\r\n]|$)", re.MULTILINE)
MAP_TAG = YAML_TAG_PREFIX + "map"
SEQ_TAG = YAML_TAG_PREFIX + "seq"


class _Fallback(Exception):
    """The careful reader must take this file."""


class _Walker:
    def __init__(self, path: str, doc: Document) -> None:
        self.path = path
        self.doc = doc
        self.constructor = _CONSTRUCTOR

    def loc(self, node: Any) -> Location:
        mark = node.start_mark
        return Location(self.path, mark.line + 1, mark.column + 1)

    def scalar(self, node: Any) -> Any:
        tag = node.tag
        if tag == STR_TAG:
            return node.value
        if tag not in SCALAR_TAGS:
            return node.value  # e.g. '=' resolves to tag:yaml.org,2002:value: plain text, as yamlread
        try:
            return self.constructor.yaml_constructors[tag](self.constructor, node)
        except Exception as err:  # any constructor failure: let the careful reader locate it
            raise _Fallback from err

    def value(self, node: Any, path: Path_, depth: int) -> Any:
        self.doc.value_locations[path] = self.loc(node)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if depth >= MAX_DEPTH:
            raise _Fallback
        if isinstance(node, yaml.MappingNode) and node.tag == MAP_TAG:
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode) and node.tag == SEQ_TAG:
            return [self.value(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        raise _Fallback

    def mapping(self, node: Any, path: Path_, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Fallback
            key = self.scalar(key_node)
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                raise _Fallback  # duplicate key: the careful reader reports it
            key_path = (*path, key)
            self.doc.key_locations[key_path] = self.loc(key_node)
            result[key] = self.value(value_node, key_path, depth + 1)
        return result


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _document_start(text_markers: list[int], root_line: int, previous_root_line: int) -> int | None:
    """The line of the `---` that opened this document, if it has one (0-based)."""
    candidates = [m for m in text_markers if previous_root_line < m <= root_line]
    return candidates[-1] if candidates else None


def parse_fast(path: str, text: str) -> list[Document] | None:
    """The file's documents, or None when the careful reader must take it."""
    if _SPECIAL.search(text) or _DEEP_FLOW.search(text) or _DEEP_BLOCK.search(text):
        return None
    try:
        roots = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.YAMLError:
        return None
    marker_lines = [text.count("\n", 0, m.start()) for m in _DOCUMENT_MARKER.finditer(text)]
    documents: list[Document] = []
    previous = -1
    for index, root in enumerate(roots):
        root_line = root.start_mark.line
        opened = _document_start(marker_lines, root_line, previous)
        start = Location(path, opened + 1, 1) if opened is not None else \
            Location(path, root_line + 1, root.start_mark.column + 1)
        previous = root_line
        doc = Document(path, index, start)
        try:
            doc.data = _Walker(path, doc).value(root, (), 0)
        except _Fallback:
            return None
        documents.append(doc)
    return [d for d in documents if d.data is not None]

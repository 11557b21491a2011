"""Reading a spec file (YAML or JSON) with limits: size, encoding, nesting, aliases.

A spec file is read through :mod:`hwsearch.files` (a regular file, at most
:data:`SPEC_FILE_BYTES`), decoded as UTF-8 (a binary, UTF-16 or otherwise undecodable
file is a spec error naming the file), and parsed by a YAML loader that cannot be made to
blow up: nesting deeper than :data:`MAX_DEPTH` and a document whose aliases expand past
:data:`MAX_NODES` values and characters (the "billion laughs") are refused while the document is
composed, before any Python object is built. JSON is parsed by :mod:`json`, whose
recursion on deep input is caught. Every problem is a :class:`~hwsearch.errors.SpecErrors`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hwsearch.errors import SpecError, SpecErrors
from hwsearch.files import FileAccessError, read_capped, resolve

#: Largest spec file read: 1 MiB, as the server's request body.
SPEC_FILE_BYTES = 1 << 20
#: Deepest nesting of mappings and lists a spec file may have.
MAX_DEPTH = 64
#: Most a YAML document may hold once its aliases are expanded, counting one per value and
#: one per character of each scalar (a 1 MiB file without aliases stays well within it).
MAX_NODES = 4_000_000


def _refuse(reason: str) -> SpecErrors:
    return SpecErrors([SpecError("", reason)])


class _Exhausted(yaml.YAMLError):
    """Raised while composing a YAML document that is too deep or expands too far."""


class LimitedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses deep nesting and alias expansion past the limits."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise _Exhausted(f"nested more than {MAX_DEPTH} levels deep at line {mark.line + 1}")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Refuse ``root`` if expanding its aliases gives more than :data:`MAX_NODES` nodes.

    Aliases share node objects, so sizes are counted once per object (memoised) and
    summed per reference: linear in the document, however far it would expand."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if done or not children:
            visiting.discard(id(node))
            if done:
                sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            else:  # a scalar, or an empty collection
                text = node.value if isinstance(node.value, str) else ""
                sizes[id(node)] = 1 + len(text)
            if sizes[id(node)] > MAX_NODES:
                raise _Exhausted(
                    f"expands to more than {MAX_NODES} values and characters "
                    "(aliases repeating aliases)"
                )
            continue
        if id(node) in visiting:
            raise _Exhausted("holds an alias to a collection inside itself")
        visiting.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in visiting:
                raise _Exhausted("holds an alias to a collection inside itself")
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def decode_spec(data: bytes, shown: str) -> str:
    """``data`` as UTF-8 text (a BOM allowed); a spec error for anything else."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _refuse(f"{shown} is UTF-16 text; save the spec as UTF-8")
    if b"\x00" in data:
        raise _refuse(f"{shown} is binary (it holds NUL bytes), not a YAML or JSON spec")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(f"{shown} is not UTF-8 text (byte {exc.start})") from None


def load_json(text: str) -> Any:
    """JSON ``text``; a spec error for malformed or too deeply nested text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _refuse(f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise _refuse("not a usable spec: the JSON is nested too deeply") from None


def load_yaml(text: str) -> Any:
    """YAML ``text`` (one document), under :class:`LimitedLoader`'s limits."""
    loader = LimitedLoader(text)
    try:
        return loader.get_single_data()
    except _Exhausted as exc:
        raise _refuse(f"not a usable spec: the YAML {exc}") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise _refuse(f"not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise _refuse("not a usable spec: the YAML is nested too deeply") from None
    finally:
        loader.dispose()


def read_spec_data(path: str | Path) -> tuple[Path, Any]:
    """The resolved path of the spec file ``path`` and its data (YAML or JSON by extension;
    otherwise JSON, then YAML)."""
    try:
        resolved = resolve(path)
        data = read_capped(resolved, SPEC_FILE_BYTES)
    except FileAccessError as exc:
        raise _refuse(f"cannot read {str(path)!r}: {exc.reason}") from None
    text = decode_spec(data, repr(str(path)))
    suffix = resolved.suffix.lower()
    if suffix == ".json":
        return resolved, load_json(text)
    if suffix in (".yaml", ".yml"):
        return resolved, load_yaml(text)
    try:
        return resolved, json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return resolved, load_yaml(text)


__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "SPEC_FILE_BYTES",
    "LimitedLoader",
    "decode_spec",
    "load_json",
    "load_yaml",
    "read_spec_data",
]

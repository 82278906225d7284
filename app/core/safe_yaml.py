"""YAML from strangers: PyYAML's safe loader, bounded in depth and in alias expansion.

``yaml.safe_load`` constructs no arbitrary objects, but it still trusts the shape of the
document. Nesting a few thousand levels deep overflows the composer's recursion (a
RecursionError, not a YAMLError), and a "billion laughs" document (anchors whose aliases
refer to anchors, nine levels of ten) is a few hundred bytes that any code walking the
result expands to a billion nodes. So nodes are counted as they are composed: nesting
deeper than ``max_depth`` or more than ``max_alias_nodes`` nodes reached through aliases
stops the parse, with the line and the setting that bounds it. Anything else the safe
constructor cannot build (an integer of 5000 digits, a date that does not exist) is
reported as invalid YAML too, never as a crash.
"""

from __future__ import annotations

from typing import Any

import yaml


class YamlLimitError(yaml.MarkedYAMLError):
    """The document is over one of our limits; `setting` names it, `limit` is its value."""

    def __init__(self, problem: str, mark: yaml.Mark | None, setting: str, limit: int) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.setting = setting
        self.limit = limit


class YamlValueError(yaml.MarkedYAMLError):
    """A value the safe constructor cannot build (it raised ValueError or OverflowError)."""


def _limits(max_depth: int | None, max_alias_nodes: int | None) -> tuple[int, int]:
    if max_depth is not None and max_alias_nodes is not None:
        return max_depth, max_alias_nodes
    from app.config import get_settings

    settings = get_settings()
    return (
        settings.max_yaml_depth if max_depth is None else max_depth,
        settings.max_yaml_alias_nodes if max_alias_nodes is None else max_alias_nodes,
    )


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer counts depth and alias-expanded nodes."""

    max_depth = 32
    max_alias_nodes = 10_000

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._through_aliases = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes in its subtree, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            self._through_aliases += self._sizes.get(id(node), 1)
            if self._through_aliases > self.max_alias_nodes:
                raise YamlLimitError(
                    f"aliases expand to more than {self.max_alias_nodes} nodes "
                    f"(CONDARCHIVE_MAX_YAML_ALIAS_NODES={self.max_alias_nodes})",
                    mark,
                    "CONDARCHIVE_MAX_YAML_ALIAS_NODES",
                    self.max_alias_nodes,
                )
            return node
        self._depth += 1
        if self._depth > self.max_depth:
            raise YamlLimitError(
                f"nested deeper than {self.max_depth} levels "
                f"(CONDARCHIVE_MAX_YAML_DEPTH={self.max_depth})",
                self.peek_event().start_mark,
                "CONDARCHIVE_MAX_YAML_DEPTH",
                self.max_depth,
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(
                self._sizes.get(id(key), 1) + self._sizes.get(id(value), 1)
                for key, value in node.value
            )
        self._sizes[id(node)] = size
        return node


def _loader(text: str, max_depth: int | None, max_alias_nodes: int | None) -> _BoundedLoader:
    depth, aliases = _limits(max_depth, max_alias_nodes)
    loader = _BoundedLoader(text)
    loader.max_depth, loader.max_alias_nodes = depth, aliases
    return loader


def compose(
    text: str, max_depth: int | None = None, max_alias_nodes: int | None = None
) -> yaml.Node | None:
    """The node tree of a single-document YAML text (for line numbers), within the limits."""
    loader = _loader(text, max_depth, max_alias_nodes)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def construct(node: yaml.Node | None) -> Any:
    """The data of a node tree from :func:`compose`, as :func:`load` builds it from the text.

    For a caller that needs both the data and the nodes (their lines) from one parse. Merge
    keys (``<<``) are flattened in the tree as it is read: take what is needed from the nodes
    first. Raises :class:`YamlValueError` for a value the safe constructor cannot build.
    """
    if node is None:
        return None
    loader = _BoundedLoader("")
    try:
        return loader.construct_document(node)
    except (ValueError, OverflowError) as exc:
        raise YamlValueError(problem=f"cannot read a value: {exc}") from exc
    finally:
        loader.dispose()


def load(text: str, max_depth: int | None = None, max_alias_nodes: int | None = None) -> Any:
    """Like ``yaml.safe_load``, within the limits (default: the settings).

    Raises a :class:`yaml.YAMLError` for every kind of bad document: the PyYAML errors,
    :class:`YamlLimitError`, and :class:`YamlValueError`.
    """
    return construct(compose(text, max_depth, max_alias_nodes))

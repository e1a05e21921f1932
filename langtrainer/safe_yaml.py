"""The one YAML reader for user input: recipes, `--set` values, a run's saved recipe.

PyYAML's safe loader already refuses Python tags, but it expands aliases:
a 1 KB file of nested aliases (`a: &a [x, x]`, `b: &b [*a, *a]`, ...)
becomes billions of nodes once a consumer walks it (type checks, deep
copies, dumping), which hangs or runs out of memory. This loader counts the
nodes the document stands for with every alias expanded and refuses it
beyond `NODE_BUDGET`; it also refuses an alias that contains itself and
any explicit tag outside YAML's core types.

It also reads `5e-5` and `1E10` as numbers: YAML 1.1 (PyYAML) wants a dot
in a float and would give the string '5e-5', which users write for
learning rates all the time.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from langtrainer.errors import UserError

# Far above any real recipe (the largest shipped one has about 150 nodes).
NODE_BUDGET = 10_000

_CORE_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "omap", "pairs", "set",
                 "merge", "value")
}

_FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _BudgetLoader(yaml.SafeLoader):
    """SafeLoader that checks the expanded size of the document before constructing it."""


_BudgetLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_WITHOUT_DOT, list("-+0123456789"))


def _expanded_size(root: yaml.Node, budget: int) -> int:
    """Nodes in the document with aliases expanded; UserError past `budget` or on a cycle."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise UserError("YAML alias refers to a node that contains it (a cycle)")
        if node.tag not in _CORE_TAGS:
            raise UserError(f"YAML tag {node.tag[:60]!r} is not allowed (plain values, lists and mappings only)")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
                if total > budget:
                    break
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
                if total > budget:
                    break
        active.discard(key)
        if total > budget:
            raise UserError(
                f"YAML document expands to more than {budget} values (nested aliases?); write the values out"
            )
        sizes[key] = total
        return total

    return size(root)


def parse(text: str, budget: int = NODE_BUDGET) -> Any:
    """Parse one YAML document safely; yaml.YAMLError for bad syntax, UserError for a refused document."""
    loader = _BudgetLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, budget)
        return loader.construct_document(node)
    finally:
        loader.dispose()

"""YAML with line numbers for every key, and a dump that reads like a hand-written cell."""

from __future__ import annotations

import re
from typing import Any

import yaml

from ._errors import PlanError


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `2e-4` as a float (YAML 1.1 wants `2.0e-4`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


MAX_TEXT = 2**20
"""The longest YAML text read (1 MiB: a plan naming every module of a 70B MoE is far shorter)."""


def load_with_lines(text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """The YAML value and the 1-based line of each mapping key, by key path."""
    if len(text) > MAX_TEXT:
        raise PlanError(f"the YAML is {len(text)} characters long, more than a plan can be ({MAX_TEXT}); "
                        "name modules by pattern (a regex or all-linear) instead of one by one")
    try:
        node = yaml.compose(text, Loader=_Loader)
        _check_size(node, budget(text))  # before anything walks or builds the aliased values
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        line = mark.line + 1 if mark is not None else None
        raise PlanError(f"YAML syntax error: {problem}", line=line) from None
    except (ValueError, RecursionError) as err:  # e.g. an integer of 5000 digits, lists nested 1000 deep
        if isinstance(err, PlanError):
            raise
        raise PlanError(f"the YAML cannot be read: {type(err).__name__}: {err}") from None
    lines: dict[tuple[str, ...], int] = {}
    _walk(node, (), lines)
    return data, lines


def budget(text: str) -> int:
    """How big the values of `text` may be once aliases are followed: about the document's own
    size (an alias reused a few times fits; `&a [*b, *b, ...]` nested nine deep, a "billion
    laughs", does not)."""
    return 2 * len(text) + 4096


def _check_size(root: Any, limit: int) -> None:
    """PlanError when following the aliases of the composed document `root` gives more than
    `limit` (nodes plus scalar characters), or never ends (an alias inside its own anchor).
    Each node is sized once, so this costs the document's size, not the expansion's."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise PlanError("a YAML alias refers to the anchor it is inside: the value would never end",
                            line=node.start_mark.line + 1)
        open_.add(key)
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in node.value)
        else:
            total = 1 + len(str(node.value))
        open_.discard(key)
        sizes[key] = total
        if total > limit:
            raise PlanError(
                f"YAML aliases here expand to more than {limit} values and characters, far more than the "
                f"{(limit - 4096) // 2} characters of the plan; write the values out instead of nesting aliases",
                line=node.start_mark.line + 1,
            )
        return total

    size(root)


def _walk(node: Any, path: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            lines.setdefault(key, key_node.start_mark.line + 1)
            _walk(value_node, key, lines)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(tuple, lambda d, v: d.represent_list(list(v)))


class _Top(dict):  # type: ignore[type-arg]
    """The plan's own mapping: always one key per line, even when every value is a scalar
    (PyYAML's default_flow_style=None would write `{method: ia3, r: 8}`)."""


_Dumper.add_representer(_Top, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=False))


def dump(data: dict[str, Any]) -> str:
    """One top-level key per line; short lists and mappings of scalars in flow style."""
    return yaml.dump(_Top(data), Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100,
                     allow_unicode=True)

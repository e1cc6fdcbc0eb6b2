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


def load_with_lines(text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """The YAML value and the 1-based line of each mapping key, by key path."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        line = mark.line + 1 if mark is not None else None
        raise PlanError(f"YAML syntax error: {problem}", line=line) from None
    lines: dict[tuple[str, ...], int] = {}
    _walk(node, (), lines)
    return data, lines


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

"""Strict reading of experiment configs: no duplicate keys, every number finite.

PyYAML keeps the last of two equal keys of a mapping; :class:`UniqueKeyLoader` refuses them,
naming the key and both lines. :func:`check_finite` refuses NaN and infinities (``.nan``,
``.inf``) anywhere in a built config, naming the dotted key, once the specific checks of each
section (which say what range is valid) have run.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import yaml

from ctxfusion.errors import ConfigError


class DuplicateKeyError(yaml.YAMLError):
    """A mapping of the YAML text gives one key twice."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` on a repeated key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if first is not None:
                raise DuplicateKeyError(f"key {key!r} is given twice (line {first} and line "
                                        f"{line}): keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def check_finite(value: Any, key: str = "") -> None:
    """Raise ConfigError naming the first NaN or infinite number in ``value`` (a config
    dataclass, list, mapping or number)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} = {value}: expected a finite number")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            check_finite(getattr(value, f.name), f"{key}.{f.name}" if key else f.name)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_finite(item, f"{key}[{i}]")
    elif isinstance(value, dict):
        for name, item in value.items():
            check_finite(item, f"{key}.{name}" if key else str(name))

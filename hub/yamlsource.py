"""Reading YAML while remembering where every value came from.

`load_yaml(text, file)` returns the plain Python data plus a `SourceMap` from dotted paths
(`connectors.billing.api_key`) to line numbers, so validation errors can point at the line.
`${VAR}` and `${VAR:-default}` in string values are replaced from the environment; an unset
variable without a default is an error naming the variable and where it was used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from hub.errors import ConfigError

_SCALARS = yaml.SafeLoader("")  # only its scalar constructors are used (bool, int, float, null)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class SourceMap:
    file: str
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, path: str) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if "." not in path:
                return self.lines.get(path)
            path = path.rsplit(".", 1)[0]

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line_of(path), path=path or None)


def interpolate(value: str, env: Mapping[str, str], *, where: str = "") -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (and has no ${{{name}:-default}})",
                          path=where or None)

    return _VAR.sub(replace, value)


def load_yaml(text: str, file: str, env: Mapping[str, str]) -> tuple[Any, SourceMap]:
    source = SourceMap(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", file=file,
                          line=mark.line + 1 if mark else None) from None
    if root is None:
        return {}, source
    return _to_python(root, "", source, env), source


def _to_python(node: yaml.Node, path: str, source: SourceMap, env: Mapping[str, str]) -> Any:
    source.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError("keys must be plain strings", file=source.file,
                                  line=key_node.start_mark.line + 1, path=path or None)
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in result:
                raise ConfigError(f"duplicate key {key!r}", file=source.file,
                                  line=key_node.start_mark.line + 1, path=child)
            source.lines[child] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, child, source, env)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, f"{path}.{i}" if path else str(i), source, env)
                for i, item in enumerate(node.value)]
    try:
        value = _SCALARS.construct_object(node)
    except yaml.YAMLError as exc:   # a scalar no safe constructor knows (`=`, an unknown !tag)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", file=source.file, line=node.start_mark.line + 1,
                          path=path or None) from None
    if isinstance(value, str) and "${" in value:
        try:
            value = interpolate(value, env, where=path)
        except ConfigError as exc:
            raise ConfigError(exc.detail, file=source.file, line=node.start_mark.line + 1, path=path) from None
    return value

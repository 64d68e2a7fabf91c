"""Stripe's form encoding: nested parameters as bracket keys, both ways.

    {"pause_collection": {"behavior": "void"}, "discounts": [{"coupon": "WINBACK"}], "expand": ["customer"]}
    <->  pause_collection[behavior]=void & discounts[0][coupon]=WINBACK & expand[0]=customer

Booleans are `true`/`false`; `None` is sent as an empty value, which Stripe reads as "unset"
(`pause_collection=` clears a pause, `metadata[key]=` removes a key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def flatten(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts/lists -> bracket-keyed pairs, in order."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            if not value:  # an empty mapping means "unset the whole thing"
                pairs.append((name, ""))
            pairs.extend(flatten(value, name))
        elif isinstance(value, list | tuple):
            if not value:  # `discounts=` clears a list
                pairs.append((name, ""))
            for index, item in enumerate(value):
                pairs.extend(flatten({str(index): item}, name))
        else:
            pairs.append((name, scalar(value)))
    return pairs


def scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode(params: Mapping[str, Any]) -> str:
    """A form body (or query string) for `params`."""
    return urlencode(flatten(params))


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Bracket-keyed pairs -> nested dicts and lists (`a[0]`, `a[]` and `a[b]` all understood).

    Values stay strings; a dict whose keys are all digits becomes a list (except `metadata`,
    where `"0"` is a legitimate key).
    """
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if not match:
            raise ValueError(f"malformed parameter name {key!r}")
        path = [match.group(1), *_PART.findall(match.group(2))]
        node = root
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if part == "":  # `a[]`: append
                part = str(sum(1 for _ in node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return _lists(root, parent="")


def _lists(node: Any, parent: str) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value, key) for key, value in node.items()}
    if converted and parent != "metadata" and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def parse(body: str) -> dict[str, Any]:
    """A form body or query string -> nested parameters."""
    return parse_pairs(parse_qsl(body, keep_blank_values=True))

"""Decoding Stripe's form encoding (``a[b][c]=``, ``items[0][price]=``, ``expand[]=``) and typed access."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import invalid, missing

_KEY = re.compile(r"\[([^\]]*)\]")


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


def decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head = raw_key.split("[", 1)[0]
        parts = [head, *_KEY.findall(raw_key[len(head) :])]
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            key = part
            if part == "":  # "expand[]=" appends
                key = str(len(node))
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise invalid(raw_key, f"Invalid parameter: {raw_key}")
    result = _listify(root)
    assert isinstance(result, dict)
    return result


def get_str(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing(name)
        return None
    if not isinstance(value, str):
        raise invalid(name, f"Invalid string: {name}")
    return value


def get_int(params: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = get_str(params, name, required=required)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise invalid(name, f"Invalid integer: {value}") from None


def get_bool(params: dict[str, Any], name: str) -> bool | None:
    value = get_str(params, name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise invalid(name, f"Invalid boolean: {value}")
    return value == "true"


def get_dict(params: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = params.get(name)
    if value is None:
        return None
    if value == "":
        return {}
    if isinstance(value, list):  # {"0": ...} became a list; treat as dict with numeric keys
        return {str(i): v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        raise invalid(name, f"Invalid object: {name}")
    return value


def get_list(params: dict[str, Any], name: str) -> list[Any]:
    value = params.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        return list(value.values())
    if not isinstance(value, list):
        return [value]
    return value


def merge_metadata(current: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Stripe metadata update: keys merge, empty value unsets a key, empty string clears all."""
    if "metadata" not in params:
        return current
    update = params["metadata"]
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise invalid("metadata", "Invalid hash")
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged

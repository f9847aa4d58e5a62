"""Case-insensitive decoding, as Bacalhau's Go server does it (encoding/json and mapstructure
match struct field names case-insensitively; map keys such as Env, Meta, Labels keep their case).

The devstack decodes requests with this module only; it never imports the provider's ``spec``.
"""

from __future__ import annotations

from typing import Any


def field(mapping: Any, name: str, default: Any = None) -> Any:
    """Value of struct field ``name`` in a decoded JSON object, matching the key case-insensitively.

    An exact match wins (as in encoding/json); unknown keys are ignored by simply never being asked
    for. A non-mapping gives ``default``.
    """
    if not isinstance(mapping, dict):
        return default
    if name in mapping:
        return mapping[name]
    lowered = name.lower()
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return default


def text(mapping: Any, name: str, default: str = "") -> str:
    value = field(mapping, name, default)
    return default if value is None else str(value)


def items(mapping: Any, name: str) -> list:
    value = field(mapping, name)
    return list(value) if isinstance(value, list) else []


def strmap(mapping: Any, name: str) -> dict[str, str]:
    value = field(mapping, name)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def flag(mapping: Any, name: str) -> bool:
    """A bool as mapstructure's weak decoding accepts it (true, "true", 1)."""
    value = field(mapping, name, False)
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)

"""Small helpers shared by the spec modules: case-insensitive keys and field checks.

Bacalhau decodes job JSON case-insensitively (encoding/json, mapstructure), so the loaders here
do too. Every check raises :class:`SpecError` naming the dotted field path.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_bacalhau.errors import SpecError

LOG = logging.getLogger("airflow_provider_bacalhau.spec")

_MISSING = object()


def get(mapping: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Value of ``name`` in ``mapping``; an exact key wins, else the key is matched in any case."""
    if name in mapping:
        return mapping[name]
    lowered = name.lower()
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return default


def has(mapping: Mapping[str, Any], name: str) -> bool:
    return get(mapping, name, _MISSING) is not _MISSING


def as_mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"must be a mapping, not {type(value).__name__}", value)
    return value


def as_list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise SpecError(path, f"must be a list, not {type(value).__name__}", value)
    return list(value)


def warn_unknown(
    mapping: Mapping[str, Any], known: Iterable[str], path: str, ignored: Iterable[str] = ()
) -> None:
    """Log keys Bacalhau would silently ignore (a typo there otherwise goes unnoticed)."""
    known_l = {k.lower() for k in known}
    ignored_l = {k.lower() for k in ignored}
    for key in mapping:
        low = str(key).lower()
        if low not in known_l and low not in ignored_l:
            where = f"{path}.{key}" if path else str(key)
            LOG.warning("%s: unknown field, Bacalhau ignores it", where)


def warn_once(owner: object, message: str, path: str, *args: Any, level: int = logging.WARNING) -> None:
    """Log ``message % (path, *args)`` unless ``owner`` (a spec object) has logged it before.

    One build validates the same objects several times (a source alone, among the inputs, inside
    the job, again on the way to the API), each time under another ``path``: the key leaves the
    path out, so the user reads each warning once. It keeps the values, so a changed one warns
    again. The memory lives on the object (a ``Job.copy()`` keeps it; a new object starts empty).
    """
    seen = owner.__dict__.setdefault("_warned", set())
    key = (message, tuple(repr(a) for a in args))
    if key not in seen:
        seen.add(key)
        LOG.log(level, message, path, *args, stacklevel=2)


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# --- checks -------------------------------------------------------------------------------


def check_text(value: Any, path: str, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise SpecError(path, "must be a string", value)
    if required and not value.strip():
        raise SpecError(path, "is required and must not be empty", value)
    return value


def check_absolute(value: Any, path: str, *, required: bool = True) -> None:
    text = check_text(value, path, required=required)
    if text and not posixpath.isabs(text):
        raise SpecError(path, "must be an absolute path (start with '/')", value)


def check_int(value: Any, path: str, *, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, "must be an integer", value)
    if minimum is not None and value < minimum:
        raise SpecError(path, f"must be >= {minimum}", value)
    return value


def check_str_list(value: Any, path: str) -> None:
    items = as_list(value, path)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise SpecError(f"{path}[{i}]", "must be a string", item)


def check_str_map(value: Any, path: str) -> None:
    """Labels, Meta and Env are maps of string to string (quote numbers/booleans in YAML)."""
    if value is None:
        return
    mapping = as_mapping(value, path)
    for key, item in mapping.items():
        if not isinstance(key, str) or not key:
            raise SpecError(path, "keys must be non-empty strings", key)
        if not isinstance(item, str):
            raise SpecError(f"{path}.{key}", "must be a string (quote it in YAML)", item)


def str_map(value: Any) -> dict[str, str]:
    """Coerce a loaded map: numbers become strings (as Go's YAML does); others left for checks."""
    if not isinstance(value, Mapping):
        return value  # type: ignore[no-any-return]  # not a map: validate() reports it
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        out[str(key) if isinstance(key, (int, float)) else key] = item
    return out


def check_env_name(name: Any, path: str) -> None:
    """The node's rules (pkg/models/env_var.go ValidateEnvVars): upper case, a letter first, then
    letters, digits and '_' (Unicode ones too, as Go's unicode.IsLetter/IsDigit), no BACALHAU_."""
    if not isinstance(name, str) or not name:
        raise SpecError(path, "environment variable name must be a non-empty string", name)
    if name.upper().startswith("BACALHAU_"):
        raise SpecError(
            path,
            "environment variable names must not start with BACALHAU_ "
            "(reserved for Bacalhau's own variables)",
            name,
        )
    # per character, as Go's strings.ToUpper maps runes one to one ('ß' stays 'ß')
    upper = all(len(ch.upper()) != 1 or ch.upper() == ch for ch in name)
    if (
        not upper
        or not name[0].isalpha()
        or not all(ch.isalpha() or ch.isdecimal() or ch == "_" for ch in name)
    ):
        raise SpecError(
            path,
            "environment variable names must be upper case letters, digits and '_', starting with a letter",
            name,
        )

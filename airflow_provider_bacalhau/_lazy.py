"""Lazy package attributes (PEP 562), so that importing a package while parsing DAG files costs
only the submodules actually used. Sits at the root, beside ``errors``, because the lowest layers
(``spec``, ``client``) use it too."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, resolving each name in ``exports``
    (name -> defining module) on first use and caching it in the package's namespace."""
    namespace = sys.modules[package].__dict__  # the package being initialised

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__

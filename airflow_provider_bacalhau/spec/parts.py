"""The smaller pieces of a task and job: result paths, resources, network, timeouts, constraints."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.spec._common import (
    as_list,
    as_mapping,
    check_absolute,
    check_int,
    check_text,
    get,
    warn_unknown,
)

# Kubernetes quantity (CPU): a decimal number with an optional suffix, checked after lower-casing
# as Bacalhau lower-cases resource strings before parsing.
_CPU = re.compile(r"^(\d+(\.\d*)?|\.\d+)(m|k|ki|mi|gi|ti|pi|ei|g|t|p|e)?$")
# go-humanize ParseBytes: a number, optional space, optional unit (b, kb, kib, k, ki ...).
_BYTES = re.compile(r"^(\d+(\.\d*)?|\.\d+)\s*(b|bytes?|[kmgtpez]i?b?)?$")
_GPU = re.compile(r"^\d+$")


@dataclass
class ResultPath:
    """A container directory whose files are published under ``name``.

    :param name: unique name (the sub-directory in the published results).
    :param path: absolute path in the container.
    """

    name: str
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {"Name": self.name, "Path": self.path}

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], path: str = "ResultPath") -> ResultPath:
        mapping = as_mapping(mapping, path)
        warn_unknown(mapping, ("Name", "Path"), path)
        return cls(get(mapping, "Name") or "", get(mapping, "Path") or "")

    def validate(self, path: str = "ResultPath") -> None:
        check_text(self.name, f"{path}.Name", required=True)
        check_absolute(self.path, f"{path}.Path")


def _quantity(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return "" if value is None else value


@dataclass
class Resources:
    """Requested resources, as Bacalhau strings: ``cpu="500m"``, ``memory="1gb"``, ``gpu="1"``.

    :param cpu: Kubernetes CPU quantity (``"2"``, ``"0.5"``, ``"500m"``).
    :param memory: size such as ``"512mb"``, ``"2gib"``.
    :param disk: size such as ``"10gb"``.
    :param gpu: whole number of GPUs.
    """

    cpu: str = ""
    memory: str = ""
    disk: str = ""
    gpu: str = ""

    def __post_init__(self) -> None:
        for name in ("cpu", "memory", "disk", "gpu"):
            setattr(self, name, _quantity(getattr(self, name)))

    def __bool__(self) -> bool:
        return any((self.cpu, self.memory, self.disk, self.gpu))

    def to_dict(self) -> dict[str, Any]:
        out = {"CPU": self.cpu, "Memory": self.memory, "Disk": self.disk, "GPU": self.gpu}
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], path: str = "Resources") -> Resources:
        mapping = as_mapping(mapping, path)
        warn_unknown(mapping, ("CPU", "Memory", "Disk", "GPU"), path)
        return cls(get(mapping, "CPU"), get(mapping, "Memory"), get(mapping, "Disk"), get(mapping, "GPU"))

    def validate(self, path: str = "Resources") -> None:
        checks = (
            ("CPU", self.cpu, _CPU, "a CPU quantity such as '2', '0.5' or '500m'"),
            ("Memory", self.memory, _BYTES, "a size such as '512mb' or '2gib'"),
            ("Disk", self.disk, _BYTES, "a size such as '10gb'"),
            ("GPU", self.gpu, _GPU, "a whole number such as '1'"),
        )
        for name, value, pattern, what in checks:
            text = check_text(value, f"{path}.{name}")
            norm = text.lower().replace(" ", "")
            if not norm:
                continue
            if norm.startswith("-"):
                raise SpecError(f"{path}.{name}", "must not be negative", value)
            if not pattern.match(norm):
                raise SpecError(f"{path}.{name}", f"must be {what}", value)


NETWORK_TYPES = ("Default", "None", "Host", "Full", "HTTP", "Bridge")


@dataclass
class Network:
    """Container networking.

    :param type: Default, None, Host, Full (deprecated), HTTP or Bridge.
    :param domains: allowed domains (HTTP only).
    :param ports: port mappings ``{Name, Target, HostPort}`` (Host, Full or Bridge only).
    """

    type: str = ""
    domains: list[str] = field(default_factory=list)
    ports: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        canonical = {t.lower(): t for t in NETWORK_TYPES}
        if isinstance(self.type, str):
            self.type = canonical.get(self.type.strip().lower(), self.type)
        self.domains = [] if self.domains is None else self.domains
        self.ports = [] if self.ports is None else self.ports

    def __bool__(self) -> bool:
        return bool(self.type or self.domains or self.ports)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": self.type or "Default"}
        if self.domains:
            out["Domains"] = list(self.domains)
        if self.ports:
            out["Ports"] = list(self.ports)
        return out

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], path: str = "Network") -> Network:
        mapping = as_mapping(mapping, path)
        warn_unknown(mapping, ("Type", "Domains", "Ports"), path)
        return cls(get(mapping, "Type") or "", get(mapping, "Domains"), get(mapping, "Ports"))

    def validate(self, path: str = "Network") -> None:
        ntype = check_text(self.type, f"{path}.Type") or "Default"
        if ntype not in NETWORK_TYPES:
            raise SpecError(
                f"{path}.Type", f"unknown network type; known: {', '.join(NETWORK_TYPES)}", self.type
            )
        if as_list(self.domains, f"{path}.Domains") and ntype != "HTTP":
            raise SpecError(f"{path}.Domains", "domains can only be set with network Type HTTP", self.domains)
        # Full is the deprecated name of Host and takes ports too (pkg/models/network.go
        # SupportPortAllocation)
        if as_list(self.ports, f"{path}.Ports") and ntype not in ("Host", "Full", "Bridge"):
            raise SpecError(
                f"{path}.Ports", "ports can only be set with network Type Host, Full or Bridge", self.ports
            )


@dataclass
class Timeouts:
    """Task timeouts in whole seconds; 0 means none (a QueueTimeout of 0 fails at once when no
    node matches).

    :param execution_timeout: limit for one execution.
    :param queue_timeout: how long the job may wait for a node.
    :param total_timeout: limit for the whole job, retries included.
    """

    execution_timeout: int = 0
    queue_timeout: int = 0
    total_timeout: int = 0

    def __bool__(self) -> bool:
        return any((self.execution_timeout, self.queue_timeout, self.total_timeout))

    def to_dict(self) -> dict[str, Any]:
        out = {
            "ExecutionTimeout": self.execution_timeout,
            "QueueTimeout": self.queue_timeout,
            "TotalTimeout": self.total_timeout,
        }
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], path: str = "Timeouts") -> Timeouts:
        mapping = as_mapping(mapping, path)
        names = ("ExecutionTimeout", "QueueTimeout", "TotalTimeout")
        warn_unknown(mapping, names, path)
        values = [get(mapping, n) for n in names]
        return cls(*(0 if v is None else v for v in values))

    def validate(self, path: str = "Timeouts") -> None:
        execution = check_int(self.execution_timeout, f"{path}.ExecutionTimeout")
        queue = check_int(self.queue_timeout, f"{path}.QueueTimeout")
        total = check_int(self.total_timeout, f"{path}.TotalTimeout")
        if total > 0 and execution + queue > total:
            raise SpecError(
                f"{path}.TotalTimeout",
                f"ExecutionTimeout ({execution}) + QueueTimeout ({queue}) must not exceed TotalTimeout",
                total,
            )


CONSTRAINT_OPERATORS = ("=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt")


@dataclass
class Constraint:
    """A node selection constraint (Kubernetes selector operators).

    :param key: node label key.
    :param operator: one of = == != in notin exists ! gt lt.
    :param values: values for the operator (in/notin: one or more; exists/!: none; others: one).
    """

    key: str
    operator: str
    values: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        given: Any = self.values  # callers may pass None or a tuple
        if given is None:
            self.values = []
        elif isinstance(given, tuple):
            self.values = list(given)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Key": self.key, "Operator": self.operator}
        if self.values:
            out["Values"] = list(self.values)
        return out

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], path: str = "Constraint") -> Constraint:
        mapping = as_mapping(mapping, path)
        warn_unknown(mapping, ("Key", "Operator", "Values"), path)
        return cls(get(mapping, "Key") or "", get(mapping, "Operator") or "", get(mapping, "Values"))

    def validate(self, path: str = "Constraint") -> None:
        check_text(self.key, f"{path}.Key", required=True)
        op = check_text(self.operator, f"{path}.Operator", required=True)
        # Submit accepts any operator (pkg/models/selector.go Validate), but every evaluation then
        # fails in labels.NewRequirement (orchestrator/selection/ranking/labels.go RankNodes), so
        # the job can never be scheduled on any network.
        if op not in CONSTRAINT_OPERATORS:
            raise SpecError(
                f"{path}.Operator", f"unknown operator; known: {' '.join(CONSTRAINT_OPERATORS)}", op
            )
        values = as_list(self.values, f"{path}.Values")
        if op in ("in", "notin"):
            ok, need = len(values) >= 1, "at least one value"
        elif op in ("exists", "!"):
            ok, need = not values, "no values"
        else:
            ok, need = len(values) == 1, "exactly one value"
        if not ok:
            raise SpecError(f"{path}.Values", f"operator {op!r} takes {need}", values)

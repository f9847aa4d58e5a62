"""Engines: what runs the task (``Task.Engine``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.spec._common import (
    as_list,
    as_mapping,
    check_absolute,
    check_str_list,
    check_text,
    get,
    warn_once,
    warn_unknown,
)
from airflow_provider_bacalhau.spec.custom import CustomSpec


def _env_list(value: Any) -> Any:
    """Docker takes ``["KEY=VALUE", ...]``; a mapping is accepted for convenience."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return value  # validate() reports it


@dataclass
class DockerEngine:
    """A Docker container.

    :param image: image reference (required).
    :param entrypoint: overrides the image's entrypoint.
    :param parameters: the command (Docker ``Cmd``).
    :param environment_variables: ``["KEY=VALUE"]`` or a mapping.
    :param working_directory: absolute working directory.
    """

    TYPE: ClassVar[str] = "docker"
    image: str
    entrypoint: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    environment_variables: list[str] = field(default_factory=list)
    working_directory: str = ""

    def __post_init__(self) -> None:
        self.entrypoint = _as_list_or_raw(self.entrypoint)
        self.parameters = _as_list_or_raw(self.parameters)
        self.environment_variables = _env_list(self.environment_variables)

    def to_spec(self) -> dict[str, Any]:
        params = {
            "Image": self.image,
            "Entrypoint": self.entrypoint,
            "Parameters": self.parameters,
            "EnvironmentVariables": self.environment_variables,
            "WorkingDirectory": self.working_directory,
        }
        return {"Type": self.TYPE, "Params": {k: v for k, v in params.items() if v}}

    @classmethod
    def from_params(cls, params: Mapping[str, Any], path: str = "Engine.Params") -> DockerEngine:
        known = ("Image", "Entrypoint", "Parameters", "EnvironmentVariables", "WorkingDirectory")
        warn_unknown(params, known, path)
        return cls(
            get(params, "Image") or "",
            get(params, "Entrypoint"),
            get(params, "Parameters"),
            get(params, "EnvironmentVariables"),
            get(params, "WorkingDirectory") or "",
        )

    def validate(self, path: str = "Engine") -> None:
        p = f"{path}.Params"
        check_text(self.image, f"{p}.Image", required=True)
        check_str_list(self.entrypoint, f"{p}.Entrypoint")
        check_str_list(self.parameters, f"{p}.Parameters")
        envs = as_list(self.environment_variables, f"{p}.EnvironmentVariables")
        for i, item in enumerate(envs):
            ipath = f"{p}.EnvironmentVariables[{i}]"
            # The node checks only the BACALHAU_ prefix (pkg/executor/docker/models/types.go
            # EngineSpec.Validate); Docker itself takes a bare "KEY" too.
            if not isinstance(item, str):
                raise SpecError(ipath, "must be a string ('KEY=VALUE')", item)
            name = item.split("=", 1)[0]
            if name.upper().startswith("BACALHAU_"):
                raise SpecError(
                    ipath,
                    "environment variable names must not start with "
                    "BACALHAU_ (reserved for Bacalhau's own variables)",
                    name,
                )
        check_absolute(self.working_directory, f"{p}.WorkingDirectory", required=False)


@dataclass
class WasmEngine:
    """A WebAssembly module run by Bacalhau's wasm executor.

    :param entry_module: Target path of the input source holding the module.
    :param entrypoint: exported function to call (e.g. ``_start``).
    :param parameters: argv.
    :param import_modules: Target paths of modules to import.
    :param environment_variables: sent as given; Bacalhau v1.9.3's wasm executor ignores it
        (use the task's ``env``).
    """

    TYPE: ClassVar[str] = "wasm"
    entry_module: Any
    entrypoint: str = ""
    parameters: list[str] = field(default_factory=list)
    import_modules: list[Any] = field(default_factory=list)
    environment_variables: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.parameters = _as_list_or_raw(self.parameters)
        self.import_modules = _as_list_or_raw(self.import_modules)
        given: Any = self.environment_variables  # callers may pass None
        if given is None:
            self.environment_variables = {}

    def to_spec(self) -> dict[str, Any]:
        params = {
            "EntryModule": self.entry_module,
            "Entrypoint": self.entrypoint,
            "Parameters": self.parameters,
            "ImportModules": self.import_modules,
            "EnvironmentVariables": self.environment_variables,
        }
        return {"Type": self.TYPE, "Params": {k: v for k, v in params.items() if v}}

    @classmethod
    def from_params(cls, params: Mapping[str, Any], path: str = "Engine.Params") -> WasmEngine:
        known = ("EntryModule", "Entrypoint", "Parameters", "ImportModules", "EnvironmentVariables")
        warn_unknown(params, known, path)
        return cls(
            get(params, "EntryModule") or "",
            get(params, "Entrypoint") or "",
            get(params, "Parameters"),
            get(params, "ImportModules"),
            get(params, "EnvironmentVariables"),
        )

    def validate(self, path: str = "Engine") -> None:
        p = f"{path}.Params"
        if isinstance(self.entry_module, Mapping):
            return  # legacy inline form: Bacalhau rewrites it server-side
        # The node only requires a non-empty EntryModule (pkg/executor/wasm/models/types.go
        # EngineSpec.Validate); Bacalhau's own testdata/jobs/wasm.yaml names the input at
        # /wasm.main as "wasm.main", so a relative name is valid.
        check_text(self.entry_module, f"{p}.EntryModule", required=True)
        check_text(self.entrypoint, f"{p}.Entrypoint")
        check_str_list(self.parameters, f"{p}.Parameters")
        as_list(self.import_modules, f"{p}.ImportModules")
        if self.environment_variables:
            # v1.9.3's wasm EngineSpec has no such field (pkg/executor/wasm/models/types.go), and
            # json.Unmarshal drops it on the node: sent as given, but it has no effect.
            warn_once(
                self,
                "%s.EnvironmentVariables is ignored by Bacalhau v1.9.3's wasm "
                "executor; set the task's Env instead",
                p,
            )


@dataclass
class NoopEngine:
    """Does nothing and succeeds (tests).

    :param params: passed through as given.
    """

    TYPE: ClassVar[str] = "noop"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given: Any = self.params  # callers may pass None
        if given is None:
            self.params = {}

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"Type": self.TYPE}
        if self.params:
            spec["Params"] = dict(self.params)
        return spec

    @classmethod
    def from_params(cls, params: Mapping[str, Any], path: str = "Engine.Params") -> NoopEngine:
        return cls(dict(params))

    def validate(self, path: str = "Engine") -> None:
        as_mapping(self.params, f"{path}.Params")


Engine = DockerEngine | WasmEngine | NoopEngine | CustomSpec
ENGINE_TYPES: dict[str, type[DockerEngine | WasmEngine | NoopEngine]] = {
    "docker": DockerEngine,
    "wasm": WasmEngine,
    "noop": NoopEngine,
}
KNOWN_ENGINES = "docker, wasm, noop"


def engine_from_spec(spec: Any, path: str = "Engine") -> Engine:
    """Build an engine from ``{"Type": ..., "Params": {...}}`` written with keys in any case."""
    if isinstance(spec, (*ENGINE_TYPES.values(), CustomSpec)):
        return cast("Engine", spec)  # mypy does not narrow on a tuple built at run time
    spec = as_mapping(spec, path)
    warn_unknown(spec, ("Type", "Params"), path)
    etype = check_text(get(spec, "Type", ""), f"{path}.Type", required=True).strip()
    cls = ENGINE_TYPES.get(etype.lower())  # the node looks types up in lower case
    params = as_mapping(get(spec, "Params") or {}, f"{path}.Params")
    if cls is None:  # an executor plugin: see spec/custom.py
        return CustomSpec(etype, dict(params), "engine", KNOWN_ENGINES)
    return cls.from_params(params, f"{path}.Params")


def _as_list_or_raw(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, tuple):
        return list(value)
    return value  # a list, or something validate() reports

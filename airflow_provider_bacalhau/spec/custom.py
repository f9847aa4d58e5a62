"""Types the provider does not model: engine, input-source or publisher plugins, sent as written.

Bacalhau v1.9.3 checks only that a ``Type`` is not blank at submit (pkg/models/spec_config.go
``SpecConfig.Validate``); which types exist is up to the compute nodes, whose executor, storage
and publisher providers are injected (pkg/node/node.go ``NodeDependencyInjector``). A job with a
type no node has is accepted and then fails (or queues) with "not enough nodes ... does not
support <type>" (test_integration/6_jobs_basic_runs_scenarios_suite_test.go), while a network
with such a plugin runs it. So an unknown type is a warning here, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow_provider_bacalhau.spec._common import as_mapping, check_text, warn_once


@dataclass
class CustomSpec:
    """A ``{"Type", "Params"}`` of a type the provider does not know, passed through unchanged.

    :param type: the type name, sent exactly as given.
    :param params: the parameters, sent exactly as given.
    :param kind: what it is, for messages: ``engine``, ``input source`` or ``publisher``.
    :param known: the types the provider knows of this kind, for messages.
    """

    TYPE: ClassVar[str] = ""
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "engine"
    known: str = ""

    def __post_init__(self) -> None:
        given: Any = self.params  # callers may pass None
        if given is None:
            self.params = {}

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"Type": self.type}
        if self.params:
            spec["Params"] = dict(self.params)
        return spec

    def validate(self, path: str = "Engine") -> None:
        check_text(self.type, f"{path}.Type", required=True)
        as_mapping(self.params, f"{path}.Params")
        warn_once(
            self,
            "%s.Type: %s type %r is not one the provider knows (%s); Bacalhau "
            "accepts it at submit and runs it only on a node with that plugin, "
            "otherwise the job fails with 'not enough nodes'",
            path,
            self.kind,
            self.type,
            self.known,
        )

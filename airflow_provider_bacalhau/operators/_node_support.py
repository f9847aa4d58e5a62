"""Before a submit: does any compute node of the network have what the job needs installed?

Bacalhau accepts a job whose engine, input source or publisher no node supports, and only then
fails it with "not enough nodes ... does not support X". The commonest case: a node without AWS
credentials reports ``s3`` as not installed (``pkg/s3/utils.go`` ``HasValidCredentials``, via
``pkg/lib/provider/mapped.go`` ``Keys``). Every node lists its installed plugins in
``ComputeNodeInfo`` (``pkg/models/node_info.go``; ``pkg/compute/node_info_decorator.go``), which
``GET /api/v1/orchestrator/nodes`` returns per node (``pkg/models/node_state.go``). The check is
best effort: a network that refuses the listing (no ``read:node`` capability) is not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow_provider_bacalhau.errors import BacalhauApiError, NodeSupportError

#: Values of the operators' ``node_support_check`` argument.
NODE_SUPPORT_CHECKS = ("warn", "fail", "off")
_KINDS = (("engine", "ExecutionEngines"), ("input source", "StorageSources"), ("publisher", "Publishers"))
_S3_HINT = (
    "a node without AWS credentials reports s3 as not installed: give the nodes "
    "credentials (their AWS default chain)"
)


def check_mode(value: Any) -> str:
    mode = str(value or "").strip().lower()
    if mode not in NODE_SUPPORT_CHECKS:
        raise ValueError(
            f"node_support_check: must be one of {', '.join(NODE_SUPPORT_CHECKS)}, got {value!r}"
        )
    return mode


def _get(mapping: Any, name: str) -> Any:
    # The Go server decodes keys in any case; answers use these exact names, but stay lenient.
    if not isinstance(mapping, Mapping):
        return None
    if name in mapping:
        return mapping[name]
    lower = name.lower()
    return next((v for k, v in mapping.items() if str(k).lower() == lower), None)


def _type_of(spec: Any) -> str:
    return str(_get(spec, "Type") or "").strip()


def needed_parts(job: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``[(kind, type)]`` the job's tasks need, e.g. ``[("engine", "docker"), ("input source", "s3")]``."""
    needed: list[tuple[str, str]] = []
    for task in _get(job, "Tasks") or []:
        parts = [("engine", _type_of(_get(task, "Engine")))]
        parts += [
            ("input source", _type_of(_get(item, "Source"))) for item in _get(task, "InputSources") or []
        ]
        publisher = _type_of(_get(task, "Publisher"))
        if publisher:  # no publisher: nothing is published, nothing to install
            parts.append(("publisher", publisher))
        for part in parts:
            if part[1] and part not in needed:
                needed.append(part)
    return needed


def _usable(node: Mapping[str, Any]) -> bool:
    # The scheduler only places work on approved, connected compute nodes.
    membership = str(_get(node, "Membership") or "APPROVED").upper()
    status = str(
        _get(_get(node, "ConnectionState"), "Status") or _get(node, "Connection") or "CONNECTED"
    ).upper()
    info = _get(node, "Info") or {}
    node_type = str(_get(info, "NodeType") or "Compute").lower()
    return membership == "APPROVED" and status == "CONNECTED" and node_type == "compute"


def _installed(node: Mapping[str, Any], field: str) -> set[str]:
    compute = _get(_get(node, "Info"), "ComputeNodeInfo") or {}
    # Provider keys are lower-cased on the node (pkg/lib/provider/utils.go sanitizeKey).
    return {str(name).strip().lower() for name in _get(compute, field) or []}


def missing_support(nodes: list[Mapping[str, Any]], needed: list[tuple[str, str]]) -> str | None:
    """Why no node can run the job, or None when some usable node has everything."""
    fields = dict(_KINDS)
    usable = [n for n in nodes if isinstance(n, Mapping) and _usable(n)]
    if not usable:
        return f"no approved, connected compute node among the {len(nodes)} node(s) the network lists"
    for node in usable:
        if all(kind_type.lower() in _installed(node, fields[kind]) for kind, kind_type in needed):
            return None
    nowhere = [(k, t) for k, t in needed if not any(t.lower() in _installed(n, fields[k]) for n in usable)]
    if nowhere:
        names = ", ".join(f"{kind} {name!r}" for kind, name in nowhere)
        reason = f"no compute node (of {len(usable)}) reports {names} as installed"
        if any(name.lower() == "s3" for _, name in nowhere):
            reason += f"; {_S3_HINT}"
        return reason
    names = ", ".join(f"{kind} {name!r}" for kind, name in needed)
    return f"no single compute node (of {len(usable)}) reports all of {names} as installed"


def check_node_support(client: Any, job: Any, mode: str, log: logging.Logger) -> None:
    """Warn (``mode="warn"``) or raise :class:`NodeSupportError` (``"fail"``) when no node of
    the network can run ``job``; ``"off"`` skips the check. Listing errors are logged only."""
    if mode == "off":
        return
    payload = job.to_dict() if hasattr(job, "to_dict") else dict(job)
    needed = needed_parts(payload)
    if not needed:
        return
    try:
        nodes = client.list_nodes()
    except BacalhauApiError as exc:
        log.warning(
            "Could not list the network's nodes to check that one supports this job "
            "(%s); submitting without that check",
            exc,
        )
        return
    reason = missing_support(list(nodes or []), needed)
    if reason is None:
        return
    message = (
        f"Bacalhau job {payload.get('Name') or ''!r}: {reason}. Bacalhau would accept it "
        f"and then fail it with 'not enough nodes'."
    )
    if mode == "fail":
        raise NodeSupportError(message)
    log.warning("%s Submitting anyway (node_support_check='warn').", message)

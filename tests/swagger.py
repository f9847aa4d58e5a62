"""Validate request bodies against Bacalhau's own swagger (v1.9.3), patched where it is wrong.

Usage: ``validate_request_body("PUT", "/api/v1/orchestrator/jobs", body)`` raises
``jsonschema.ValidationError`` when the body does not fit; ``template_for(method, path)`` maps a
concrete request path to the swagger path template.

The swagger file is loaded as-is and then patched, each patch citing the reference
(``shared/reference/bacalhau-api.md`` §1.8, §2.6):

1. ``models.JobStateType``, ``models.JobHistoryType``, ``models.Network`` and ``models.NodeType``
   are integer enums in the file but strings on the wire (``MarshalText``): replaced by string
   enums of their names (``NetworkHTTP`` -> ``"HTTP"``).
2. ``apimodels.PutJobRequest`` lists ``credential``, ``idempotencyToken`` and ``namespace``, which the
   server ignores: removed, so a client that sends them fails validation.
3. Stop (``DELETE /jobs/{id}``) documents only a ``reason`` query parameter, but the server binds
   only a JSON body ``{"reason": ...}``: a ``StopJobRequest`` body schema is added for it.
4. Strictness: the file allows any extra key. Go decodes keys case-insensitively and drops unknown
   ones silently, so a misspelt key would be lost without an error. Every object definition with
   declared properties gets ``additionalProperties: false`` (free maps such as ``Params``, ``Meta``,
   ``Env`` keep their own ``additionalProperties``).

Patches for answers (the 200 bodies; ``validate_response_body``):

5. Go's ``encoding/json`` writes a nil slice or map as ``null`` (``"Warnings": null``, reference
   §2.1), which the file never allows: every array and map property also accepts ``null``.
6. Pointer fields without ``omitempty`` are ``null`` when unset; the file types them as objects.
   :data:`NULLABLE_POINTERS` lists them from the v1.9.3 structs (``Execution.RunOutput`` is nil
   until a run completes, reference §16).
7. More types that marshal as strings but are declared as integers or objects:
   ``models.NodeMembershipState`` and ``models.NodeConnectionState`` (``MarshalJSON`` in
   pkg/models/node_approval.go and node_connection.go: ``"APPROVED"``, ``"CONNECTED"``) and
   ``models.JobSelectionDataLocality`` (``MarshalText`` with the stringer's line comments in
   pkg/models/job_selection_pilicy.go: ``"local"``, ``"anywhere"``).
8. ``GET /api/v1/agent/config`` answers ``{"config": <types.Bacalhau>}``
   (``GetAgentConfigResponse``, pkg/publicapi/apimodels/agent.go; reference §2.10), not a bare
   ``types.Bacalhau``: an ``apimodels.GetAgentConfigResponse`` definition is added for it.
9. ``types.Duration`` config fields (pkg/config/types/duration.go ``MarshalText``: Go's
   ``time.Duration.String()``, ``"1h0m0s"``) are declared as integers: :data:`DURATION_FIELDS`,
   the v1.9.3 ``Duration`` fields of pkg/config/types, become strings in every ``types.*``
   definition.

Not a swagger error but the devstack's one deliberate addition: its version answers and its agent
config carry a ``Devstack`` key saying it is a stand-in (:data:`DEVSTACK_LABELS`). Nothing else
is let through.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema

# Bacalhau v1.9.3's own OpenAPI document (pkg/swagger/swagger.json at tag v1.9.3), kept with the
# tests so that they run from any clone.
SWAGGER_PATH = Path(__file__).resolve().parent / "data" / "bacalhau-swagger.json"
STRING_ENUMS = ("models.JobStateType", "models.JobHistoryType", "models.Network", "models.NodeType")
IGNORED_PUT_FIELDS = ("credential", "idempotencyToken", "namespace")
STOP_BODY = "apimodels.StopJobRequest"
CONFIG_ANSWER = "apimodels.GetAgentConfigResponse"
STRING_TYPES = {  # patch 7
    "models.NodeMembershipState": ["PENDING", "APPROVED", "REJECTED"],
    "models.NodeConnectionState": ["CONNECTED", "DISCONNECTED"],
    "models.JobSelectionDataLocality": ["local", "anywhere"],
}
DURATION_FIELDS = (  # patch 9: `Duration` fields of pkg/config/types/*.go at v1.9.3
    "InfoUpdateInterval",
    "ResourceUpdateInterval",
    "Interval",
    "Timeout",
    "TTL",
    "Refresh",
    "TotalTimeout",
    "ExecutionTimeout",
    "LogDebugInfoInterval",
    "DisconnectTimeout",
    "QueueBackoff",
    "HousekeepingInterval",
    "HousekeepingTimeout",
    "VisibilityTimeout",
    "PreSignedURLExpiration",
    "ReadTimeout",
)
DEVSTACK_LABELS = {
    ("models.BuildVersionInfo", "Devstack"): {"type": "string"},
    ("apimodels.GetVersionResponse", "Devstack"): {"type": "string"},
    ("types.Bacalhau", "Devstack"): {"type": "object"},  # the agent config's devstack section
}
# (definition, property) of `*T` fields with a plain `json:"Name"` tag, at v1.9.3:
NULLABLE_POINTERS = (
    ("models.Execution", "AllocatedResources"),  # pkg/models/execution.go Execution
    ("models.Execution", "PublishedResult"),
    ("models.Execution", "RunOutput"),
    ("models.InputSource", "Source"),  # pkg/models/input_source.go InputSource
    ("models.Task", "Engine"),  # pkg/models/task.go Task
    ("models.Task", "Publisher"),
    ("apimodels.GetJobResponse", "Job"),  # pkg/publicapi/apimodels/job.go
    ("apimodels.GetNodeResponse", "Node"),  # pkg/publicapi/apimodels/node.go
)


def _enum_name(varname: str, definition: str) -> str:
    prefix = definition.split(".", 1)[1]
    return varname[len(prefix) :] if varname.lower().startswith(prefix.lower()) else varname


@functools.cache
def patched_swagger() -> dict:
    swagger = json.loads(SWAGGER_PATH.read_text())
    definitions = swagger["definitions"]
    for name in STRING_ENUMS:  # patch 1
        names = [_enum_name(v, name) for v in definitions[name]["x-enum-varnames"]]
        definitions[name] = {"type": "string", "enum": names}
    for field in IGNORED_PUT_FIELDS:  # patch 2
        del definitions["apimodels.PutJobRequest"]["properties"][field]
    definitions[STOP_BODY] = {  # patch 3
        "type": "object",
        "properties": {"reason": {"type": "string"}},
    }
    for definition in definitions.values():  # patch 4
        if definition.get("type") == "object" and "properties" in definition:
            definition.setdefault("additionalProperties", False)
    for definition in definitions.values():  # patch 5
        for prop in definition.get("properties", {}).values():
            if prop.get("type") == "array" or (prop.get("type") == "object" and "properties" not in prop):
                prop["type"] = [prop["type"], "null"]
    for name, names in STRING_TYPES.items():  # patch 7
        definitions[name] = {"type": "string", "enum": names}
    definitions[CONFIG_ANSWER] = {  # patch 8
        "type": "object",
        "properties": {"config": {"$ref": "#/definitions/types.Bacalhau"}},
        "additionalProperties": False,
    }
    config_answer = swagger["paths"]["/api/v1/agent/config"]["get"]["responses"]["200"]
    config_answer["schema"] = {"$ref": f"#/definitions/{CONFIG_ANSWER}"}
    for name, definition in definitions.items():  # patch 9
        for field, prop in definition.get("properties", {}).items():
            if name.startswith("types.") and field in DURATION_FIELDS and prop.get("type") == "integer":
                prop["type"] = "string"
    for (name, field), schema in DEVSTACK_LABELS.items():
        definitions[name]["properties"][field] = schema
    for name, field in NULLABLE_POINTERS:  # patch 6
        props = definitions[name]["properties"]
        props[field] = {"anyOf": [props[field], {"type": "null"}]}
    return swagger


def _body_schema_ref(method: str, template: str) -> str | None:
    if method == "DELETE" and template == "/api/v1/orchestrator/jobs/{id}":
        return f"#/definitions/{STOP_BODY}"
    operation = patched_swagger()["paths"].get(template, {}).get(method.lower())
    if operation is None:
        raise KeyError(f"{method} {template} is not in the Bacalhau swagger")
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "body":
            return parameter["schema"]["$ref"]
    return None


def _response_schema_ref(method: str, template: str) -> str | None:
    operation = patched_swagger()["paths"].get(template, {}).get(method.lower())
    if operation is None:
        raise KeyError(f"{method} {template} is not in the Bacalhau swagger")
    schema = operation.get("responses", {}).get("200", {}).get("schema", {})
    return schema.get("$ref")


def validate_response_body(method: str, path_template: str, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` is not a valid 200 answer of the route."""
    ref = _response_schema_ref(method.upper(), path_template)
    if ref is None:
        raise jsonschema.ValidationError(f"{method} {path_template} has no 200 answer in the swagger")
    error = jsonschema.exceptions.best_match(_validator(ref).iter_errors(body))
    if error is None:
        return
    while error.context:  # through the anyOf of a nullable pointer (patch 6) to the real mismatch
        error = max(error.context, key=lambda e: len(e.absolute_path))
    raise error


def template_for(method: str, path: str) -> str:
    """The swagger path template matching a concrete path (literal segments win over ``{id}``)."""
    path = path.split("?", 1)[0]
    candidates = []
    for template, operations in patched_swagger()["paths"].items():
        if method.lower() not in operations:
            continue
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            candidates.append(template)
    if not candidates:
        raise KeyError(f"{method} {path} matches no path of the Bacalhau swagger")
    return min(candidates, key=lambda t: t.count("{"))


def validate_request_body(method: str, path_template: str, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` is not a valid request body for the route."""
    ref = _body_schema_ref(method.upper(), path_template)
    if ref is None:
        if body not in (None, b"", ""):
            raise jsonschema.ValidationError(f"{method} {path_template} takes no request body")
        return
    _validator(ref).validate(body)


@functools.cache
def _validator(ref: str) -> jsonschema.Draft4Validator:
    schema = {"$ref": ref, "definitions": copy.deepcopy(patched_swagger()["definitions"])}
    return jsonschema.Draft4Validator(schema)

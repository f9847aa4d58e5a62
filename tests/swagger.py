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

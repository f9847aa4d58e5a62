"""Loading job specs the way ``bacalhau job run`` accepts them: YAML or JSON, keys in any case.

Map keys of Env, Meta and Labels keep their case; everything else is matched case-insensitively.
The loaders only build objects; ``Job.validate()`` does the checking.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.spec._common import (
    as_list,
    as_mapping,
    get,
    has,
    str_map,
    warn_unknown,
)
from airflow_provider_bacalhau.spec.engines import engine_from_spec
from airflow_provider_bacalhau.spec.model import Job, Task
from airflow_provider_bacalhau.spec.parts import (
    Constraint,
    Network,
    Resources,
    ResultPath,
    Timeouts,
)
from airflow_provider_bacalhau.spec.publishers import publisher_from_spec
from airflow_provider_bacalhau.spec.sources import InputSource

_JOB_FIELDS = ("Name", "Namespace", "Type", "Priority", "Count", "Constraints", "Labels", "Meta", "Tasks")
# Set by the server; present when a spec is copied from a GET answer. Ignored quietly.
_SERVER_FIELDS = ("ID", "State", "Version", "Revision", "CreateTime", "ModifyTime")
_TASK_FIELDS = (
    "Name",
    "Engine",
    "Publisher",
    "Env",
    "Meta",
    "InputSources",
    "ResultPaths",
    "Resources",
    "Network",
    "Timeouts",
)


def parse_text(text: str, where: str = "spec") -> Any:
    """YAML (a superset of JSON here) to Python; syntax errors name line and column."""
    if not isinstance(text, str):
        raise SpecError(where, "job spec text must be a string", type(text).__name__)
    if text.lstrip().startswith("{"):
        try:  # JSON may hold tabs, which YAML refuses
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # let the YAML parser report the error with its position
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise SpecError(where, f"YAML syntax error{at}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(where, f"YAML error: {exc}") from exc
    if data is None:
        raise SpecError(where, "the job spec is empty")
    return data


def read_file(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """Parse a ``.yaml``/``.yml``/``.json`` file; returns the data and a name for messages."""
    file = Path(path)
    where = str(file)
    suffix = file.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise SpecError(where, "job files must end in .yaml, .yml or .json", suffix)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(where, f"cannot read job file: {exc.strerror}") from exc
    if suffix == ".json":
        try:
            return json.loads(text), where
        except json.JSONDecodeError as exc:
            raise SpecError(
                where, f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
    return parse_text(text, where), where


def job_from_mapping(data: Any) -> Job:
    """Build (not validate) a Job from a loaded mapping; ``{"Job": {...}}`` is unwrapped."""
    data = as_mapping(data, "Job")
    inner = get(data, "Job")
    if isinstance(inner, Mapping) and not has(data, "Tasks"):
        warn_unknown(data, ("Job",), "", ignored=("Force",))
        data = inner
    warn_unknown(data, _JOB_FIELDS, "", ignored=_SERVER_FIELDS)
    if not has(data, "Tasks") or get(data, "Tasks") in (None, []):
        raise SpecError("Tasks", "missing job tasks: a job needs exactly one task")
    tasks = [task_from_mapping(t, f"Tasks[{i}]") for i, t in enumerate(as_list(get(data, "Tasks"), "Tasks"))]
    constraints = [
        Constraint.from_dict(c, f"Constraints[{i}]")
        for i, c in enumerate(as_list(get(data, "Constraints"), "Constraints"))
    ]
    count = get(data, "Count")
    return Job(
        name=get(data, "Name") or "",
        namespace=get(data, "Namespace") or "",
        type=get(data, "Type") if has(data, "Type") else "batch",
        priority=get(data, "Priority") or 0,
        count=1 if count is None else count,
        constraints=constraints,
        labels=str_map(get(data, "Labels")),
        meta=str_map(get(data, "Meta")),
        tasks=tasks,
    )


def task_from_mapping(data: Any, path: str = "Tasks[0]") -> Task:
    data = as_mapping(data, path)
    warn_unknown(data, _TASK_FIELDS, path)
    engine = get(data, "Engine")
    if engine is None:
        raise SpecError(f"{path}.Engine", "a task needs an Engine (e.g. Type docker)")
    publisher = get(data, "Publisher")
    # The server normalises "no publisher" to {"Type": ""}: read that back as none.
    if (
        isinstance(publisher, Mapping)
        and not str(get(publisher, "Type") or "").strip()
        and not get(publisher, "Params")
    ):
        publisher = None
    parts: dict[str, Any] = {}
    for key, cls in (("Resources", Resources), ("Network", Network), ("Timeouts", Timeouts)):
        value = get(data, key)
        parts[key.lower()] = None if value is None else cls.from_dict(value, f"{path}.{key}")
    return Task(
        engine=engine_from_spec(engine, f"{path}.Engine"),
        name=get(data, "Name") if has(data, "Name") else "main",
        publisher=None if publisher is None else publisher_from_spec(publisher, f"{path}.Publisher"),
        env=str_map(get(data, "Env")),
        meta=str_map(get(data, "Meta")),
        input_sources=inputs_from_list(get(data, "InputSources"), f"{path}.InputSources"),
        result_paths=[
            ResultPath.from_dict(r, f"{path}.ResultPaths[{i}]")
            for i, r in enumerate(as_list(get(data, "ResultPaths"), f"{path}.ResultPaths"))
        ],
        **parts,
    )


def inputs_from_list(items: Any, path: str) -> list[InputSource]:
    """Input sources, catching the public docs' mistake of ``- Target:`` as its own list item."""
    items = as_list(items, path)
    for i, item in enumerate(items):
        item = as_mapping(item, f"{path}[{i}]")
        if has(item, "Target") and not has(item, "Source"):
            neighbours = [
                j
                for j in (i - 1, i + 1)
                if 0 <= j < len(items)
                and isinstance(items[j], Mapping)
                and has(items[j], "Source")
                and not has(items[j], "Target")
            ]
            if neighbours:
                raise SpecError(
                    f"{path}[{i}].Target",
                    f"Target belongs in the same list item as Source: this item has only a "
                    f"Target and {path}[{neighbours[0]}] has a Source without one. Write "
                    f"'- Source: {{...}}' and 'Target: ...' at the same indentation, with no "
                    f"'-' before Target",
                    get(item, "Target"),
                )
            raise SpecError(f"{path}[{i}].Source", "input source has a Target but no Source", dict(item))
    for i, item in enumerate(items):
        if not get(item, "Target"):
            raise SpecError(
                f"{path}[{i}].Target",
                "input source is missing a Target (the absolute path where the data appears)",
            )
    return [InputSource.from_dict(item, f"{path}[{i}]") for i, item in enumerate(items)]

"""Submitted job JSON -> the canonical stored form, with Bacalhau v1.9.3's submit-time checks.

Decoding is case-insensitive (as Go's encoding/json is); the stored job uses the canonical
PascalCase struct keys; Params, Env, Meta and Labels maps keep their keys as sent.
"""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_bacalhau.devstack.decode import field, flag, items, strmap, text

JOB_TYPES = ("batch", "ops", "service", "daemon")
NETWORK_TYPES = {
    "default": "Default",
    "none": "None",
    "host": "Host",
    "full": "Full",
    "http": "HTTP",
    "bridge": "Bridge",
}
RESERVED_META = "bacalhau.org/"
DEFAULT_CPU = "500m"
DEFAULT_MEMORY = "512Mb"
_OPERATORS = {"=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"}
_CPU = re.compile(r"^(\d+(\.\d*)?|\.\d+)(m|k|e\d+)?$")
_BYTES = re.compile(r"^(\d+(\.\d*)?|\.\d+)(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib|p|pb|pib|ki|mi|gi|ti)?$")


class SubmitError(Exception):
    """A job rejected at submit; ``stage`` is "validate" (APIServer 400) or "create" (JobStore 400)."""

    def __init__(self, message: str, stage: str = "validate") -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage


def go_duration(seconds: int) -> str:
    """Seconds formatted as Go's time.Duration.String() does (90 -> "1m30s")."""
    if seconds == 0:
        return "0s"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    sign = "-" if seconds < 0 else ""
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def _spec_config(raw: Any) -> dict | None:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {"Type": text(raw, "Type").strip()}
    params = field(raw, "Params")
    if isinstance(params, dict) and params:
        out["Params"] = params
    return out


def _int(raw: Any, name: str) -> int:
    value = field(raw, name, 0)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise SubmitError(
            f"json: cannot unmarshal {type(value).__name__} into Go struct field .{name} of type int64"
        ) from None


def _task(raw: Any) -> dict:
    task: dict[str, Any] = {"Name": text(raw, "Name"), "Engine": _spec_config(field(raw, "Engine"))}
    task["Publisher"] = _spec_config(field(raw, "Publisher")) or {"Type": ""}
    env = field(raw, "Env")
    if isinstance(env, dict) and env:
        task["Env"] = {str(k): "" if v is None else str(v) for k, v in env.items()}
    meta = strmap(raw, "Meta")
    if meta:
        task["Meta"] = meta
    sources = []
    for item in items(raw, "InputSources"):
        source = {
            "Alias": text(item, "Alias"),
            "Target": text(item, "Target"),
            "Source": _spec_config(field(item, "Source")),
        }
        sources.append(source)
    if sources:
        task["InputSources"] = sources
    paths = [{"Name": text(p, "Name"), "Path": text(p, "Path")} for p in items(raw, "ResultPaths")]
    if paths:
        task["ResultPaths"] = paths
    resources = field(raw, "Resources")
    res = {}
    for key in ("CPU", "Memory", "Disk", "GPU"):
        value = text(resources, key).lower().replace(" ", "")
        if value:
            res[key] = value
    task["Resources"] = res
    network = field(raw, "Network")
    net_type = text(network, "Type").strip()
    net: dict[str, Any] = {"Type": NETWORK_TYPES.get(net_type.lower(), net_type) if net_type else "Default"}
    if items(network, "Domains"):
        net["Domains"] = [str(d) for d in items(network, "Domains")]
    if items(network, "Ports"):
        net["Ports"] = items(network, "Ports")
    task["Network"] = net
    timeouts_raw = field(raw, "Timeouts")
    timeouts = {}
    for key in ("ExecutionTimeout", "QueueTimeout", "TotalTimeout"):
        value = _int(timeouts_raw, key)
        if value:
            timeouts[key] = value
    task["Timeouts"] = timeouts
    return task


def _validate_task(task: dict) -> list[str]:
    errs: list[str] = []
    if not task["Name"].strip():
        errs.append("missing task name")
    engine = task["Engine"]
    if engine is None:
        errs.append("invalid engine: nil spec config")
    elif not engine["Type"]:
        errs.append("invalid engine: missing spec type")
    targets: set[str] = set()
    aliases: set[str] = set()
    for source in task.get("InputSources", []):
        if not source["Target"]:
            errs.append("invalid input sources: input source is missing a target")
        elif source["Target"] in targets:
            errs.append(f"input source with target '{source['Target']}' already exists")
        targets.add(source["Target"])
        if source["Alias"]:
            if source["Alias"] in aliases:
                errs.append(f"input source with alias '{source['Alias']}' already exists")
            aliases.add(source["Alias"])
        if source["Source"] is None or not source["Source"]["Type"]:
            errs.append("invalid input sources: invalid input source: missing spec type")
    # ValidateSlice stops at the first bad result path; each joins its own problems (path.go Validate)
    for path in task.get("ResultPaths", []):
        problems = []
        if not path["Path"].strip():
            problems.append("missing path")
        if not path["Name"].strip():
            problems.append("missing name")
        if not path["Path"].startswith("/"):
            problems.append(f"result path `{path['Path']}` must be absolute")
        if problems:
            errs.append("invalid output: " + "\n".join(problems))
            break
    names: set[str] = set()
    seen_paths: set[str] = set()
    for path in task.get("ResultPaths", []):  # task.go validateResultPaths: the first repeat only
        if path["Name"] and path["Name"] in names:
            errs.append(f"result path with name '{path['Name']}' already exists")
            break
        if path["Path"] and path["Path"] in seen_paths:
            errs.append(f"result path '{path['Path']}' already exists")
            break
        names.add(path["Name"])
        seen_paths.add(path["Path"])
    env_problem = _env_problem(task.get("Env", {}))
    if env_problem:
        errs.append(env_problem)
    res = task["Resources"]
    if "CPU" in res and not _CPU.match(res["CPU"]):
        errs.append(f"invalid resources: invalid CPU value: {res['CPU']}")
    for key in ("Memory", "Disk"):
        if key in res and not _BYTES.match(res[key]):
            errs.append(f"invalid resources: invalid {key.lower()} value: {res[key]}")
    if "GPU" in res and not res["GPU"].isdigit():
        errs.append(f"invalid resources: invalid GPU value: {res['GPU']}")
    for key, value in task["Timeouts"].items():
        if value < 0:
            label = key.replace("Timeout", "").lower()
            errs.append(f"invalid timeouts: {label} timeout cannot be negative: {value}")
    net = task["Network"]
    if net["Type"] not in NETWORK_TYPES.values():
        errs.append(f"invalid network: invalid network type {net['Type']!r}")
    elif net.get("Domains") and net["Type"] != "HTTP":
        errs.append("invalid network: domains can only be set for HTTP network mode")
    elif net.get("Ports") and net["Type"] not in ("Host", "Full", "Bridge"):  # SupportPortAllocation
        errs.append("invalid network: ports can only be set for Host or Bridge network modes")
    return errs


def _env_problem(env: dict) -> str | None:
    """env_var.go ValidateEnvVars: the first problem, checked in Go's order, with Go's texts."""
    for name, value in env.items():
        if not name:
            return "environment variable name cannot be empty"
        # per rune, as Go's strings.ToUpper: 'ß' has no one-rune upper case and stays
        if any(len(ch.upper()) == 1 and ch.upper() != ch for ch in name):
            return f"environment variable '{name}' must be uppercase"
        if not name[0].isalpha():  # unicode.IsLetter
            return f"environment variable '{name}' must start with a letter"
        if not all(ch.isalpha() or ch.isdecimal() or ch == "_" for ch in name):
            return f"environment variable '{name}' can only contain letters, numbers, and underscores"
        if name.upper().startswith("BACALHAU_"):
            return f"environment variable '{name}' cannot start with BACALHAU_"
        if value == "":
            return f"environment variable '{name}' cannot have empty value"
    return None


def _validate_constraint(index: int, constraint: dict) -> str | None:
    """selector.go LabelSelectorRequirement.Validate, reported 1-based as ValidateSubmission does."""
    op = constraint["Operator"]
    values = constraint["Values"]
    problems = []
    if not constraint["Key"].strip():
        problems.append("selector key cannot be blank")
    if op in ("in", "notin"):
        if not values:
            problems.append("selector values cannot be empty for In or NotIn operators")
    elif op in ("exists", "!"):
        if values:
            problems.append("selector values must be empty for Exists or KeyNotInImap operators")
    elif len(values) != 1:
        problems.append("selector values must have exactly one value for other operators")
    elif op not in _OPERATORS:
        # Go accepts it here and then fails every evaluation (ranking/labels.go
        # labels.NewRequirement); the devstack ignores constraints when it schedules, so it refuses
        # the job now rather than run it.
        problems.append(f"operator {op!r} is not recognized")
    if not problems:
        return None
    return f"constraint {index + 1} validation failed: " + "\n".join(problems)


def normalize_submission(raw_job: Any) -> tuple[dict, list[str]]:
    """Decode, validate (ValidateSubmission), normalize and sanitize a submitted job.

    Returns the job without server-set fields (ID only kept for service/daemon) and the warnings.
    Raises :class:`SubmitError` with the joined validation messages.
    """
    if not isinstance(raw_job, dict):
        raise SubmitError("empty/nil job")
    errs: list[str] = []
    job_type = text(raw_job, "Type")
    if not job_type:
        errs.append("missing job type")
    elif job_type not in JOB_TYPES:
        errs.append(f'invalid job type: "{job_type}"')
    count_present = field(raw_job, "Count") is not None
    count = _int(raw_job, "Count") if count_present else (1 if job_type in ("batch", "service") else 0)
    if count < 0:
        errs.append("job count must be >= 0")
    elif job_type in ("daemon", "ops") and count > 1:
        errs.append(f"{job_type} jobs cannot specify count > 1 as they run on all matching nodes")
    constraints = []
    for i, c in enumerate(items(raw_job, "Constraints")):
        constraint = {
            "Key": text(c, "Key"),
            "Operator": text(c, "Operator"),
            "Values": [str(v) for v in items(c, "Values")],
        }
        problem = _validate_constraint(i, constraint)
        if problem:
            errs.append(problem)
        constraints.append(constraint)
    raw_tasks = items(raw_job, "Tasks")
    tasks = [_task(t) for t in raw_tasks if isinstance(t, dict)]
    if not tasks:
        errs.append("missing job tasks")
    for task in tasks:
        task_errs = _validate_task(task)
        if task_errs:
            errs.append(f"task {task['Name']} validation failed: " + "\n".join(task_errs))
    if errs:
        raise SubmitError("\n".join(errs))

    warnings: list[str] = []
    state = field(raw_job, "State")
    if isinstance(state, dict) and text(state, "StateType") not in ("", "Undefined", "0"):
        warnings.append("job state is ignored when submitting a job")
    for key, label in (
        ("Revision", "revision"),
        ("Version", "version"),
        ("CreateTime", "create time"),
        ("ModifyTime", "modify time"),
    ):
        if field(raw_job, key):
            warnings.append(f"job {label} is ignored when submitting a job")
    job_id = text(raw_job, "ID")
    if job_id and job_type in ("batch", "ops"):
        warnings.append(f"job ID is ignored when submitting a {job_type} job")
        job_id = ""
    if len(tasks) > 1:
        warnings.append("only one task is supported per job")
        tasks = tasks[:1]
    meta = {}
    for key, value in strmap(raw_job, "Meta").items():
        if key.startswith(RESERVED_META):
            warnings.append(f'job meta key "{key}" is reserved and will be ignored')
        else:
            meta[key] = value
    if job_type in ("daemon", "ops"):
        count = 0
    job = {
        "ID": job_id,
        "Name": text(raw_job, "Name"),
        "Namespace": text(raw_job, "Namespace") or "default",
        "Type": job_type,
        "Priority": _int(raw_job, "Priority"),
        "Count": count,
        "Constraints": constraints,
        "Meta": meta,
        "Labels": strmap(raw_job, "Labels"),
        "Tasks": tasks,
    }
    return job, warnings


def apply_defaults(job: dict, node_id: str) -> None:
    """Server-side transformers: meta keys and default resources (job defaults of v1.9.3)."""
    job["Meta"]["bacalhau.org/requester.id"] = node_id
    job["Meta"]["bacalhau.org/orchestrator.id"] = node_id
    for task in job["Tasks"]:
        task["Resources"].setdefault("CPU", DEFAULT_CPU)
        task["Resources"].setdefault("Memory", DEFAULT_MEMORY)


def validate_for_create(job: dict) -> None:
    """The full Job.Validate() of the create/update path (JobStore, 400 BadRequest)."""
    errs = []
    for task in job["Tasks"]:
        if task.get("ResultPaths") and not task["Publisher"]["Type"]:
            errs.append("publisher must be set if result paths are set")
        t = task["Timeouts"]
        total, execution, queue = (
            t.get("TotalTimeout", 0),
            t.get("ExecutionTimeout", 0),
            t.get("QueueTimeout", 0),
        )
        if total > 0 and execution + queue > total:
            errs.append(
                f"task timeouts validation failed: execution timeout {go_duration(execution)} "
                "and queue timeout "
                f"{go_duration(queue)} should be less than total timeout {go_duration(total)}"
            )
    if errs:
        raise SubmitError("\n".join(errs), stage="create")


def comparable(job: dict) -> dict:
    """The parts of a job Job.CompareWith looks at (server-set fields and bacalhau.org/ meta dropped)."""
    out = {
        k: v
        for k, v in job.items()
        if k not in ("ID", "State", "Version", "Revision", "CreateTime", "ModifyTime")
    }
    out["Meta"] = {k: v for k, v in job.get("Meta", {}).items() if not k.startswith(RESERVED_META)}
    return out


def force_flag(body: Any) -> bool:
    return flag(body, "Force")

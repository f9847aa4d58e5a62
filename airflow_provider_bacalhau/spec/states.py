"""Job and execution states: the ONE place that decides "terminal" and "succeeded".

Job states are strings in the API JSON; execution states are integers (v1.6+ numbering, with
v1.5's numbering recognised on request). A non-zero exit code does not fail a Bacalhau job, so
:attr:`JobStatus.succeeded` checks the exit codes itself.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_bacalhau.spec._common import LOG, get
from airflow_provider_bacalhau.spec.results import PublishedResult

STDERR_TAIL_LINES = 20


# StrEnum would change str() of a member ("Running" instead of "JobState.RUNNING").
class JobState(str, enum.Enum):  # noqa: UP042
    UNDEFINED = "Undefined"
    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.STOPPED)

    @classmethod
    def from_api(cls, value: Any) -> JobState:
        """From ``State.StateType``: a string (any case), or the Go number some tools print."""
        if isinstance(value, int) and not isinstance(value, bool):
            members = list(cls)
            if 0 <= value < len(members):
                return members[value]
        elif isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.strip().lower():
                    return member
        LOG.warning("unknown job state %r, treated as Undefined", value)
        return cls.UNDEFINED


class ExecutionState(enum.IntEnum):
    """Execution compute states, v1.6+ numbers (as in the JSON)."""

    UNDEFINED = 0
    NEW = 1
    ASK_FOR_BID = 2
    ASK_FOR_BID_ACCEPTED = 3
    ASK_FOR_BID_REJECTED = 4
    BID_ACCEPTED = 5
    RUNNING = 6
    PUBLISHING = 7
    BID_REJECTED = 8
    COMPLETED = 9
    FAILED = 10
    CANCELLED = 11

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_EXECUTION

    @property
    def label(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))

    @classmethod
    def from_api(cls, number: Any, legacy_v15: bool = False) -> ExecutionState:
        """From ``ComputeState.StateType``; ``legacy_v15`` reads v1.5's numbers (Completed=7)."""
        if isinstance(number, str):
            key = number.strip().replace(" ", "").lower()
            for member in cls:
                if member.label.lower() == key or member.name.replace("_", "").lower() == key:
                    return member
            if key.isdigit():
                number = int(key)
        if isinstance(number, int) and not isinstance(number, bool):
            table = _V15 if legacy_v15 else {m.value: m for m in cls}
            if number in table:
                return table[number]
        LOG.warning("unknown execution state %r, treated as Undefined", number)
        return cls.UNDEFINED


_TERMINAL_EXECUTION = frozenset(
    {
        ExecutionState.ASK_FOR_BID_REJECTED,
        ExecutionState.BID_REJECTED,
        ExecutionState.COMPLETED,
        ExecutionState.FAILED,
        ExecutionState.CANCELLED,
    }
)
# v1.5 had no Running/Publishing, so the later states sat two lower.
_V15 = {
    0: ExecutionState.UNDEFINED,
    1: ExecutionState.NEW,
    2: ExecutionState.ASK_FOR_BID,
    3: ExecutionState.ASK_FOR_BID_ACCEPTED,
    4: ExecutionState.ASK_FOR_BID_REJECTED,
    5: ExecutionState.BID_ACCEPTED,
    6: ExecutionState.BID_REJECTED,
    7: ExecutionState.COMPLETED,
    8: ExecutionState.FAILED,
    9: ExecutionState.CANCELLED,
}


class DesiredState(enum.IntEnum):
    PENDING = 0
    RUNNING = 1
    STOPPED = 2

    @classmethod
    def from_api(cls, value: Any) -> DesiredState:
        if isinstance(value, str):
            for member in cls:
                if member.name.lower() == value.strip().lower():
                    return member
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2:
            return cls(value)
        return cls.PENDING


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@dataclass
class RunOutput:
    """``Execution.RunOutput``; Bacalhau keeps only the first 2 KiB of each stream here."""

    stdout: str = ""
    stdout_truncated: bool = False
    stderr: str = ""
    stderr_truncated: bool = False
    exit_code: int | None = None
    error_msg: str = ""

    @classmethod
    def from_api(cls, mapping: Mapping[str, Any] | None) -> RunOutput:
        """Keys as sent: ``Stdout``, ``StdoutTruncated``, ``stderr`` (lower case; ``Stderr``
        tolerated), ``StderrTruncated``, ``ExitCode``, ``ErrorMsg``."""
        m = _mapping(mapping)
        return cls(
            stdout=str(get(m, "Stdout") or ""),
            stdout_truncated=bool(get(m, "StdoutTruncated")),
            stderr=str(get(m, "stderr") or ""),
            stderr_truncated=bool(get(m, "StderrTruncated")),
            exit_code=_int_or_none(get(m, "ExitCode")),
            error_msg=str(get(m, "ErrorMsg") or ""),
        )

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        return "\n".join(self.stderr.rstrip("\n").splitlines()[-lines:])


@dataclass
class Execution:
    """One execution of a job, parsed from the API JSON."""

    id: str
    node_id: str = ""
    job_id: str = ""
    job_version: int | None = None
    compute_state: ExecutionState = ExecutionState.UNDEFINED
    compute_message: str = ""
    desired_state: DesiredState = DesiredState.PENDING
    desired_message: str = ""
    run_output: RunOutput = field(default_factory=RunOutput)
    published_result: PublishedResult | None = None

    @classmethod
    def from_api(cls, mapping: Mapping[str, Any], legacy_v15: bool = False) -> Execution:
        m = _mapping(mapping)
        compute, desired = _mapping(get(m, "ComputeState")), _mapping(get(m, "DesiredState"))
        exec_id, job_id = str(get(m, "ID") or ""), str(get(m, "JobID") or "")
        raw_result = get(m, "PublishedResult")
        result = None
        if isinstance(raw_result, Mapping) and str(get(raw_result, "Type") or "").strip():
            result = PublishedResult.from_api(raw_result, job_id, exec_id)
        return cls(
            id=exec_id,
            node_id=str(get(m, "NodeID") or ""),
            job_id=job_id,
            job_version=_int_or_none(get(m, "JobVersion")),
            compute_state=ExecutionState.from_api(get(compute, "StateType", 0), legacy_v15),
            compute_message=str(get(compute, "Message") or ""),
            desired_state=DesiredState.from_api(get(desired, "StateType", 0)),
            desired_message=str(get(desired, "Message") or ""),
            run_output=RunOutput.from_api(get(m, "RunOutput")),
            published_result=result,
        )

    @property
    def exit_code_failed(self) -> bool:
        """Completed, but the container exited non-zero (Bacalhau does not fail those)."""
        return self.compute_state is ExecutionState.COMPLETED and self.run_output.exit_code not in (None, 0)

    def describe(self) -> str:
        out = self.run_output
        parts = [f"execution {self.id or '?'} on node {self.node_id or '?'}: {self.compute_state.label}"]
        if self.compute_message:
            parts.append(f"message: {self.compute_message}")
        if out.error_msg:
            parts.append(f"ErrorMsg: {out.error_msg}")
        if out.exit_code is not None:
            parts.append(f"ExitCode: {out.exit_code}")
        text = "; ".join(parts)
        tail = out.stderr_tail()
        if tail:
            note = " (Bacalhau kept only the first 2 KiB)" if out.stderr_truncated else ""
            text += f"\n  stderr (last {STDERR_TAIL_LINES} lines{note}):\n" + "\n".join(
                f"    {line}" for line in tail.splitlines()
            )
        return text


@dataclass
class JobStatus:
    """A job and its executions (latest version only) from ``GET /jobs/{id}?include=executions``
    (``executions`` is empty when the answer had none).
    """

    job_id: str
    name: str = ""
    namespace: str = ""
    type: str = ""
    version: int | None = None
    state: JobState = JobState.UNDEFINED
    message: str = ""
    executions: list[Execution] = field(default_factory=list)

    @classmethod
    def from_api(cls, response: Mapping[str, Any], legacy_v15: bool = False) -> JobStatus:
        """From ``{"Job": ..., "Executions": {"Items": [...]}}`` (a bare Job is accepted too)."""
        resp = _mapping(response)
        job = _mapping(get(resp, "Job")) if isinstance(get(resp, "Job"), Mapping) else resp
        state = _mapping(get(job, "State"))
        version = _int_or_none(get(job, "Version"))
        raw_execs = get(resp, "Executions")
        items = get(raw_execs, "Items") if isinstance(raw_execs, Mapping) else raw_execs
        executions = [Execution.from_api(e, legacy_v15) for e in (items or []) if isinstance(e, Mapping)]
        if version is not None:  # older servers send no JobVersion: keep those
            executions = [e for e in executions if e.job_version is None or e.job_version == version]
        return cls(
            job_id=str(get(job, "ID") or ""),
            name=str(get(job, "Name") or ""),
            namespace=str(get(job, "Namespace") or ""),
            type=str(get(job, "Type") or ""),
            version=version,
            state=JobState.from_api(get(state, "StateType", "Undefined")),
            message=str(get(state, "Message") or ""),
            executions=executions,
        )

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def succeeded(self) -> bool:
        """Job Completed and every Completed execution of the latest version exited 0.

        Exit codes are only known when the answer included executions (``include=executions``);
        a missing ExitCode counts as 0.
        """
        return self.state is JobState.COMPLETED and not any(e.exit_code_failed for e in self.executions)

    @property
    def completed_executions(self) -> list[Execution]:
        return [e for e in self.executions if e.compute_state is ExecutionState.COMPLETED]

    @property
    def results(self) -> list[PublishedResult]:
        """Published results of the Completed executions of the latest version."""
        return [e.published_result for e in self.completed_executions if e.published_result is not None]

    def failure_summary(self) -> str:
        """Why the job did not succeed: job message, then the executions that explain it."""
        head = f"Bacalhau job {self.job_id or '?'}"
        if self.name and self.name != self.job_id:
            head += f" ({self.name})"
        head += f" is {self.state.value}"
        if self.message:
            head += f": {self.message}"
        if self.state is JobState.COMPLETED and any(e.exit_code_failed for e in self.executions):
            head += " (but an execution exited with a non-zero code)"
        bad = [
            e
            for e in self.executions
            if e.exit_code_failed
            or e.run_output.error_msg
            or e.compute_state
            in (
                ExecutionState.FAILED,
                ExecutionState.CANCELLED,
                ExecutionState.BID_REJECTED,
                ExecutionState.ASK_FOR_BID_REJECTED,
            )
        ]
        lines = [head] + [f"- {e.describe()}" for e in (bad or self.executions)]
        return "\n".join(lines)

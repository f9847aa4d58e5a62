"""A failed execution's container output for the failure message, from the logs endpoint.

Bacalhau v1.9.3 stores no RunOutput for a failed (or cancelled) execution: the orchestrator's
``OnComputeFailure`` (pkg/orchestrator/message_handler.go) keeps only ``ComputeState.Message``.
The output is still on the node, in log files kept about an hour, and the logs endpoint serves it
when ``execution_id`` is given (reference §2.11, §16). Reading it is best effort and bounded:
the stream is known to be flaky, a missing log file makes the node wait 60 s before it answers,
and none of that may fail the task or hold it up more than :data:`TOTAL_SECONDS`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

#: Executions whose output is read per job (the latest ones).
MAX_EXECUTIONS = 3
#: What the message shows of each stream of an execution.
TAIL_LINES, TAIL_BYTES = 20, 2048
#: Output read per execution to find its tail (v1.9.3 sends a log from its start only).
READ_LIMIT = 1 << 20
#: Seconds all the reads of one failure may take together.
TOTAL_SECONDS = 5.0


def needs_logs(execution: Any) -> bool:
    """Failed or cancelled, and Bacalhau kept no RunOutput for it (when it did, that is shown)."""
    from airflow_provider_bacalhau.spec import ExecutionState

    run = execution.run_output
    has_run_output = run.exit_code is not None or bool(run.stdout or run.stderr or run.error_msg)
    return execution.compute_state in (ExecutionState.FAILED, ExecutionState.CANCELLED) and not has_run_output


def failed_output(
    client: Any, status: Any, log: logging.Logger, budget: float = TOTAL_SECONDS, clock: Any = time.monotonic
) -> str:
    """The tails of the failed executions' output, as text for the failure message ("" if none).

    :param client: a :class:`~airflow_provider_bacalhau.client.BacalhauClient`.
    :param status: the job's :class:`~airflow_provider_bacalhau.spec.JobStatus`.
    :param budget: seconds for every read together.
    """
    from airflow_provider_bacalhau.errors import BacalhauLogsError

    wanted = [e for e in status.executions if needs_logs(e)][-MAX_EXECUTIONS:][::-1]
    deadline = clock() + budget
    sections = []
    for execution in wanted:
        remaining = deadline - clock()
        if remaining < 0.2:
            sections.append(
                f"Output of execution {execution.id}: not read (the {budget:g} s for logs were used up)"
            )
            continue
        try:
            kept = client.job_logs_tail(
                status.job_id,
                execution.id,
                lines=TAIL_LINES,
                max_bytes=TAIL_BYTES,
                timeout=remaining,
                read_limit=READ_LIMIT,
                namespace=status.namespace or None,
            )
        except BacalhauLogsError as exc:
            log.info("No output of execution %s from the logs endpoint: %s", execution.id, exc)
            sections.append(
                f"Output of execution {execution.id}: not available from the logs endpoint ({exc.message})"
            )
            continue
        except Exception as exc:  # logs are extra information: never the reason a task fails
            log.warning("Reading the logs of execution %s failed: %s", execution.id, exc, exc_info=True)
            sections.append(f"Output of execution {execution.id}: not available ({type(exc).__name__})")
            continue
        sections.append(render(execution.id, kept))
    return "\n".join(sections)


def render(execution_id: str, kept: Any) -> str:
    if not kept:
        return f"Output of execution {execution_id} (logs endpoint): none"
    notes = []
    if kept.cut:
        notes.append(f"last {TAIL_LINES} lines of each stream")
    if kept.ended in ("timeout", "max_bytes"):
        notes.append(f"the read stopped at its {'time' if kept.ended == 'timeout' else 'size'} bound")
    if kept.error:
        notes.append(f"the stream broke: {kept.error}")
    head = f"Output of execution {execution_id} (logs endpoint{'; ' + '; '.join(notes) if notes else ''}):"
    lines = [head]
    for stream in ("stdout", "stderr"):
        text = kept.text(stream).rstrip("\n")
        if text:
            lines.append(f"  {stream}:")
            lines.extend(f"    {line}" for line in text.splitlines())
    return "\n".join(lines)

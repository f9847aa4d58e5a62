#!/usr/bin/env bash
# `make demo`: run the example_bacalhau_s3_pipeline DAG end to end on a local devstack
# (Bacalhau stand-in + real Docker + SeaweedFS S3) with the real `airflow dags test` command, print
# the chained result and the Bacalhau job ids, and tear everything down again.
# Quiet by default: the full log goes to .devstack/demo.log (DEMO_VERBOSE=1 streams it too).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="${VENV:-.venv}"
PY="$REPO/$VENV/bin/python"
AIRFLOW="$REPO/$VENV/bin/airflow"
DAG_ID=example_bacalhau_s3_pipeline
STATE_DIR="$REPO/.devstack"
LOG="$STATE_DIR/demo.log"
mkdir -p "$STATE_DIR"
: >"$LOG"

# A private Airflow home, so the demo never touches ~/airflow or a user's own set-up.
export AIRFLOW_HOME="$STATE_DIR/airflow-home"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/example_dags"
export AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
export BACALHAU_EXAMPLES_POLL_INTERVAL=1
# Wait for the jobs the deferrable way (`dags test` runs the triggers in line).
export AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="${AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE:-True}"
export PYTHONWARNINGS="ignore::DeprecationWarning"
mkdir -p "$AIRFLOW_HOME"

started=$(date +%s)
bold=$'\033[1m'; green=$'\033[32m'; red=$'\033[31m'; reset=$'\033[0m'
if [[ ! -t 1 ]]; then bold=; green=; red=; reset=; fi
step() { printf '%s==>%s %s\n' "$bold" "$reset" "$*"; }
elapsed() { echo "$(($(date +%s) - started)) s"; }

# Run a command with its output in the log only (or streamed too with DEMO_VERBOSE=1).
quiet() {
    echo "+ $*" >>"$LOG"
    if [[ "${DEMO_VERBOSE:-0}" == 1 ]]; then
        "$@" 2>&1 | tee -a "$LOG"
        return "${PIPESTATUS[0]}"
    fi
    "$@" >>"$LOG" 2>&1
}

stack_up=0
finish() {
    local status=$?
    if [[ $stack_up == 1 ]]; then
        step "stopping the devstack"
        quiet "$PY" -m airflow_provider_bacalhau.devstack down || true
    fi
    if [[ $status == 0 ]]; then
        printf '%sdemo finished in %s%s; full log: %s\n' "$green" "$(elapsed)" "$reset" "$LOG"
    else
        printf '%sdemo FAILED after %s%s; last lines of %s:\n' "$red" "$(elapsed)" "$reset" "$LOG"
        tail -n 40 "$LOG" | sed 's/^/    /'
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

step "starting the devstack (Docker Engine, SeaweedFS S3, Bacalhau stand-in)"
stack_up=1
echo "+ $PY -m airflow_provider_bacalhau.devstack up" >>"$LOG"
exports="$("$PY" -m airflow_provider_bacalhau.devstack up 2>>"$LOG")"
printf '%s\n' "$exports" >>"$LOG"
eval "$exports"
api_url="http://${BACALHAU_API_HOST:-127.0.0.1}:${BACALHAU_API_PORT:-1234}"
echo "    Bacalhau API at $api_url"

step "preparing a private Airflow home in ${AIRFLOW_HOME#"$REPO"/}"
quiet "$AIRFLOW" db migrate

step "airflow dags test $DAG_ID (deferrable: $AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE)"
dag_started=$(date +%s)
quiet "$AIRFLOW" dags test "$DAG_ID"
echo "    DAG run finished in $(($(date +%s) - dag_started)) s"

step "result"
# Read the run's XCom from the Airflow DB: the Bacalhau jobs each task ran and the totals.
"$PY" - "$DAG_ID" "$STATE_DIR/demo-job-ids" <<'PYEOF'
import sys
import warnings

warnings.simplefilter("ignore")
from sqlalchemy import select

from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

dag_id = sys.argv[1]
with create_session() as session:
    run = session.scalars(
        select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
    ).one()

    def xcom(task_id: str, key: str = "return_value"):
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)

    states = {
        ti.task_id: ti.state
        for ti in session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        )
    }
    print(f"    run {run.run_id}: {run.state}")
    for task_id, state in sorted(states.items()):
        print(f"      {task_id:<14} {state}")
    job_ids = []
    for task_id in ("clean_sales", "sum_by_region"):
        job_ids.append(xcom(task_id, "bacalhau_job_id"))
        for result in xcom(task_id) or []:
            params = result.get("Params", {})
            where = f"s3://{params.get('Bucket')}/{params.get('Key')}" if result.get("Type") == "s3" else result
            print(f"    {task_id:<14} job {result.get('JobID')} -> {where}")
    totals = xcom("report") or {}
    print("    totals per region (job A -> job B, fetched by Airflow):")
    for region, row in sorted(totals.items()):
        print(
            f"      {region:<8} {row['orders']:>4} orders {row['units']:>6} units "
            f"{row['revenue_cents'] / 100:>12,.2f} revenue"
        )
    print(f"      {'all':<8} {sum(r['orders'] for r in totals.values()):>4} orders "
          f"{sum(r['units'] for r in totals.values()):>6} units "
          f"{sum(r['revenue_cents'] for r in totals.values()) / 100:>12,.2f} revenue")
    with open(sys.argv[2], "w") as handle:
        handle.write("\n".join(job_ids) + "\n")
    if run.state != "success" or not totals:
        sys.exit(1)
PYEOF

step "this run's jobs, as the Bacalhau API reports them (GET $api_url/api/v1/orchestrator/jobs/ID)"
show_job='import json, sys
job = json.load(sys.stdin)["Job"]
print("    " + "  ".join([job["ID"], job["State"]["StateType"], "version %s" % job["Version"], job["Name"]]))'
while read -r job_id; do
    curl -fsS "$api_url/api/v1/orchestrator/jobs/$job_id" | "$PY" -c "$show_job"
done <"$STATE_DIR/demo-job-ids"

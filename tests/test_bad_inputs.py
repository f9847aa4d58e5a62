"""Bad input gets a clear error before anything is sent, and no wasted retries (issue 12 §3).

The corpus is data: ``tests/data/bad_inputs/*.yaml``, one list of cases per category. Each case
builds one operator (or sensor) the way a DAG author would, renders its templates with what a
user typed in the Trigger form, and runs it against the session devstack with connections that
hold known secrets. Every case must:

1. fail before any submit: the devstack counts ``PUT /api/v1/orchestrator/jobs`` server-side
   (its fault API's per-route ``seen`` counter, with a rule that injects nothing);
2. name the field in the message (``field``, matched without regard to case);
3. leak none of the connections' secrets (API key, basic-auth password, AWS secret key and
   session token) into the message, the exception chain or the provider's log lines;
4. fail in a way Airflow does not retry (an ``AirflowFailException``), unless the case says
   ``retry: allowed`` (a transient error); errors at DAG parse time stop the DAG from loading,
   so no task runs at all. Cases marked ``dag_test: true`` also run in a real ``dag.test()``
   with ``retries=2``, which must end after one try.

Case keys: ``id``, ``build`` (docker, job, stage, fetch, sensor), ``args`` (operator arguments;
``${NAME}`` placeholders are filled in below), ``field``, and optionally ``params`` (the run's
params, what the Trigger form sends), ``files`` (name -> text, written next to the DAG and on
its ``template_searchpath``), ``conn`` (overrides of the Bacalhau/AWS connection fields),
``at`` (``parse`` when the constructor must refuse it), ``retry``, ``dag_test``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.providers.common.compat.sdk import DAG, AirflowFailException
from airflow_helpers import (
    AIRFLOW_VERSION,
    FakeTaskInstance,
    airflow_db,  # noqa: F401  (a fixture)
    fake_context,
    record_logs,
    run_dag,
    unique_dag_id,
)

from airflow_provider_bacalhau.devstack.testing import SECRET_IDENTITY

CORPUS = Path(__file__).parent / "data" / "bad_inputs"
API_KEY = "bacalhau-APIKEY-3f9a7c1e5d2b-never-logged"
BASIC_USER = "airflowuser"
BASIC_PASSWORD = "basic-PASSWORD-8e2d41-never-logged"
AWS_SECRET = SECRET_IDENTITY.secret_key
AWS_TOKEN = "aws-SESSION-TOKEN-5b1c9f-never-logged"
SECRETS = (API_KEY, BASIC_PASSWORD, AWS_SECRET, AWS_TOKEN)
SUBMIT = "PUT /api/v1/orchestrator/jobs"
BUILDS = ("docker", "job", "stage", "fetch", "sensor")


def load_corpus() -> list[dict[str, Any]]:
    cases = []
    for file in sorted(CORPUS.glob("*.yaml")):
        for case in yaml.safe_load(file.read_text()):
            case.setdefault("category", file.stem)
            cases.append(case)
    return cases


CASES = load_corpus()


def test_corpus_is_large_and_well_formed():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CASES) >= 100, len(CASES)
    for case in CASES:
        assert case["build"] in BUILDS, case["id"]
        assert case.get("field"), case["id"]
        assert set(case) <= {
            "id",
            "category",
            "build",
            "args",
            "field",
            "params",
            "files",
            "conn",
            "at",
            "retry",
            "dag_test",
            "why",
        }, case["id"]


# -- environment: connections with known secrets, the devstack's submit counter -------------------


class Env:
    def __init__(self, devstack: Any, patch: pytest.MonkeyPatch) -> None:
        self.devstack = devstack
        self.patch = patch
        self.values = {
            "API_HOST": devstack.api_host,
            "API_PORT": str(devstack.api_port),
            "S3_ENDPOINT": devstack.s3_endpoint,
            "API_KEY": API_KEY,
            "BASIC_USER": BASIC_USER,
            "BASIC_PASSWORD": BASIC_PASSWORD,
            "AWS_SECRET": AWS_SECRET,
            "AWS_TOKEN": AWS_TOKEN,
            "RESULTS_BUCKET": devstack.results_bucket,
            "CORPUS": str(CORPUS),
        }
        self.bacalhau = {
            "conn_type": "bacalhau",
            "host": devstack.api_host,
            "port": devstack.api_port,
            "password": API_KEY,
            # no client retries: a case that reaches the network fails fast
            "extra": {"webui_url": devstack.webui_url, "max_retries": 0, "timeout": 5},
        }
        self.aws = {
            "conn_type": "aws",
            "login": SECRET_IDENTITY.access_key,
            "password": AWS_SECRET,
            "extra": {
                "endpoint_url": devstack.s3_endpoint,
                "region_name": devstack.region,
                "aws_session_token": AWS_TOKEN,
                "config_kwargs": {"signature_version": "s3v4"},
            },
        }

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            for name, text in self.values.items():
                value = value.replace("${" + name + "}", text)
            return value
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        return value

    def connections(self, case: dict) -> dict[str, str]:
        """Set this case's connections; returns the operator arguments naming them."""
        overrides = self.fill(case.get("conn") or {})
        bacalhau = _merged(self.bacalhau, overrides.get("bacalhau") or {})
        aws = _merged(self.aws, overrides.get("aws") or {})
        self.patch.setenv("AIRFLOW_CONN_BAD_INPUT_BACALHAU", json.dumps(bacalhau))
        self.patch.setenv("AIRFLOW_CONN_BAD_INPUT_AWS", json.dumps(aws))
        return {"bacalhau_conn_id": "bad_input_bacalhau", "aws_conn_id": "bad_input_aws"}

    def submits(self) -> int:
        return self.devstack._admin("GET", "/devstack/v1/faults")["routes"][SUBMIT]["seen"]


def _merged(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if key == "extra":
            out["extra"] = {**base.get("extra", {}), **value}
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module")
def env(devstack, airflow_db):
    # Authentication on, so the secrets in the connections are the real credentials.
    devstack.set_auth(
        [
            {"api_key": API_KEY, "capabilities": ["*"]},
            {"username": BASIC_USER, "password": BASIC_PASSWORD, "capabilities": ["*"]},
        ]
    )
    devstack.set_faults(routes={SUBMIT: {"error_rate": 0.0}})  # counts submits, injects nothing
    with pytest.MonkeyPatch.context() as patch:
        for name, value in devstack.env().items():
            patch.setenv(name, value)
        try:
            yield Env(devstack, patch)
        finally:
            devstack.clear_faults()
            devstack.clear_auth()


# -- building and running one case --------------------------------------------------------------


def build_operator(case: dict, args: dict) -> Any:
    from airflow_provider_bacalhau.operators import (
        BacalhauDockerJobOperator,
        BacalhauFetchResultsOperator,
        BacalhauJobOperator,
        BacalhauS3StageOperator,
    )
    from airflow_provider_bacalhau.sensors import BacalhauJobSensor

    kind = case["build"]
    args = dict(args)
    if kind in ("docker", "job"):
        args.setdefault("poll_interval", 0.2)
        args.setdefault("timeout", 30)
        args.setdefault("deferrable", False)
        args.setdefault("node_support_check", "off")
        cls = BacalhauDockerJobOperator if kind == "docker" else BacalhauJobOperator
        if kind == "docker":
            args.setdefault("image", "busybox")
    elif kind == "stage":
        cls = BacalhauS3StageOperator
    elif kind == "fetch":
        cls = BacalhauFetchResultsOperator
    else:
        cls = BacalhauJobSensor
        args.setdefault("poke_interval", 0.2)
        args.setdefault("timeout", 30)
        args.setdefault("deferrable", False)
    return cls(task_id="case", **args)


STAGE_DEFAULTS = {"local_paths": [str(CORPUS / "sample.csv")], "bucket": "${RESULTS_BUCKET}"}


def case_args(env: Env, case: dict, tmp_path: Path) -> dict:
    defaults = STAGE_DEFAULTS if case["build"] == "stage" else {}
    args = {**env.connections(case), **env.fill({**defaults, **(case.get("args") or {})})}
    if case["build"] == "sensor":
        args.pop("aws_conn_id")
    for name, text in (case.get("files") or {}).items():
        (tmp_path / name).write_text(env.fill(text))
    return _with_tmp(args, tmp_path)


def _with_tmp(value: Any, tmp_path: Path) -> Any:
    if isinstance(value, str):
        return value.replace("${TMP}", str(tmp_path))
    if isinstance(value, list):
        return [_with_tmp(v, tmp_path) for v in value]
    if isinstance(value, dict):
        return {k: _with_tmp(v, tmp_path) for k, v in value.items()}
    return value


def run_case(env: Env, case: dict, tmp_path: Path) -> tuple[str, BaseException | None, str]:
    """Build, render and execute the case's operator: (where it failed, the error, the log)."""
    args = case_args(env, case, tmp_path)
    params = env.fill(case.get("params") or {})
    with record_logs() as logs:
        with DAG(
            unique_dag_id("bad_input"),
            schedule=None,
            start_date=datetime(2024, 1, 1),
            template_searchpath=[str(tmp_path)],
            params=dict(params),
        ):
            try:
                op = build_operator(case, args)
            except Exception as exc:
                return "parse", exc, logs.text
        # A task instance of its own: a job found under the same name would be reused as it is.
        context = fake_context(FakeTaskInstance(dag_id=op.dag_id, task_id="case", run_id=case["id"]))
        context.update(params=dict(params), task=op, dag=op.dag)
        try:
            op.render_template_fields(context)
            op.execute(context)
        except Exception as exc:
            return "execute", exc, logs.text
    return "nowhere", None, logs.text


def chain_text(exc: BaseException) -> str:
    texts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts.append(f"{type(exc).__name__}: {exc} {exc.args!r}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input(env, case, tmp_path):
    before = env.submits()
    where, exc, log_text = run_case(env, case, tmp_path)
    assert exc is not None, f"{case['id']}: no error; the bad input was accepted"
    assert env.submits() == before, f"{case['id']}: a job was submitted before the error: {exc}"
    message = str(exc)
    assert case["field"].lower() in message.lower(), (
        f"{case['id']}: field {case['field']!r} not named in: {message}"
    )
    leaked = [s for s in SECRETS if s in chain_text(exc) or s in log_text]
    assert not leaked, f"{case['id']}: secret in the message, its chain or the log"
    expected = case.get("at", "execute")
    assert where == expected, f"{case['id']}: failed at {where}, expected at {expected}: {exc!r}"
    if case.get("retry") == "allowed":
        assert not isinstance(exc, AirflowFailException), f"{case['id']}: transient, retries apply"
    else:
        assert isinstance(exc, AirflowFailException) if where == "execute" else isinstance(exc, ValueError), (
            f"{case['id']}: {type(exc).__mro__} would be retried"
        )


# -- a subset in real Airflow runs: one try despite retries=2 -----------------------------------

DAG_CASES = [c for c in CASES if c.get("dag_test")]


def test_dag_test_subset_is_meaningful():
    assert len(DAG_CASES) >= 6
    assert {c["build"] for c in DAG_CASES} >= {"docker", "job", "stage", "fetch", "sensor"}


#: What Airflow hands the failure callbacks (``context["exception"]``), by task id.
FAILURES: dict[str, BaseException] = {}
#: Airflow 3.0's task runner calls failure callbacks without ``exception`` in the context (2.11
#: and 3.3 pass it): there the exception's type and message cannot be checked, only its effect
#: (failed, one try despite retries, nothing submitted).
CALLBACKS_SEE_THE_EXCEPTION = AIRFLOW_VERSION != (3, 0)


def _record_failure(context: Any) -> None:
    FAILURES[context["ti"].task_id] = context.get("exception")


def _failure(task_id: str) -> BaseException | None:
    """The exception ``task_id`` failed with; None where the Airflow cannot tell a callback."""
    assert task_id in FAILURES, f"the failure callback of {task_id} did not run"
    exc = FAILURES[task_id]
    assert (exc is not None) == CALLBACKS_SEE_THE_EXCEPTION, exc
    return exc


@pytest.mark.parametrize("case", DAG_CASES, ids=[c["id"] for c in DAG_CASES])
def test_bad_input_fails_once_in_dag_test(env, case, tmp_path):
    args = case_args(env, case, tmp_path)
    params = env.fill(case.get("params") or {})
    declared = {name: "" for name in params}  # the DAG declares them; the run sends the values
    with DAG(
        unique_dag_id("bad_input_run"),
        schedule=None,
        start_date=datetime(2024, 1, 1),
        template_searchpath=[str(tmp_path)],
        params=declared,
        default_args={
            "retries": 2,
            "retry_delay": timedelta(seconds=0),
            "on_failure_callback": _record_failure,
        },
    ) as dag:
        build_operator(case, args)
    before = env.submits()
    FAILURES.clear()
    with record_logs() as logs:
        result = run_dag(dag, run_conf=params)
    assert result.ti_states["case"] == "failed", result.ti_states
    assert result.ti("case").try_number == 1, f"{case['id']}: retried"
    assert env.submits() == before
    exc = _failure("case")
    if exc is not None:
        assert isinstance(exc, AirflowFailException), type(exc).__mro__
        assert case["field"].lower() in str(exc).lower(), f"{case['id']}: field not named in {exc}"
        assert not [s for s in SECRETS if s in chain_text(exc)]
    assert not [s for s in SECRETS if s in logs.text]


def test_example_pipeline_with_a_bad_bucket_fails_in_stage_naming_bucket(env, devstack_env):
    """The report in issue 12: ``bucket="s3://Bad Bucket"`` typed in the Trigger form of
    ``example_bacalhau_s3_pipeline`` failed in botocore's ParamValidationError."""
    from e2e_helpers import load_example

    dag = load_example("example_bacalhau_s3_pipeline")
    for task in dag.tasks:
        task.on_failure_callback = [_record_failure]  # what the constructor makes of one callable
    before = env.submits()
    FAILURES.clear()
    result = run_dag(dag, run_conf={"bucket": "s3://Bad Bucket"})
    assert result.ti_states["stage_sales"] == "failed", result.ti_states
    assert result.ti("stage_sales").try_number == 1
    assert result.ti_states["clean_sales"] == "upstream_failed"
    assert env.submits() == before
    exc = _failure("stage_sales")
    if exc is not None:
        assert isinstance(exc, AirflowFailException), type(exc).__mro__
        assert str(exc).startswith("BacalhauS3StageOperator: bucket: "), str(exc)
        assert "ParamValidationError" not in chain_text(exc)

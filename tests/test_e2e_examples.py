"""End to end: every example DAG runs to success on the devstack (real Docker, SeaweedFS S3, real
Airflow), deferrable and blocking, and its final result is checked against values computed here
from the committed data. One DAG also runs through the real ``airflow dags test`` CLI.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import e2e_helpers as e2e
import pytest
from airflow_helpers import airflow_db, requires_airflow  # noqa: F401  (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DATA = e2e.EXAMPLES / "data"


def expected_sales_totals() -> dict[str, dict[str, int]]:
    """What job A + job B must compute: valid rows only, region names normalised."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"orders": 0, "units": 0, "revenue_cents": 0})
    with (DATA / "sales.csv").open() as handle:
        next(handle)
        for line in handle:
            if line.startswith("#"):
                continue
            fields = line.rstrip("\n").split(",")
            region = fields[2].strip().capitalize() if len(fields) > 2 else ""
            units, price = (fields[4], fields[5]) if len(fields) > 5 else ("", "")
            if not region or not units.isdigit() or int(units) == 0 or not price.isdigit():
                continue
            row = totals[region]
            row["orders"] += 1
            row["units"] += int(units)
            row["revenue_cents"] += int(units) * int(price)
    return dict(totals)


def expected_station_summary() -> dict[str, dict[str, int]]:
    summary: dict[str, dict[str, int]] = {}
    for path in sorted((DATA / "readings").glob("day-*.csv")):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                temp = int(row["temp_decicelsius"])
                s = summary.setdefault(row["station"], {"readings": 0, "sum": 0, "min": temp, "max": temp})
                s["readings"] += 1
                s["sum"] += temp
                s["min"] = min(s["min"], temp)
                s["max"] = max(s["max"], temp)
    return summary


def test_the_committed_data_is_what_the_expectations_assume():
    totals = expected_sales_totals()
    assert sorted(totals) == ["Central", "East", "North", "South", "West"]
    assert sum(r["orders"] for r in totals.values()) == 360  # 3 broken rows dropped
    assert len(list((DATA / "readings").glob("day-*.csv"))) == 3


@pytest.fixture(params=[True, False], ids=["deferrable", "blocking"])
def deferrable(request, monkeypatch) -> bool:
    """The deployment-wide switch: the operators read it when the DAG file is parsed."""
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", str(request.param))
    return request.param


@pytest.fixture
def example_env(devstack_env, airflow_db, monkeypatch, tmp_path):
    """Connections to the devstack, a fast poll, the examples' default bucket, a download dir."""
    monkeypatch.setenv("BACALHAU_EXAMPLES_POLL_INTERVAL", "1")
    e2e.ensure_bucket(devstack_env, e2e.EXAMPLE_BUCKET)
    return {"download_dir": str(tmp_path / "downloads")}


def test_s3_pipeline_totals_match_the_dataset(example_env, deferrable, devstack, capfd):
    dag = e2e.load_example("example_bacalhau_s3_pipeline")
    run = e2e.run_dag(dag, conf={**example_env, "stage_prefix": f"staging/sales-{deferrable}/"})
    out = capfd.readouterr().out

    assert run.state == "success", e2e.tail(out)
    assert e2e.xcom(run, "report") == expected_sales_totals()
    e2e.assert_deferral(out, deferrable)

    # A published plain objects under results/<job A>/<date>/; B read exactly those and
    # published one gzip archive.
    (a_result,) = e2e.xcom(run, "clean_sales")
    (b_result,) = e2e.xcom(run, "sum_by_region")
    assert a_result["Type"] == "s3" and a_result["Params"]["Key"].startswith(f"results/{a_result['JobID']}/")
    assert a_result["Params"]["Key"].endswith("/")
    assert b_result["Params"]["Key"].endswith(".tar.gz")
    job_b = e2e.devstack_job(devstack, b_result["JobID"])
    b_inputs = [src["Source"]["Params"]["Key"] for src in job_b["Tasks"][0]["InputSources"]]
    assert any(key.startswith(a_result["Params"]["Key"]) for key in b_inputs), b_inputs


def test_s3managed_chain_is_restaged_and_summed(example_env, deferrable, devstack, capfd):
    dag = e2e.load_example("example_bacalhau_s3managed")
    run = e2e.run_dag(dag, conf={**example_env, "count": 50, "staging_bucket": e2e.EXAMPLE_BUCKET})
    out = capfd.readouterr().out

    assert run.state == "success", e2e.tail(out)
    assert e2e.xcom(run, "report") == {"count": 50, "sum_of_squares": 50 * 51 * 101 // 6, "checksum": "OK"}
    (managed,) = e2e.xcom(run, "make_squares")
    assert managed["Type"] == "s3managed"
    # The second job read a plain S3 copy of the managed archive, re-staged in staging_bucket.
    (summed,) = e2e.xcom(run, "check_and_sum")
    (source,) = [i["Source"] for i in e2e.devstack_job(devstack, summed["JobID"])["Tasks"][0]["InputSources"]]
    assert source["Type"] == "s3" and source["Params"]["Bucket"] == e2e.EXAMPLE_BUCKET, source
    e2e.assert_deferral(out, deferrable)


def test_fanout_maps_one_job_per_partition_and_combines(example_env, deferrable, devstack, capfd):
    dag = e2e.load_example("example_bacalhau_fanout")
    run = e2e.run_dag(dag, conf={**example_env, "stage_prefix": f"staging/readings-{deferrable}"})
    out = capfd.readouterr().out

    assert run.state == "success", e2e.tail(out)
    assert e2e.xcom(run, "report") == expected_station_summary()
    per_day = [e2e.xcom(run, "summarise_day", map_index=i) for i in range(3)]
    assert len({results[0]["JobID"] for results in per_day}) == 3  # one job per partition
    (combined,) = e2e.xcom(run, "combine_days")
    job = e2e.devstack_job(devstack, combined["JobID"])
    assert len(job["Tasks"][0]["InputSources"]) == 3
    e2e.assert_deferral(out, deferrable)


def test_job_file_renders_params_into_the_container(example_env, deferrable, capfd):
    message = f'Grüße "from" the e2e test, {"deferrable" if deferrable else "blocking"} & <done>'
    dag = e2e.load_example("example_bacalhau_job_file")
    run = e2e.run_dag(dag, conf={**example_env, "message": message})
    out = capfd.readouterr().out

    assert run.state == "success", e2e.tail(out)
    assert e2e.xcom(run, "report") == {
        "message": message,
        "sha256": hashlib.sha256(message.encode()).hexdigest(),
    }
    e2e.assert_deferral(out, deferrable)


def test_airflow_dags_test_cli_runs_an_example(devstack, airflow_db, tmp_path):
    """The real CLI in a fresh process: the [operators] default_deferrable setting is honoured."""
    e2e.ensure_bucket(devstack, e2e.EXAMPLE_BUCKET)
    env = {
        **os.environ,
        **devstack.env(),
        "AIRFLOW__CORE__DAGS_FOLDER": str(e2e.EXAMPLES),
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
        "BACALHAU_EXAMPLES_POLL_INTERVAL": "1",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    conf = {"message": "hello from the airflow CLI", "download_dir": str(tmp_path)}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "airflow"),
            "dags",
            "test",
            "example_bacalhau_job_file",
            "--conf",
            json.dumps(conf),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, e2e.tail(out)
    assert "running trigger in line" in out  # deferred, as the setting asked
    run = e2e.latest_run("example_bacalhau_job_file")
    assert run.state == "success", e2e.tail(out)
    assert e2e.xcom(run, "report")["message"] == "hello from the airflow CLI"


# The asset-event plumbing these tests drive (e2e.run_dag_on_asset_events) is Airflow 3.3's;
# the compat lanes (2.11, 3.0) import the asset examples but do not run them.
only_on_3_3 = requires_airflow((3, 3), "asset events are tested on Airflow 3.3")


@only_on_3_3
def test_asset_consumer_runs_on_the_producers_published_result(example_env, deferrable, devstack, capfd):
    """The producer's alias outlet gets the real URI of its result; the consumer, run on that event,
    reads exactly that result and sums it."""
    producer = e2e.load_example("example_bacalhau_asset_producer")
    made = e2e.run_dag(producer, conf={"count": 37})
    out = capfd.readouterr().out
    assert made.state == "success", e2e.tail(out)
    (published,) = e2e.xcom(made, "make_numbers")
    bucket, key = published["Params"]["Bucket"], published["Params"]["Key"]
    assert key == f"asset-producer/{published['JobID']}/"

    (event,) = e2e.asset_events("example_bacalhau_asset_producer", made.run_id)
    assert event.asset.uri == f"s3://{bucket}/{key.rstrip('/')}"  # Airflow drops the trailing "/"
    assert [alias.name for alias in event.source_aliases] == ["bacalhau_example_report"]
    assert event.extra["bacalhau_job_id"] == published["JobID"]
    assert event.extra["bacalhau_result"] == published

    consumer = e2e.load_example("example_bacalhau_asset_consumer")
    run = e2e.run_dag_on_asset_events(consumer, [event], conf=example_env)
    out = capfd.readouterr().out
    assert run.state == "success", e2e.tail(out)
    assert e2e.xcom(run, "report") == {"count": 37, "sum": 37 * 38 // 2, "sources": [published]}
    (summed,) = e2e.xcom(run, "sum_numbers")
    sources = [i["Source"] for i in e2e.devstack_job(devstack, summed["JobID"])["Tasks"][0]["InputSources"]]
    assert [(s["Params"]["Bucket"], s["Params"]["Key"]) for s in sources] == [(bucket, key)]
    e2e.assert_deferral(out, deferrable)


@only_on_3_3
def test_asset_consumer_refuses_a_run_without_event_or_result_uri(example_env, capfd):
    run = e2e.run_dag(e2e.load_example("example_bacalhau_asset_consumer"), conf=example_env)
    out = capfd.readouterr().out
    assert run.state == "failed"
    assert e2e.task_states(run)["published_results"] == "failed"
    assert "no asset event of 'bacalhau_example_report' started this run" in out, e2e.tail(out)

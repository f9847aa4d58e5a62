"""The held-jobs devstack of ``benchmarks/triggers.py``: an API-only devstack (no Docker) whose
``noop`` executions stay Running until ``POST /benchmark/release {"at", "spread"}``; the k-th
execution to start then ends at ``at + spread * k / concurrency``. Run by the benchmark, in a
process of its own::

    python benchmarks/triggers_devstack.py --port PORT --data-dir DIR --concurrency N [--faults JSON]

``benchmarks/deployment_load.py`` runs it too, with ``--faults`` (devstack/faults.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

RELEASE_PATH = "/benchmark/release"


def serve_devstack(args: argparse.Namespace) -> int:
    """The devstack API server, in this process, with noop executions held Running."""
    import uvicorn

    from airflow_provider_bacalhau.devstack import compute, server

    released = threading.Event()
    schedule: dict[str, float] = {}
    started = itertools.count()

    def held_noop(self: Any, request: Any) -> tuple[int, str | None]:
        index = next(started)
        request.on_event(compute.EVENT_RUN, "Running execution")
        request.on_running()
        released.wait()  # no timeout: 10,000 threads waking up to look would starve the server of the GIL
        end = schedule["at"] + schedule["spread"] * (index % args.concurrency) / args.concurrency
        if request.cancel.wait(max(0.0, end - time.time())):
            return -1, compute.CANCELLED
        return 0, None

    compute.ComputeNode._run_noop = held_noop  # type: ignore[method-assign]
    # The store in memory: writing store.json of 10,000 jobs after every burst of changes would
    # measure the disk, and the submissions, not the watching.
    memory_store = server.Store
    server.Store = lambda _data_dir: memory_store(None)  # type: ignore[assignment,misc]
    settings = server.ServerSettings(
        data_dir=Path(args.data_dir),
        public_url=f"http://127.0.0.1:{args.port}",
        s3_endpoint="http://127.0.0.1:9",
        concurrency=args.concurrency,
        faults=json.loads(args.faults) if args.faults else None,
    )  # noop jobs never touch S3
    app = server.create_app(settings)

    async def release(body: dict) -> dict:
        schedule.update(at=float(body["at"]), spread=float(body["spread"]))
        released.set()
        return {}

    fastapi_app = app
    while not hasattr(fastapi_app, "add_api_route"):  # the FastAPI app inside the devstack's ASGI wrappers
        fastapi_app = fastapi_app.app
    fastapi_app.add_api_route(RELEASE_PATH, release, methods=["POST"])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_keep_alive=server.KEEP_ALIVE_SECONDS,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--faults", default="", help="fault configuration JSON (devstack/faults.py)")
    return serve_devstack(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())

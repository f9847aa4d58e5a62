"""Command line of the devstack: a single-node development and test stand-in for Bacalhau v1.9.3
(not a Bacalhau replacement).

    python -m airflow_provider_bacalhau.devstack up       # engine + SeaweedFS S3 + API server, prints exports
    python -m airflow_provider_bacalhau.devstack env      # print the exports again
    python -m airflow_provider_bacalhau.devstack down     # stop everything `up` started
                                                          # (--keep-data keeps S3 objects)
    python -m airflow_provider_bacalhau.devstack restart  # restart the API server, keeping its jobs
    python -m airflow_provider_bacalhau.devstack engine   # only make sure a Docker Engine
                                                          # + busybox image exist
    python -m airflow_provider_bacalhau.devstack serve    # run the API server in the foreground
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from airflow_provider_bacalhau.devstack import procs

NOTE = "A single-node development and test stand-in for Bacalhau v1.9.3; NOT a Bacalhau replacement."


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="run the API server in the foreground (restarts itself on /devstack/v1/restart)"
    )
    p.add_argument("--host", default=procs.LOCALHOST)
    p.add_argument("--port", type=int, default=1234)
    p.add_argument("--data-dir", type=Path, required=True, help="job store, node ID, execution files")
    p.add_argument("--s3-endpoint", required=True, help="S3 server used when a job gives no Endpoint")
    p.add_argument("--region", default=procs.DEFAULT_REGION)
    p.add_argument(
        "--docker-host", default="", help="Docker Engine URL; empty: docker jobs are not supported"
    )
    p.add_argument("--concurrency", type=int, default=2, help="executions run at once")
    p.add_argument(
        "--queue-backoff", type=float, default=1.0, help="seconds between evaluations of a Queued job"
    )
    p.add_argument(
        "--allow-local-path", action="append", default=[], help="glob:ro|rw allowed for local inputs"
    )
    p.add_argument("--public-url", default="", help="URL clients use to reach this server")
    p.add_argument(
        "--faults",
        default=os.environ.get("BACALHAU_DEVSTACK_FAULTS", ""),
        help="fault config JSON (see faults.py)",
    )
    p.add_argument(
        "--auth", default=os.environ.get("BACALHAU_DEVSTACK_AUTH", ""), help="auth config JSON (see auth.py)"
    )
    p.add_argument(
        "--managed-url-expiration",
        type=int,
        default=3600,
        help="seconds a presigned s3managed URL stays valid (Bacalhau's PreSignedURLExpiration)",
    )
    p.add_argument(
        "--node-s3-endpoint",
        default="",
        help="S3 as the compute node reaches it, and the only address it reaches (its default for jobs "
        "without an Endpoint); empty: --s3-endpoint, with no such limit",
    )
    p.add_argument(
        "--node-s3-forward",
        action="store_true",
        help="serve --node-s3-endpoint's host:port by forwarding TCP to --s3-endpoint (a second address "
        "for the same S3 server on one machine)",
    )
    p.add_argument(
        "--node-aws-credentials",
        choices=("devstack", "env", "none"),
        default="devstack",
        help="the compute node's own S3 credentials: the devstack's, AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY of this process, or none (the node then reports s3 as not installed)",
    )
    p.add_argument("--worker-fd", type=int, default=-1, help=argparse.SUPPRESS)


def _serve(args: argparse.Namespace) -> int:
    if args.worker_fd >= 0:
        return _worker(args)
    if args.node_s3_forward:
        if not args.node_s3_endpoint:
            raise SystemExit("--node-s3-forward needs --node-s3-endpoint")
        from airflow_provider_bacalhau.devstack.s3forward import TcpForwarder

        # In the supervisor, so the node's address stays up while workers restart.
        TcpForwarder(args.node_s3_endpoint, args.s3_endpoint).start()
    # Supervisor: owns the listening socket, so a restarted worker takes over without refused connections.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(256)
    sock.set_inheritable(True)
    argv = [
        sys.executable,
        "-m",
        "airflow_provider_bacalhau.devstack",
        *sys.argv[1:],
        "--worker-fd",
        str(sock.fileno()),
    ]
    child: subprocess.Popen | None = None
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        # The worker must not outlive its supervisor, even one killed with SIGKILL.
        child = subprocess.Popen(argv, pass_fds=(sock.fileno(),), preexec_fn=procs.set_parent_death_signal)
        try:
            code = child.wait(timeout=None)
        except KeyboardInterrupt:
            code = child.wait()
        if stopping or code != procs.RESTART_EXIT_CODE:
            return 0 if stopping else code
        logging.getLogger(__name__).info("devstack server restarting (state kept)")


def _worker(args: argparse.Namespace) -> int:
    import json

    import uvicorn

    from airflow_provider_bacalhau.devstack.server import KEEP_ALIVE_SECONDS, ServerSettings, create_app

    settings = ServerSettings(
        data_dir=args.data_dir,
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        s3_endpoint=args.s3_endpoint,
        region=args.region,
        docker_host=args.docker_host or None,
        concurrency=args.concurrency,
        queue_backoff=args.queue_backoff,
        allow_listed_local_paths=args.allow_local_path,
        managed_url_expiration=args.managed_url_expiration,
        faults=json.loads(args.faults) if args.faults else None,
        auth=json.loads(args.auth) if args.auth else None,
        node_s3_endpoint=args.node_s3_endpoint,
        **_node_credentials(args.node_aws_credentials),
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        fd=args.worker_fd,
        log_level="warning",
        ws="websockets-sansio",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    uvicorn.Server(config).run()
    return 0


def _node_credentials(mode: str) -> dict[str, str]:
    """The compute node's credentials; {} keeps the server's own (the devstack identity)."""
    if mode == "env":  # as a real node's AWS default chain would find them
        return {
            "node_aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
            "node_aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        }
    if mode == "none":
        return {"node_aws_access_key_id": "", "node_aws_secret_access_key": ""}
    return {}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_bacalhau.devstack", description=NOTE)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", help="start Docker Engine, SeaweedFS S3 and the API server in the background; print exports"
    )
    up.add_argument("--api-port", type=int, default=None, help="default 1234 if free, else a free port")
    up.add_argument("--s3-port", type=int, default=None, help="default 9000 if free, else a free port")
    up.add_argument("--no-engine", action="store_true", help="no Docker Engine (API-only; docker jobs fail)")
    up.add_argument("--concurrency", type=int, default=2)
    up.add_argument("--faults", default=os.environ.get("BACALHAU_DEVSTACK_FAULTS"))
    up.add_argument("--auth", default=os.environ.get("BACALHAU_DEVSTACK_AUTH"))
    down = sub.add_parser("down", help="stop everything `up` started (dockerd too, if `up` started it)")
    down.add_argument(
        "--keep-data", action="store_true", help="keep the S3 server's objects for the next `up`"
    )
    sub.add_parser("env", help="print the export lines of the running devstack")
    sub.add_parser("restart", help="restart the API server; jobs are kept, running executions are lost")
    sub.add_parser("status", help="print the state file and whether the server answers")
    eng = sub.add_parser("engine", help="make sure a Docker Engine and the local busybox image exist")
    eng.add_argument(
        "run",
        nargs=argparse.REMAINDER,
        help="-- COMMAND...: run it with DOCKER_HOST set, then stop dockerd if this call started it",
    )
    _serve_parser(sub)
    for p in sub.choices.values():
        p.description = NOTE
    args = parser.parse_args(argv)

    from airflow_provider_bacalhau.devstack import stack

    home = stack.default_home()
    if args.command == "serve":
        return _serve(args)
    if args.command == "engine":
        from airflow_provider_bacalhau.devstack import engine

        already = engine.own_engine_running(home)
        host = engine.ensure_engine(home)
        image = engine.ensure_busybox_image(host)
        command = args.run[1:] if args.run[:1] == ["--"] else args.run
        if not command:
            print(f"export DOCKER_HOST={host}  # image {image}")
            return 0
        try:  # `make test`: the engine lives as long as the command, unless it was already up
            return subprocess.call(command, env={**os.environ, "DOCKER_HOST": host})
        finally:
            if not already:
                engine.stop_engine(home)
    if args.command == "up":
        state = stack.up(
            home,
            api_port=args.api_port,
            s3_port=args.s3_port,
            with_engine=not args.no_engine,
            concurrency=args.concurrency,
            faults=args.faults,
            auth=args.auth,
        )
        print(f"# {NOTE}\n# API {state.api_url}  S3 {state.s3_endpoint}  home {state.home}")
        print(stack.env_lines(state))
        return 0
    state = stack.load_state(home)
    if args.command == "down":
        stopped = stack.down(home, keep_data=args.keep_data)
        print("devstack stopped" if stopped else "devstack was not running")
        return 0
    if state is None or not stack.is_running(state):
        print(
            f"devstack is not running (home {home}); start it with: "
            "python -m airflow_provider_bacalhau.devstack up",
            file=sys.stderr,
        )
        return 1
    if args.command == "env":
        print(stack.env_lines(state))
    elif args.command == "status":
        print(
            f"running: API {state.api_url}, S3 {state.s3_endpoint}, server pid {state.server_pid}, "
            f"docker {state.docker_host or 'none'}"
        )
    elif args.command == "restart":
        stack.restart(state)
        print("devstack server restarted")
    return 0


if __name__ == "__main__":
    sys.exit(main())

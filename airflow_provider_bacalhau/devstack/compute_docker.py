"""Runs one container on the real Docker Engine for the devstack compute node (Docker SDK for Python).

Full stdout/stderr go to the results directory while they are streamed to ``on_log``; the caller
turns them into ``RunOutput``. Timeouts and cancellation kill the container; it is always removed.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_bacalhau.devstack.compute_common import ComputeError, go_duration
from airflow_provider_bacalhau.devstack.inputs import Mount

log = logging.getLogger(__name__)

CANCELLED = "execution cancelled"
OOM = "memory limit exceeded"

_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "ki": 2**10,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mi": 2**20,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gi": 2**30,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "ti": 2**40,
    "tib": 2**40,
    "p": 10**15,
    "pb": 10**15,
    "pi": 2**50,
    "pib": 2**50,
}


def parse_memory(value: str) -> int:
    """Bytes from a go-humanize size ("512mb" = 512e6, "1gib" = 2**30, "1000" = bytes)."""
    cleaned = value.strip().lower().replace(" ", "").replace(",", "")
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)([a-z]*)", cleaned)
    if not match or match.group(2) not in _MEMORY_UNITS:
        raise ComputeError(f"invalid resources: invalid memory value: {value}")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2)])


def parse_cpu(value: str) -> float:
    """Cores from a Kubernetes quantity ("500m" = 0.5, "2" = 2)."""
    cleaned = value.strip().lower().replace(" ", "")
    try:
        if cleaned.endswith("m"):
            return float(cleaned[:-1]) / 1000
        return float(cleaned)
    except ValueError:
        raise ComputeError(f"invalid resources: invalid CPU value: {value}") from None


@dataclass
class ContainerSpec:
    image: str
    entrypoint: list[str] | None
    command: list[str] | None
    environment: list[str]
    working_dir: str
    mounts: list[Mount]
    network_mode: str = "none"
    nano_cpus: int | None = None
    mem_limit: int | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerResult:
    exit_code: int
    error: str | None


class DockerRunner:
    """Thin wrapper over the Docker SDK, shared by concurrent executions.

    :param docker_host: ``DOCKER_HOST`` URL of the engine (see :mod:`.engine`).
    :param aliases: public image name pattern (fnmatch) -> local image.
    """

    def __init__(self, docker_host: str, aliases: dict[str, str]) -> None:
        self.docker_host = docker_host
        self.aliases = dict(aliases)
        self._client: Any = None
        self._stream_api: Any = None
        self._lock = threading.Lock()
        self._has_bridge: bool | None = None

    def _clients(self) -> tuple[Any, Any]:
        with self._lock:
            if self._client is None:
                import docker  # lazy: heavy, and only a running compute node needs it

                self._client = docker.DockerClient(
                    base_url=self.docker_host, version="auto", timeout=120, max_pool_size=32
                )
                # Log streams and waits may sit idle for long: no read timeout on this one.
                self._stream_api = docker.APIClient(
                    base_url=self.docker_host, version="auto", timeout=None, max_pool_size=64
                )
            return self._client, self._stream_api

    def resolve_image(self, image: str) -> tuple[str, bool]:
        """(local image, whether an alias was used); an image neither present nor aliased fails."""
        import docker

        client, _ = self._clients()
        try:
            client.images.get(image)
            return image, False
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            if "invalid reference format" in str(exc):
                raise ComputeError(f'invalid image format: "{image}"') from exc
            raise
        for pattern, local in self.aliases.items():
            if fnmatch.fnmatchcase(image, pattern):
                return local, True
        raise ComputeError(
            f'failed to pull image "{image}": no container registry is reachable from the devstack '
            "(build or load the image into its Docker Engine, or use an aliased name such as busybox)"
        )

    def network_mode(self, network_type: str) -> str:
        """Map Bacalhau's network type; an engine started with --bridge=none only has host and none."""
        kind = network_type.strip().lower()
        if kind in ("", "default", "none"):
            return "none"
        if kind == "host":
            return "host"
        if self._has_bridge is None:
            client, _ = self._clients()
            self._has_bridge = bool(client.networks.list(names=["bridge"]))
        return "bridge" if self._has_bridge else "host"

    def run(
        self,
        spec: ContainerSpec,
        results_dir: Path,
        *,
        on_log: Callable[[int, str], None],
        on_running: Callable[[], None],
        cancel: threading.Event,
        timeout: float,
    ) -> ContainerResult:
        import docker
        from docker.types import Mount as DockerMount

        client, stream_api = self._clients()
        mounts = [
            DockerMount(target=m.target, source=str(m.source), type="bind", read_only=m.read_only)
            for m in spec.mounts
        ]
        try:
            container = client.containers.create(
                spec.image,
                entrypoint=spec.entrypoint,
                command=spec.command,
                environment=spec.environment,
                working_dir=spec.working_dir or None,
                mounts=mounts,
                network_mode=spec.network_mode,
                nano_cpus=spec.nano_cpus,
                mem_limit=spec.mem_limit,
                labels=spec.labels,
                tty=False,
                detach=True,
            )
        except docker.errors.APIError as exc:
            raise ComputeError(f"failed to create container: {exc.explanation or exc}") from exc
        try:
            try:
                container.start()
            except docker.errors.APIError as exc:
                raise ComputeError(f"failed to start container: {exc.explanation or exc}") from exc
            on_running()
            streams = [
                threading.Thread(
                    target=_copy_stream,
                    args=(stream_api, container.id, number, results_dir / name, on_log),
                    daemon=True,
                )
                for number, name in ((1, "stdout"), (2, "stderr"))
            ]
            for thread in streams:
                thread.start()
            status = self._wait(stream_api, container, cancel, timeout)
            for thread in streams:
                thread.join(timeout=15)
            for number, name in ((1, "stdout"), (2, "stderr")):
                _complete_stream(stream_api, container.id, number, results_dir / name)
            if status == "cancelled":
                return ContainerResult(-1, CANCELLED)
            if status == "timeout":
                return ContainerResult(-1, f"Execution timed out after {go_duration(timeout)}")
            container.reload()
            state = container.attrs.get("State", {})
            exit_code = int(state.get("ExitCode", status if isinstance(status, int) else -1))
            if state.get("OOMKilled"):
                return ContainerResult(exit_code, OOM)
            return ContainerResult(exit_code, None)
        finally:
            try:
                container.remove(force=True)
            except docker.errors.APIError as exc:  # best effort: never mask the real outcome
                log.warning("could not remove container %s: %s", container.id[:12], exc)

    @staticmethod
    def _wait(stream_api: Any, container: Any, cancel: threading.Event, timeout: float) -> Any:
        """Exit status code, or "timeout"/"cancelled" after killing the container."""
        outcome: dict[str, Any] = {}

        def wait() -> None:
            try:
                outcome["status"] = stream_api.wait(container.id).get("StatusCode", -1)
            except Exception as exc:  # reported below
                outcome["error"] = exc

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        deadline = time.monotonic() + timeout if timeout > 0 else None
        while waiter.is_alive():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                _kill(container)
                waiter.join(timeout=15)
                return "timeout"
            if cancel.wait(0.1 if remaining is None else min(0.1, remaining)):
                _kill(container)
                waiter.join(timeout=15)
                return "cancelled"
            waiter.join(timeout=0.05)
        if "error" in outcome:
            raise ComputeError(f"failed to wait on container: {outcome['error']}")
        return outcome.get("status", -1)


def _kill(container: Any) -> None:
    try:
        container.kill()
    except Exception as exc:  # already gone is fine
        log.debug("kill %s: %s", container.id[:12], exc)


def _complete_stream(stream_api: Any, container_id: str, number: int, path: Path) -> None:
    """Rewrite ``path`` from the engine's stored log when the followed stream got less of it.

    A follow that attaches while a short-lived container is exiting can end with nothing (seen
    once in CI: an empty stdout from a container that wrote 5,000 bytes)."""
    try:
        stored = stream_api.logs(container_id, stdout=number == 1, stderr=number == 2, stream=False)
    except Exception as exc:  # the followed copy stays what we have
        log.warning("could not re-read log stream %s of %s: %s", number, container_id[:12], exc)
        return
    if len(stored) > (path.stat().st_size if path.exists() else 0):
        path.write_bytes(stored)


def _copy_stream(stream_api: Any, container_id: str, number: int, path: Path, on_log: Callable) -> None:
    """Follow one stream into ``path`` and ``on_log`` until the container stops."""
    with open(path, "ab") as handle:
        try:
            for chunk in stream_api.logs(
                container_id, stdout=number == 1, stderr=number == 2, stream=True, follow=True
            ):
                handle.write(chunk)
                try:
                    on_log(number, chunk.decode("utf-8", errors="replace"))
                except Exception:  # a broken log consumer must not lose the output file
                    log.exception("on_log failed")
        except Exception as exc:
            log.warning("log stream %s of %s ended: %s", number, container_id[:12], exc)

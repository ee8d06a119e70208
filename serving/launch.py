"""Starting the real ``bentoml serve`` process: for ``leadscore serve``, tests and benchmarks.

The champion is imported into the BentoML store *before* the server starts, so a
registry without a champion is reported by the launcher in one clear sentence (exit
status 2 in the CLI) rather than by a worker that crashes and restarts in a loop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from leadscore.settings import Settings
from serving import WORKER_ENV
from serving.model_store import QUIET_ENV

SERVICE = "serving.service:LeadScoring"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


CONFIG_OPTIONS_ENV = "BENTOML_CONFIG_OPTIONS"
WORKERS_OPTION = "services.leadscore.workers"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server process: ours, minus any other leadscore or MLflow
    settings, plus exactly ``settings``, with usage telemetry off and the worker's
    training-only imports skipped (``serving.WORKER_ENV``)."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LEADSCORE_")
        and k != "MLFLOW_TRACKING_URI"
        and not (settings.bentoml_home and k == "BENTOML_HOME")
    }
    env = {**inherited, **QUIET_ENV, WORKER_ENV: "1", **settings.to_env(), **(extra or {})}
    # BentoML reads the worker count from its own configuration, not from the service.
    options = [o for o in env.get(CONFIG_OPTIONS_ENV, "").split() if o]
    env[CONFIG_OPTIONS_ENV] = " ".join([*options, f"{WORKERS_OPTION}={settings.workers}"])
    return env


def serve_command(host: str, port: int, target: str = SERVICE) -> list[str]:
    """``bentoml serve`` of this project's service (or of a built Bento's tag)."""
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        target,
        "--host",
        host,
        "--port",
        str(port),
    ]
    if target == SERVICE:
        command += ["--working-dir", str(PROJECT_ROOT)]
    return command


def prepare(settings: Settings) -> str | None:
    """Import the registry's champion into the server's BentoML store, or explain why not.

    Returns:
        The imported model's tag (None when the settings name no registry).

    Raises:
        serving.model_store.ModelNotAvailableError: no champion to serve.
    """
    from serving.model_store import import_champion, quiet_telemetry

    quiet_telemetry()
    if settings.model_dir is None and settings.tracking_uri:
        return str(
            import_champion(
                settings.tracking_uri,
                settings.model_name,
                settings.model_alias,
                settings.bentoml_home,
            ).tag
        )
    return None


@dataclass
class RunningServer:
    """A ``bentoml serve`` child process and the URL it answers on."""

    url: str
    process: subprocess.Popen
    log_path: Path | None = None
    _log: IO | None = field(default=None, repr=False)

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server and its workers (SIGINT, then SIGKILL of its process group)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_ready(url: str, process: subprocess.Popen | None, timeout: float) -> bool:
    """Poll ``/readyz`` until it answers 200; False on timeout or when the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def start_server(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_path: Path | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 120.0,
    target: str = SERVICE,
) -> RunningServer:
    """Start ``bentoml serve`` in the background and wait until it is ready.

    Args:
        settings: Service settings, passed to the server as environment variables.
        host: Interface to bind (loopback by default).
        port: Port; a free one when None.
        log_path: File for the server's stdout and stderr (discarded when None).
        extra_env: More environment variables for the server.
        timeout: Seconds to wait for ``/readyz``.
        target: What to serve: this project's service, or a built Bento's tag.

    Raises:
        RuntimeError: when the server exits or is not ready in time (with its log tail).
    """
    prepare(settings)
    port = port or free_port(host)
    log = open(log_path, "w") if log_path else None  # noqa: SIM115 - closed by stop()
    process = subprocess.Popen(
        serve_command(host, port, target),
        env=server_env(settings, extra_env),
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = RunningServer(f"http://{host}:{port}", process, log_path, log)
    if not wait_ready(server.url, process, timeout):
        server.stop()
        raise RuntimeError(
            f"bentoml serve did not become ready on {server.url} "
            f"(exit status {process.poll()}):\n{server.log_tail()}"
        )
    return server


def serve_forever(settings: Settings, host: str = "127.0.0.1", port: int = 3000) -> int:
    """``leadscore serve``: import the champion, then run ``bentoml serve`` in the foreground.

    The page is at ``http://host:port/``. Ctrl-C or SIGTERM stops the server: the signal
    is passed on to ``bentoml serve``, which shuts its workers down.

    Returns:
        The server's exit status (0 after Ctrl-C).

    Raises:
        serving.model_store.ModelNotAvailableError: no champion to serve.
    """
    prepare(settings)
    process = subprocess.Popen(serve_command(host, port), env=server_env(settings))

    def forward(signum: int, _frame: object) -> None:
        if process.poll() is None:
            process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        return process.wait()
    except KeyboardInterrupt:
        forward(signal.SIGINT, None)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Run the real daemon as a subprocess, the way a DaemonSet would, and talk to it through its sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from provider.localdriver import call_version

ROOT = Path(__file__).resolve().parents[2]


class Daemon:
    """A running `serve` process. Use as a context manager; stop() sends SIGTERM like the kubelet."""

    def __init__(
        self,
        provider_dir: Path,
        backends: Sequence[str],
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_level: str = "debug",
    ) -> None:
        self.provider_dir = Path(provider_dir)
        self.backends = list(backends)
        self.log_path = self.provider_dir.parent / f"{self.provider_dir.name}-daemon.log"
        self.stdout_path = self.provider_dir.parent / f"{self.provider_dir.name}-daemon.out"
        command = [
            sys.executable, "-m", "tests.support.serve", "serve",
            "--provider-dir", str(self.provider_dir),
            "--backends", ",".join(self.backends),
            "--log-level", log_level,
            *extra_args,
        ]
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
        self.provider_dir.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=self._out, stderr=self._log)
        self.returncode: int | None = None

    def socket_path(self, name: str) -> str:
        return str(self.provider_dir / f"{name}.sock")

    def wait_ready(self, timeout: float = 15.0) -> float:
        """Wait until every socket answers Version; returns the seconds from start to ready."""
        end = time.monotonic() + timeout
        pending = list(self.backends)
        while pending:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.logs()}")
            if time.monotonic() > end:
                raise TimeoutError(f"daemon not ready after {timeout}s:\n{self.logs()}")
            name = pending[0]
            if os.path.exists(self.socket_path(name)):
                try:
                    call_version(self.socket_path(name), timeout=1.0)
                    pending.pop(0)
                    continue
                except Exception:
                    pass
            time.sleep(0.02)
        return time.monotonic() - self.started

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stdout(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.stdout_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.returncode is None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.returncode = self.process.wait()
            self._log.close()
            self._out.close()
        return self.returncode

    def __enter__(self) -> Daemon:
        self.wait_ready()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_daemon(
    provider_dir: Path,
    backends: Sequence[str],
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_level: str = "debug",
) -> Daemon:
    """Start the daemon; use as `with start_daemon(...) as daemon:` (waits until every socket answers)."""
    return Daemon(provider_dir, backends, extra_args, env, log_level)

"""The real daemon, sandboxed so that the real Azure host names lead to the fake (see sandbox.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.azure_fake import sandbox
from tests.support.azure_fake.server import IMDS_HOST, AzureFake
from tests.support.daemon import ROOT, Daemon


class SandboxedDaemon(Daemon):
    """tests.support.daemon.Daemon, started under `unshare --mount --net` with the fake as its only network."""

    def __init__(self, fake: AzureFake, provider_dir: Path, extra_args: Sequence[str] = (),
                 env: dict[str, str] | None = None, log_level: str = "debug") -> None:
        self.fake = fake
        self.provider_dir = Path(provider_dir)
        self.backends = ["azure"]
        self.provider_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = self.provider_dir.parent / f"{self.provider_dir.name}-daemon.log"
        self.stdout_path = self.provider_dir.parent / f"{self.provider_dir.name}-daemon.out"
        self.hosts_file = self.provider_dir.parent / f"{self.provider_dir.name}-hosts"
        self._hosts_lock = threading.Lock()
        self._hosts_text = ""
        self.refresh_hosts()
        fake_socket = fake.unix_socket()
        serve = [sys.executable, "-m", "tests.support.serve", "serve", "--provider-dir", str(self.provider_dir),
                 "--backends", "azure", "--log-level", log_level, *extra_args]
        full_env = dict(os.environ)
        full_env.update({
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "REQUESTS_CA_BUNDLE": str(fake.ca.ca_file),
            "SSL_CERT_FILE": str(fake.ca.ca_file),
            "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"https://{IMDS_HOST}",
        })
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115
        self.started = time.monotonic()
        command = sandbox.command(str(self.hosts_file), {443: fake_socket}, serve)
        self.process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=self._out, stderr=self._log)
        self.returncode: int | None = None

    def refresh_hosts(self) -> None:
        """Rewrite the sandbox's /etc/hosts in place (same inode: it is bind-mounted) when the fake has new
        vaults. Only when it changed: a rewrite races with the daemon's lookups."""
        text = sandbox.hosts_text(self.fake.hostnames())
        with self._hosts_lock:
            if text != self._hosts_text:
                self.hosts_file.write_text(text)
                self._hosts_text = text

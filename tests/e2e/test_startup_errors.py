"""A daemon that cannot start says why in one line: the real `serve` process, one case a row.

Each row prepares what the operator got wrong, runs `python -m provider serve` and expects the exit
status and one stderr line (every other stderr line is a JSON log record) naming the path or flag, the
cause and the fix, never a traceback, and nothing left listening. The image runs as uid 65532 by
default; rows marked `as_image_user` run the daemon as that user (with setpriv when the tests run as
root, whom permission bits do not stop), against files and directories owned by root.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROG = "secrets-store-csi-provider serve: error: "
IMAGE_UID = 65532  # the Dockerfile's USER
SETPRIV = shutil.which("setpriv")


@dataclass
class Setup:
    """The directory a case works in, owned by root (or the test's user) and readable by everyone."""

    base: Path
    listeners: list[socket.socket]

    def key(self, contents: bytes, mode: int = 0o400) -> Path:
        path = self.base / "version-key"
        path.write_bytes(contents)
        path.chmod(mode)
        return path

    def taken_port(self) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        self.listeners.append(listener)
        return f"127.0.0.1:{listener.getsockname()[1]}"

    def directory(self, name: str, mode: int) -> Path:
        path = self.base / name
        path.mkdir(parents=True)
        path.chmod(mode)
        return path


@dataclass(frozen=True)
class Case:
    args: Callable[[Setup], list[str]]
    status: int
    says: tuple[str, ...]  # fragments of the one error line, in any order
    as_image_user: bool = False


def providers(setup: Setup) -> list[str]:
    return ["--provider-dir", str(setup.base / "providers")]


GOOD_KEY = b"c2VjcmV0LXZlcnNpb24ta2V5LWZvci10ZXN0cy0xMjM0NQ=="

CASES: dict[str, Case] = {
    # The socket directory.
    "provider dir owned by root, run as the image user": Case(
        lambda s: ["--provider-dir", str(s.directory("providers", 0o755))], 1,
        ("--provider-dir", "/providers: not writable by uid 65532", "owner uid", "mode 0755",
         "run the provider as a user that may create sockets there"), as_image_user=True),
    "provider dir missing, parent owned by root": Case(
        lambda s: ["--provider-dir", str(s.directory("var-run", 0o755) / "providers")], 1,
        ("--provider-dir", "/var-run/providers: cannot create it: Permission denied",
         "mount the driver's provider directory there"), as_image_user=True),
    "provider dir under a file": Case(
        lambda s: ["--provider-dir", str(s.key(GOOD_KEY) / "providers")], 1,
        ("/version-key/providers: cannot create it: Not a directory",)),
    "provider dir is a file": Case(
        lambda s: ["--provider-dir", str(s.key(GOOD_KEY))], 1,
        ("--provider-dir", "/version-key: not a directory", "the directory the driver searches")),
    "provider dir empty": Case(lambda s: ["--provider-dir", ""], 1, ("--provider-dir is empty",)),
    "socket path over 107 bytes": Case(
        lambda s: ["--provider-dir", str(s.base / ("p" * 110))], 1,
        ("/vault.sock is", "bytes, over the 107 a unix socket path may have", "use a shorter --provider-dir")),
    "a directory where the socket goes": Case(
        lambda s: ["--provider-dir", str(s.directory("providers/vault.sock", 0o755).parent)], 1,
        ("cannot listen on", "/vault.sock: it is a directory; remove it")),
    # The version key.
    "version key missing": Case(
        lambda s: [*providers(s), "--version-key-file", str(s.base / "absent")], 1,
        ("--version-key-file", "/absent: no such file", "mount the version-key Secret there")),
    "version key owned by root, run as the image user": Case(
        lambda s: ["--provider-dir", str(s.directory("providers", 0o777)),
                   "--version-key-file", str(s.key(GOOD_KEY, 0o400))], 1,
        ("--version-key-file", "/version-key: not readable by uid 65532", "defaultMode"), as_image_user=True),
    "version key too short": Case(
        lambda s: [*providers(s), "--version-key-file", str(s.key(b"short\n"))], 1,
        ("--version-key-file: the version key from", "is shorter than 16 bytes",
         "head -c 32 /dev/urandom | base64")),
    "version key is a directory": Case(
        lambda s: [*providers(s), "--version-key-file", str(s.directory("key-dir", 0o755))], 1,
        ("--version-key-file", "/key-dir: is a directory", "name the key file in it")),
    # The HTTP endpoints.
    "health address in use": Case(
        lambda s: [*providers(s), "--health-addr", s.taken_port()], 1,
        ("--health-addr 127.0.0.1:", "address already in use", "choose another port")),
    "metrics address in use": Case(
        lambda s: [*providers(s), "--metrics-addr", s.taken_port()], 1,
        ("--metrics-addr 127.0.0.1:", "address already in use", "choose another port")),
    # The audit log.
    "audit log in a missing directory": Case(
        lambda s: [*providers(s), "--audit-log", str(s.base / "absent" / "audit.log")], 1,
        ("--audit-log", "/absent/audit.log: cannot open it for appending: No such file or directory",
         "or - for stdout")),
    "audit log directory owned by root, run as the image user": Case(
        lambda s: ["--provider-dir", str(s.directory("providers", 0o777)),
                   "--audit-log", str(s.directory("audit", 0o755) / "audit.log")], 1,
        ("--audit-log", "its directory", "is not writable by uid 65532", "rotation"), as_image_user=True),
    "audit log file owned by root, run as the image user": Case(
        lambda s: ["--provider-dir", str(s.directory("providers", 0o777)),
                   "--audit-log", str(s.key(b"", 0o600).rename(s.directory("audit", 0o777) / "audit.log"))], 1,
        ("--audit-log", "/audit/audit.log: cannot open it for appending: Permission denied"), as_image_user=True),
    # Flag values.
    "grace seconds not a number": Case(
        lambda s: [*providers(s), "--grace-seconds", "soon"], 2,
        ("argument --grace-seconds: 'soon' is not a number of seconds", "--help")),
    "grace seconds negative": Case(
        lambda s: [*providers(s), "--grace-seconds", "-1"], 2, ("argument --grace-seconds: '-1' must be",)),
    "max concurrent mounts zero": Case(
        lambda s: [*providers(s), "--max-concurrent-mounts", "0"], 2,
        ("argument --max-concurrent-mounts: '0' must be at least 1",)),
    "health address without a port": Case(
        lambda s: [*providers(s), "--health-addr", "localhost"], 2,
        ("argument --health-addr: address 'localhost' must be HOST:PORT or :PORT",)),
    "metrics port out of range": Case(
        lambda s: [*providers(s), "--metrics-addr", ":99999"], 2,
        ("argument --metrics-addr:", "with a port from 0 to 65535")),
    "unknown log level": Case(
        lambda s: [*providers(s), "--log-level", "loud"], 2, ("argument --log-level: invalid choice: 'loud'",)),
    "unknown flag": Case(
        lambda s: [*providers(s), "--vault-adress", "x"], 2, ("unrecognized arguments: --vault-adress",)),
    "unknown backend": Case(
        lambda s: [*providers(s), "--backends", "vault,gcp"], 1, ("--backends: unknown ['gcp']; choose from",)),
    # The backends' flags: a value of the wrong form or range, checked where the flag is declared.
    "vault concurrency zero": Case(
        lambda s: [*providers(s), "--vault-concurrency", "0"], 2,
        ("argument --vault-concurrency: '0' must be at least 1", "--help")),
    "vault token cache size negative": Case(
        lambda s: [*providers(s), "--vault-cache-size", "-1"], 2,
        ("argument --vault-cache-size: '-1' must be at least 0",)),
    "vault lease cache size negative": Case(
        lambda s: [*providers(s), "--vault-lease-cache-size", "-5"], 2,
        ("argument --vault-lease-cache-size: '-5' must be at least 0",)),
    "vault lease cache size not a number": Case(
        lambda s: [*providers(s), "--vault-lease-cache-size", "lots"], 2,
        ("argument --vault-lease-cache-size: 'lots' is not a whole number; it must be at least 0",)),
    "cache ttl not a duration": Case(
        lambda s: [*providers(s), "--cache-ttl", "bogus"], 2,
        ("argument --cache-ttl: 'bogus' is not a duration such as 30s, 2m or 1m30s",)),
    "cache ttl negative": Case(
        lambda s: [*providers(s), "--cache-ttl=-5s"], 2,
        ("argument --cache-ttl: '-5s' is negative; give a duration from 0",)),
    "vault token scope unknown": Case(
        lambda s: [*providers(s), "--vault-token-scope", "node"], 2,
        ("argument --vault-token-scope: invalid choice: 'node' (choose from 'pod', 'service-account')",)),
    "azure pem chain not a boolean": Case(
        lambda s: [*providers(s), "--backends", "azure", "--construct-pem-chain", "maybe"], 2,
        ("argument --construct-pem-chain: 'maybe' is not true or false; use 1, on, t, true, yes or 0, f, false, "
         "no, off",)),
    "azure cloud unknown": Case(
        lambda s: [*providers(s), "--backends", "azure", "--cloud-name", "Mars"], 2,
        ("argument --cloud-name: 'Mars' is not a cloud; use one of AzurePublicCloud,",)),
    "azure token proxy url not https": Case(
        lambda s: [*providers(s), "--backends", "azure", "--token-proxy-url", "http://proxy.local"], 2,
        ("argument --token-proxy-url: 'http://proxy.local' must be an https:// URL",)),
    "azure sni name not a DNS name": Case(
        lambda s: [*providers(s), "--backends", "azure", "--sni-name", "proxy/aks"], 2,
        ("argument --sni-name: 'proxy/aks' is not a DNS name", "or leave it unset to compute it")),
    "a backend refusing its flags": Case(
        lambda s: [*providers(s), "--vault-addr", "ftp://vault.local"], 1,
        ("vault backend:", "vaultAddress 'ftp://vault.local' is not a Vault URL", "its scheme 'ftp'")),
}


@pytest.fixture
def setup() -> Iterator[Setup]:
    # Not under pytest's tmp_path, whose parents only root may enter: the image user must reach it.
    base = Path(tempfile.mkdtemp(prefix="startup-errors-"))
    base.chmod(0o755)
    made = Setup(base, [])
    yield made
    for listener in made.listeners:
        listener.close()
    shutil.rmtree(base, ignore_errors=True)


def run_serve(args: list[str], as_image_user: bool) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "provider", "serve", "--backends", "vault", *args]
    if as_image_user and os.geteuid() == 0:
        if SETPRIV is None:
            pytest.skip("running the daemon as a non-root user needs setpriv when the tests run as root")
        command = [SETPRIV, f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups", *command]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def error_lines(stderr: str) -> list[str]:
    """The stderr lines that are not JSON log records."""
    lines = []
    for line in stderr.splitlines():
        try:
            json.loads(line)
        except ValueError:
            lines.append(line)
    return lines


@pytest.mark.parametrize("name", list(CASES))
def test_a_daemon_that_cannot_start_says_why_in_one_line(name: str, setup: Setup) -> None:
    case = CASES[name]
    if case.as_image_user and os.geteuid() != 0 and os.geteuid() == setup.base.stat().st_uid:
        pytest.skip("the files must belong to another user than the daemon's: run as root")
    result = run_serve(case.args(setup), case.as_image_user)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == case.status, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(PROG), lines[0]
    for fragment in case.says:
        assert fragment in lines[0], lines[0]
    # Nothing is left listening where the driver looks.
    providers_dir = setup.base / "providers"
    assert not providers_dir.is_dir() or not [p for p in providers_dir.iterdir() if p.is_socket()]

"""Two daemons on one provider directory: neither takes over nor removes the other's socket.

A second daemon (a second DaemonSet, a leftover container) used to unlink the first one's live socket
and bind its own; stopping the first then deleted the second's, and the node had no provider at all.
Now a socket that accepts connections stops the start with one line, and a daemon removes at exit only
the socket inode it created. Both daemons here are real `serve` processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from provider.localdriver import call_version
from tests.support.daemon import ROOT, start_daemon


def identity(path: Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_dev, info.st_ino


def serve_once(provider_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tests.support.serve", "serve", "--provider-dir", str(provider_dir),
               "--backends", "test"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_second_daemon_refuses_to_take_a_live_socket(tmp_path: Path) -> None:
    provider_dir = tmp_path / "providers"
    with start_daemon(provider_dir, ["test"]) as first:
        socket_path = Path(first.socket_path("test"))
        before = identity(socket_path)
        second = serve_once(provider_dir)
        assert second.returncode == 1, second.stderr
        assert "Traceback" not in second.stderr
        refusal = [line for line in second.stderr.splitlines() if not line.startswith("{")]
        assert refusal == [
            f"secrets-store-csi-provider serve: error: {socket_path} is the socket of a running provider "
            "(it accepts connections); stop that provider first, or give this one another --provider-dir"
        ]
        # The first daemon's socket is the same inode, and it still answers.
        assert identity(socket_path) == before
        assert call_version(str(socket_path)).version == "v1alpha1"
        assert first.stop() == 0
    assert not socket_path.exists()


def test_stopping_removes_only_the_socket_this_daemon_created(tmp_path: Path) -> None:
    provider_dir = tmp_path / "providers"
    # The second daemon reaches the same directory through a link, so the two keep separate log files.
    same_dir = tmp_path / "same-providers"
    same_dir.symlink_to(provider_dir, target_is_directory=True)
    with start_daemon(provider_dir, ["test"]) as first:
        socket_path = Path(first.socket_path("test"))
        # Another process replaces the socket (the official provider does this at start; so did we).
        os.unlink(socket_path)
        with start_daemon(same_dir, ["test"]) as second:
            replaced = identity(socket_path)
            assert first.stop() == 0
            # The first daemon's exit left the second's socket in place, and it answers.
            assert identity(socket_path) == replaced
            assert call_version(second.socket_path("test")).version == "v1alpha1"
            assert "socket replaced by another process; left in place" in first.logs()
            assert second.stop() == 0
        assert not socket_path.exists()
    assert os.listdir(provider_dir) == []

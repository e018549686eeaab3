"""Run a command (the daemon) in private mount and network namespaces that can only reach the fake.

    unshare --mount --net python -m tests.support.azure_fake.sandbox \\
        --hosts FILE --relay 443=/path/fake.sock -- python -m provider serve ...

Inside: loopback up, FILE bind-mounted over /etc/hosts (so the real Azure host names resolve to
127.0.0.1), and 127.0.0.1:443 relayed to the fake's unix socket. The product runs unmodified, with the
real cloud names, and has no other network at all. Needs root (CI and these machines run as root).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import fcntl
import os
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence

from tests.support.http import relay

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
MS_BIND = 4096


def available() -> str | None:
    """None when sandboxes can be made here, else why not."""
    if shutil.which("unshare") is None:
        return "the unshare command is not installed"
    probe = subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"unshare --mount --net is not permitted here: {probe.stderr.decode(errors='replace').strip()}"
    return None


def command(hosts_file: str, relays: dict[int, str], argv: Sequence[str]) -> list[str]:
    """The full command line that runs argv in a sandbox."""
    relay_args = [f"--relay={port}={path}" for port, path in relays.items()]
    return ["unshare", "--mount", "--net", sys.executable, "-m", "tests.support.azure_fake.sandbox",
            f"--hosts={hosts_file}", *relay_args, "--", *argv]


def hosts_text(names: Sequence[str]) -> str:
    return "127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {name}\n" for name in names)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def _bind_mount(source: str, target: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mount(source.encode(), target.encode(), None, MS_BIND, None) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"bind mount of {source} over {target}: {os.strerror(error)}")


class _Relay(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, unix_path: str) -> None:
        self.unix_path = unix_path
        super().__init__(("127.0.0.1", port), _Pump)


class _Pump(socketserver.BaseRequestHandler):
    server: _Relay

    def handle(self) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.server.unix_path)
        except OSError:
            return
        try:
            relay(self.request, upstream, idle_seconds=60)
        except OSError:
            return
        finally:
            upstream.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--relay", action="append", default=[], help="PORT=UNIX_SOCKET")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command_line = args.command[1:] if args.command[:1] == ["--"] else args.command
    _loopback_up()
    _bind_mount(args.hosts, "/etc/hosts")
    for item in args.relay:
        port, _, path = item.partition("=")
        relay = _Relay(int(port), path)
        threading.Thread(target=relay.serve_forever, daemon=True).start()
    child = subprocess.Popen(command_line)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: child.send_signal(number))
    return child.wait()


if __name__ == "__main__":
    raise SystemExit(main())

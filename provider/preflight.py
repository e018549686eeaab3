"""What the daemon checks before it listens: each failure is one StartupError line.

A daemon that cannot start must say why in one line that names the path or flag, the cause and the fix,
without a traceback: the operator reads it in `kubectl logs --previous` of a crash-looping pod. The
causes are checked here, before anything is bound, because gRPC reports a failed bind only as
"Failed to bind" and puts the reason in a log line of its own.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from provider.audit import AuditLog
from provider.files import VersionKey

# sun_path holds 108 bytes, the last of them the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
# How long a socket left at our path may take to accept a connection before it counts as stale.
LIVE_SOCKET_PROBE_SECONDS = 1.0


class StartupError(Exception):
    """Why the daemon cannot start, as one line: what (a path or a flag), the cause, the fix."""


def _uid() -> str:
    return f"uid {os.geteuid()}"


def _cause(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_provider_dir(path: str) -> None:
    """Create the socket directory when missing; refuse one this user cannot create sockets in."""
    if not path:
        raise StartupError("--provider-dir is empty; give the directory the driver searches for provider sockets")
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise StartupError(
            f"--provider-dir {path}: not a directory; point it at the directory the driver searches for "
            "provider sockets"
        ) from None
    except OSError as exc:
        raise StartupError(
            f"--provider-dir {path}: cannot create it: {_cause(exc)}; create it, or mount the driver's "
            "provider directory there"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        info = os.stat(path)
        raise StartupError(
            f"--provider-dir {path}: not writable by {_uid()} (owner uid {info.st_uid}, mode "
            f"{stat.S_IMODE(info.st_mode):04o}); run the provider as a user that may create sockets there "
            "(the shipped DaemonSet runs as root for this reason)"
        )


def check_socket_path(path: str) -> None:
    """Refuse a path too long to bind or taken by a running provider; remove what a stopped one left."""
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH_BYTES:
        raise StartupError(
            f"socket path {path} is {size} bytes, over the {MAX_SOCKET_PATH_BYTES} a unix socket path may have; "
            "use a shorter --provider-dir"
        )
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise StartupError(f"cannot listen on {path}: it is a directory; remove it")
    if stat.S_ISSOCK(mode) and socket_answers(path):
        raise StartupError(
            f"{path} is the socket of a running provider (it accepts connections); stop that provider first, "
            "or give this one another --provider-dir"
        )
    # A socket nobody listens on, or a file a crash left behind: ours to replace.
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StartupError(f"cannot remove the stale {path}: {_cause(exc)}; remove it by hand") from None


def socket_answers(path: str) -> bool:
    """True when something accepts connections on the unix socket at path."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(LIVE_SOCKET_PROBE_SECONDS)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except PermissionError:
            raise StartupError(
                f"{path} exists and {_uid()} may not connect to it to see whether a provider serves it; stop "
                "the provider that owns it, or remove the file"
            ) from None
        except TimeoutError:
            return True  # a full backlog: busy, not dead
        return True


def load_version_key(path: str) -> VersionKey:
    """The key in --version-key-file, or a StartupError saying why it cannot be used."""
    try:
        return VersionKey.from_file(path)
    except FileNotFoundError:
        raise StartupError(
            f"--version-key-file {path}: no such file; mount the version-key Secret there "
            "(docs/install.md, step 4) or correct the path"
        ) from None
    except PermissionError:
        raise StartupError(
            f"--version-key-file {path}: not readable by {_uid()}; run the provider as the file's owner, or "
            "give the Secret volume a defaultMode this user may read"
        ) from None
    except IsADirectoryError:
        raise StartupError(
            f"--version-key-file {path}: is a directory; name the key file in it (the shipped DaemonSet uses "
            "<mount path>/key)"
        ) from None
    except OSError as exc:
        raise StartupError(f"--version-key-file {path}: cannot read it: {_cause(exc)}") from None
    except ValueError as exc:
        raise StartupError(
            f"--version-key-file: {exc}; create it again with `head -c 32 /dev/urandom | base64`"
        ) from None


def open_audit_log(target: str) -> AuditLog:
    """The audit trail of --audit-log (a file, `-` for stdout, empty for none), opened now so a bad path
    stops the start instead of every mount."""
    if target and target != "-":
        directory = os.path.dirname(os.path.abspath(target))
        if os.path.isdir(directory) and not os.access(directory, os.W_OK | os.X_OK):
            raise StartupError(
                f"--audit-log {target}: its directory {directory} is not writable by {_uid()}, and rotation "
                "renames files there; choose a directory this user may write, or - for stdout"
            )
    try:
        return AuditLog(target or None)
    except OSError as exc:
        raise StartupError(
            f"--audit-log {target}: cannot open it for appending: {_cause(exc)}; choose a file in a directory "
            f"{_uid()} may write, or - for stdout"
        ) from None


def address_error(flag: str, address: str, exc: OSError) -> StartupError:
    """A failed bind of an HTTP endpoint, as the line that says what to change."""
    if isinstance(exc, socket.gaierror):
        cause = f"cannot resolve its host ({exc.strerror}); use an IP address, or :PORT for every interface"
    elif exc.errno == errno.EADDRINUSE:
        cause = ("address already in use; stop the other process listening there, or choose another port "
                 "(--health-addr and --metrics-addr need one each)")
    elif exc.errno == errno.EACCES:
        cause = "permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE, choose a port from 1024"
    elif exc.errno == errno.EADDRNOTAVAIL:
        cause = "no interface of this host has that address; use :PORT for every interface, or one of its addresses"
    else:
        cause = f"cannot listen there: {_cause(exc)}"
    return StartupError(f"{flag} {address}: {cause}")

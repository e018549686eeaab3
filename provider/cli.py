"""Command line: `serve` (the daemon), `mount` (the local driver), `lint`, `version`. One function a command."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import grpc
import yaml

from provider import __version__
from provider._proto import v1alpha1_pb2 as pb
from provider.audit import AuditLog
from provider.backends import BACKEND_MODULES, add_backend_arguments, create_backend, declarations
from provider.contract import Backend
from provider.files import VersionKey
from provider.health import EndpointServer, health_route, metrics_route, split_address
from provider.localdriver import (
    DriverRejection,
    PodIdentity,
    build_mount_request,
    call_mount,
    check_response,
    spc_parts,
    write_payload,
)
from provider.logs import configure_logging
from provider.policy import add_policy_arguments
from provider.preflight import StartupError, address_error, open_audit_log
from provider.preflight import load_version_key as read_version_key
from provider.scalars import whole_number_from
from provider.server import ProviderDaemon

log = logging.getLogger("provider")

DEFAULT_PROVIDER_DIR = "/var/run/secrets-store-csi-providers"


class CommandParser(argparse.ArgumentParser):
    """A command's parser; with one_line_errors, a bad flag is one line (a daemon's log, not a terminal)."""

    def __init__(self, *args: Any, one_line_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.one_line_errors = one_line_errors

    def error(self, message: str) -> NoReturn:
        if not self.one_line_errors:
            super().error(message)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Reported by the command's own parser, so `serve` keeps its one-line errors.
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.version:
        print(__version__)
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    result: int = args.run(args)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secrets-store-csi-provider",
        description="Secrets Store CSI Driver provider for HashiCorp Vault and Azure Key Vault.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", parser_class=CommandParser)

    serve = commands.add_parser("serve", help="run the provider daemon", one_line_errors=True)
    serve.add_argument("--provider-dir", default=DEFAULT_PROVIDER_DIR, help="where the <backend>.sock sockets go")
    serve.add_argument("--backends", default=",".join(BACKEND_MODULES), help="comma-separated backends to serve")
    serve.add_argument("--grace-seconds", type=_seconds, default=10.0, help="time in-flight mounts get at shutdown")
    serve.add_argument("--health-addr", type=_listen_address, default="",
                       help="HOST:PORT for HTTP /healthz (off when empty)")
    serve.add_argument("--metrics-addr", type=_listen_address, default="",
                       help="HOST:PORT for Prometheus /metrics (off when empty)")
    serve.add_argument("--audit-log", default="", help="audit records: a file path (size-rotated) or - for stdout")
    serve.add_argument("--max-concurrent-mounts", type=whole_number_from(1), default=32,
                       help="Mount calls served at once, per socket")
    _add_common_arguments(serve)
    serve.set_defaults(run=serve_command, parser=serve)

    mount = commands.add_parser("mount", help="mount a SecretProviderClass into a directory, like the driver")
    mount.add_argument("spc", help="SecretProviderClass manifest (YAML)")
    mount.add_argument("--target", required=True, help="directory to write the files into")
    mount.add_argument("--socket", help="provider socket; default: an in-process provider for spec.provider")
    mount.add_argument("--namespace", default="default")
    mount.add_argument("--service-account", default="default")
    mount.add_argument("--pod", default="local-pod", help="pod name (its uid is derived from namespace and name)")
    mount.add_argument("--token", action="append", default=[], metavar="AUDIENCE=FILE",
                       help="a service-account token for an audience, read from FILE (repeatable)")
    mount.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE",
                       help="nodePublishSecretRef data (repeatable)")
    mount.add_argument("--attribute", action="append", default=[], metavar="KEY=VALUE",
                       help="a pod volumeAttribute (repeatable); overrides the SPC parameter of that name")
    mount.add_argument("--permission", default="0644", help="default file mode, octal (the driver sends 0644)")
    mount.add_argument("--timeout", type=float, default=120.0, help="seconds, like kubelet's mount budget")
    mount.add_argument("--show", action="store_true", help="also print the file contents")
    _add_common_arguments(mount)
    mount.set_defaults(run=mount_command, parser=mount)

    lint = commands.add_parser("lint", help="check SecretProviderClass manifests offline")
    lint.add_argument("files", nargs="+", help="manifests (YAML, several documents allowed)")
    lint.add_argument("--format", choices=["text", "json"], default="text")
    _add_common_arguments(lint)
    lint.set_defaults(run=_lint, parser=lint)

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(run=lambda _args: print(__version__) or 0, parser=version)
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds from 0")
    return value


def _listen_address(text: str) -> str:
    if text:
        try:
            split_address(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="json", choices=["json", "text"])
    parser.add_argument("--version-key-file", default="",
                        help="HMAC key for object versions, shared by all nodes (a mounted Secret)")
    policy = parser.add_argument_group("what SecretProviderClasses may name")
    add_policy_arguments(policy)
    add_backend_arguments(parser, policy)


def load_version_key(path: str) -> VersionKey:
    if path:
        return read_version_key(path)
    log.warning(
        "no --version-key-file: object versions use a random per-process key and change when the provider "
        "restarts; mount a shared Secret and pass --version-key-file"
    )
    return VersionKey.random()


def create_backends(names: str, args: argparse.Namespace) -> dict[str, Backend[Any]]:
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in BACKEND_MODULES]
    if not chosen or unknown:
        raise StartupError(f"--backends: unknown {unknown or 'empty list'}; choose from {', '.join(BACKEND_MODULES)}")
    try:
        return {name: create_backend(name, args) for name in chosen}
    except SystemExit as exc:  # a backend refusing its flags says why in one line
        if isinstance(exc.code, str):
            raise StartupError(exc.code) from None
        raise


def serve_command(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        daemon, endpoints = start_serving(args)
    except StartupError as exc:
        print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    log.info("ready", extra={"fields": {"version": __version__, "backends": list(daemon.backends)}})
    while not stop.wait(3600):
        pass
    # Shutdown has begun: a repeated signal must not kill the process half-way (kubelet escalates with
    # SIGKILL when the grace period is over), so the exit stays clean and the sockets are removed.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    log.info("shutting down", extra={"fields": {"graceSeconds": args.grace_seconds}})
    for endpoint in endpoints:
        endpoint.stop()
    daemon.stop(args.grace_seconds)
    # Mounts still running after the grace period have had their error answer; their threads may wait on a
    # backend for a whole request timeout and would hold up the interpreter's exit past kubelet's grace
    # period (then SIGKILL). The sockets are removed and the audit closed: flush the logs and exit now.
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)


def start_serving(args: argparse.Namespace) -> tuple[ProviderDaemon, list[EndpointServer]]:
    """Everything `serve` needs, checked and bound in an order that leaves nothing behind on failure:
    flags and files first, then the HTTP ports, then the sockets the driver sees. Raises StartupError."""
    for declaration in declarations():
        for warning in declaration.serve_warnings(args) if declaration.serve_warnings else ():
            log.warning(warning)
    backends = create_backends(args.backends, args)
    version_key = load_version_key(args.version_key_file)
    audit = open_audit_log(args.audit_log)
    daemon = ProviderDaemon(args.provider_dir, backends, version_key, audit, max_workers=args.max_concurrent_mounts)
    endpoints: list[EndpointServer] = []
    try:
        for flag, address, name, routes in (
            ("--health-addr", args.health_addr, "health", {"/healthz": health_route(daemon.healthy)}),
            ("--metrics-addr", args.metrics_addr, "metrics", {"/metrics": metrics_route()}),
        ):
            if address:
                try:
                    endpoints.append(EndpointServer(address, routes, name))
                except OSError as exc:
                    raise address_error(flag, address, exc) from None
        daemon.start()
    except BaseException:
        for endpoint in endpoints:
            endpoint.stop()
        audit.close()
        raise
    for endpoint in endpoints:
        endpoint.start()
    return daemon, endpoints


def mount_command(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    try:
        with open(args.spc) as handle:
            spc = next((d for d in yaml.safe_load_all(handle) if d and d.get("kind") == "SecretProviderClass"), None)
        if spc is None:
            raise DriverRejection(f"{args.spc} holds no SecretProviderClass")
        _, provider_name, _ = spc_parts(spc)
        tokens = {}
        for item in args.token:
            audience, path = _key_value(item, "--token")
            with open(path) as handle:
                tokens[audience] = handle.read().strip()
        request = build_mount_request(
            spc,
            PodIdentity.named(args.pod, args.namespace, args.service_account),
            tokens=tokens,
            secrets=dict(_key_value(s, "--secret") for s in args.secret),
            permission=int(args.permission, 8),
            volume_attributes=dict(_key_value(a, "--attribute") for a in args.attribute),
        )
        response = _mount_through(args, provider_name, request)
        check_response(response)
    except (DriverRejection, StartupError, OSError, yaml.YAMLError, ValueError) as exc:
        print(f"mount failed: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"mount failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    written = write_payload(args.target, response)
    print_table(response, args.show)
    print(f"{'wrote' if written else 'unchanged'}: {args.target}")
    return 0


def _mount_through(args: argparse.Namespace, provider_name: str, request: pb.MountRequest) -> pb.MountResponse:
    if args.socket:
        return call_mount(args.socket, request, timeout=args.timeout)
    if provider_name not in BACKEND_MODULES:
        raise DriverRejection(f"spec.provider {provider_name!r} is not a backend of this provider")
    with tempfile.TemporaryDirectory(prefix="sscsi-") as provider_dir:
        daemon = ProviderDaemon(
            provider_dir,
            {provider_name: create_backend(provider_name, args)},
            load_version_key(args.version_key_file),
            AuditLog(None),
        )
        daemon.start()
        try:
            return call_mount(daemon.socket_path(provider_name), request, timeout=args.timeout)
        finally:
            daemon.stop(1.0)


def print_table(response: pb.MountResponse, show: bool) -> None:
    """Path, mode, size, object id and version of each file; contents only when asked."""
    versions = {v.id: v.version for v in response.object_version}
    rows = [("PATH", "MODE", "SIZE", "OBJECT", "VERSION")]
    for item in response.files:
        object_id = linked_object(item.path, versions)
        rows.append((item.path, f"{item.mode:04o}", str(len(item.contents)), object_id, versions.get(object_id, "")))
    unlinked = [(i, v) for i, v in versions.items() if not any(r[3] == i for r in rows[1:])]
    rows += [("", "", "", object_id, version) for object_id, version in unlinked]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    if show:
        for item in response.files:
            print(f"\n--- {item.path}")
            sys.stdout.write(item.contents.decode("utf-8", "backslashreplace"))
            print()


def linked_object(path: str, versions: Mapping[str, str]) -> str:
    """The object id a file belongs to, where the id shows it: the path itself (Vault), its directory
    (Vault's secretKey "*"), or template/<path>. The response itself does not link files to objects."""
    if path in versions:
        return path
    if f"template/{path}" in versions:
        return f"template/{path}"
    parents = [i for i in versions if path.startswith(f"{i}/")]
    return max(parents, key=len, default="")


def _lint(args: argparse.Namespace) -> int:
    from provider.lint import lint_command

    configure_logging("error", args.log_format)  # findings are the output; backend warnings are findings too
    return lint_command(args)


def _key_value(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"{flag} takes KEY=VALUE, got {item!r}")
    return key, value


if __name__ == "__main__":
    raise SystemExit(main())

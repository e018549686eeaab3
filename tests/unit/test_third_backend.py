"""A third backend is one module with its declaration, check and fetch, plus one registry line: the test
backend (tests/support/test_backend.py), registered here, gets flags, lint, hints, docs tables and mounts
through the socket from the core, with no core module knowing it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from provider.audit import AuditLog
from provider.backends import BACKEND_MODULES, create_backend, declarations
from provider.cli import build_parser, main
from provider.contract import lint_mount, plan_mount
from provider.doctables import parameter_table
from provider.files import VersionKey
from provider.localdriver import PodIdentity, build_mount_request, call_mount
from provider.request import parse_mount_request
from provider.server import ProviderDaemon
from tests.support import test_backend

SPC = {"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass", "metadata": {"name": "t"},
       "spec": {"provider": "test", "parameters": {"objects": "- {objectName: a, value: hello}"}}}


@pytest.fixture
def registered() -> Iterator[None]:
    BACKEND_MODULES["test"] = "tests.support.test_backend"  # the one line a new backend adds
    try:
        yield
    finally:
        del BACKEND_MODULES["test"]


def test_its_flags_come_from_its_declaration(registered: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().parse_args(["serve", "--test-delay-cap", "0.5"]).test_delay_cap == 0.5
    assert [d.name for d in declarations()] == ["vault", "azure", "test"]
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "test backend:\n  --test-delay-cap TEST_DELAY_CAP" in capsys.readouterr().out


def test_plan_and_lint_come_from_its_check(registered: None) -> None:
    backend = create_backend("test", build_parser().parse_args(["serve"]))
    request = build_mount_request({**SPC, "spec": {"provider": "test", "parameters": {"failWith": "NOT_FOUND"}}},
                                  PodIdentity.named("p"))
    ctx = parse_mount_request(request.attributes, request.secrets, request.permission, request.target_path)
    assert [f.message for f in lint_mount(backend, ctx)] == ["planted NOT_FOUND failure"]
    with pytest.raises(Exception, match="planted NOT_FOUND failure"):
        plan_mount(backend, ctx)


def test_lint_checks_its_spcs(registered: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spc.yaml"
    path.write_text(yaml.safe_dump({**SPC, "spec": {"provider": "test", "parameters": {"failWith": "INTERNAL"}}}))
    assert main(["lint", str(path)]) == 1
    assert "error: planted INTERNAL failure" in capsys.readouterr().out


def test_its_docs_table_renders_from_its_declaration() -> None:
    table = parameter_table(test_backend.declaration)
    assert "| `delaySeconds` | | 0 | Sleep this long in fetch, inside the deadline. |" in table


def test_it_mounts_through_the_socket(registered: None, tmp_path: Path) -> None:
    backend = create_backend("test", build_parser().parse_args(["serve"]))
    daemon = ProviderDaemon(str(tmp_path), {"test": backend}, VersionKey(b"k" * 32, "test"), AuditLog(None))
    daemon.start()
    try:
        response = call_mount(daemon.socket_path("test"), build_mount_request(SPC, PodIdentity.named("p")),
                              timeout=30)
    finally:
        daemon.stop(1.0)
    assert [(f.path, f.contents) for f in response.files] == [("a", b"hello")]

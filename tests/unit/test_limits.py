"""The caps on one SPC (limits.py), echoed input cut short (errors.echo, errors.bounded), and the mount stopping
between stages once its deadline has passed or the driver has gone (server.py)."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import grpc
import pytest

from provider._proto import v1alpha1_pb2 as pb
from provider.audit import AuditLog
from provider.backends.azure.objects import parse_objects as azure_objects
from provider.backends.vault.objects import parse_objects as vault_objects
from provider.errors import ErrorKind, ProviderError, bounded, echo
from provider.files import SecretFile, VersionKey
from provider.findings import Findings
from provider.limits import MAX_DOCUMENT_CHARS, MAX_OBJECTS, MAX_PARAMETER_CHARS
from provider.redaction import KNOWN_SECRETS
from provider.request import parse_mount_request
from provider.server import MountServicer
from tests.support.test_backend import ScriptedBackend

MB = 1024 * 1024


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("short", "'short'"),
        ("a" * 200, repr("a" * 200)),
        ("a" * MB, repr("a" * 200) + "… (1048576 characters, truncated)"),
        (384, "384"),
        (list(range(1000)), repr(list(range(1000)))[:200] + f"… ({len(repr(list(range(1000))))} characters, "
                                                            "truncated)"),
    ],
)
def test_echo(value: object, expected: str) -> None:
    assert echo(value) == expected


def test_bounded_keeps_the_start_and_the_end() -> None:
    message = "object 'x': " + "y" * MB + " is the cause"
    cut = bounded(message)
    assert len(cut) == 4096 and cut.startswith("object 'x': yyy") and cut.endswith("yyy is the cause")
    assert f"({len(message)} characters, truncated)" in cut
    assert bounded("short") == "short"


def attributes(**parameters: str) -> str:
    return json.dumps({"secretProviderClass": "spc", "csi.storage.k8s.io/pod.name": "p", **parameters})


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"objects": "x" * (MAX_DOCUMENT_CHARS + 1)}, f"parameter 'objects' is {MAX_DOCUMENT_CHARS + 1} characters "
                                                      f"long, over the provider's limit of {MAX_DOCUMENT_CHARS}"),
        ({"templates": "x" * (MAX_DOCUMENT_CHARS + 1)}, "parameter 'templates' is"),
        ({"roleName": "r" * (MAX_PARAMETER_CHARS + 1)}, f"parameter 'roleName' is {MAX_PARAMETER_CHARS + 1} "
                                                        f"characters long, over the provider's limit of "
                                                        f"{MAX_PARAMETER_CHARS} characters for a parameter"),
        ({"k" * MB: "v" * (MAX_PARAMETER_CHARS + 1)}, "characters, truncated) is 16385 characters long"),
    ],
)
def test_parameter_caps(parameters: dict[str, str], message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_mount_request(attributes(**parameters), "", "420", "/t")
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT and message in caught.value.message
    assert len(caught.value.message) < 500


def test_parameters_at_the_caps_are_accepted() -> None:
    ctx = parse_mount_request(attributes(objects="x" * MAX_DOCUMENT_CHARS, roleName="r" * MAX_PARAMETER_CHARS),
                              "", "420", "/t")
    assert len(ctx.parameters["objects"]) == MAX_DOCUMENT_CHARS


def vault_text(count: int) -> str:
    return "".join(f"- {{objectName: o{i}, secretPath: p}}\n" for i in range(count))


def azure_text(count: int) -> str:
    return "array:\n" + "".join(f"  - {{objectName: o{i}, objectType: secret}}\n" for i in range(count))


def test_a_thousand_objects_are_fine_and_one_more_is_refused_naming_the_cap() -> None:
    assert len(vault_objects(vault_text(MAX_OBJECTS), "ns/spc")) == MAX_OBJECTS
    assert len(azure_objects(azure_text(MAX_OBJECTS))) == MAX_OBJECTS
    with pytest.raises(ProviderError, match=r"SecretProviderClass ns/spc: 'objects' lists 1001 objects, over the "
                                            r"provider's limit of 1000 objects per SecretProviderClass"):
        vault_objects(vault_text(MAX_OBJECTS + 1), "ns/spc")
    with pytest.raises(ProviderError, match=r"objects 'array' lists 1001 objects, over the provider's limit of 1000"):
        azure_objects(azure_text(MAX_OBJECTS + 1))


@pytest.mark.parametrize(
    ("parse", "cause"),
    [
        (lambda name: vault_objects(f"- {{objectName: {name}, secretPath: p}}", "ns/spc"),
         "objectName is longer than 4096 bytes"),
        (lambda name: azure_objects(f"array:\n  - {{objectName: {name}, objectType: secret}}"),
         "is longer than 4096 bytes"),
    ],
)
def test_a_long_object_name_is_echoed_short(parse: Any, cause: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse("n" * (200 * 1024))
    assert cause in caught.value.message and "(204800 characters, truncated)" in caught.value.message
    assert len(caught.value.message) < 600


class Aborted(Exception):
    """What grpc's ServicerContext.abort raises: the RPC ends there with the status."""


class Context:
    """A gRPC context whose deadline is `remaining` seconds away, or whose client has gone."""

    def __init__(self, remaining: float = 100.0, active: bool = True) -> None:
        self.remaining, self.active = remaining, active
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def time_remaining(self) -> float:
        return self.remaining

    def is_active(self) -> bool:
        return self.active

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted(details)


class SlowPlan(ScriptedBackend):
    """Planning takes `seconds`; fetching is recorded."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.fetched = False

    def check(self, ctx: Any, findings: Findings) -> Any:
        time.sleep(self.seconds)
        return super().check(ctx, findings)

    def fetch(self, plan: Any, deadline: float) -> list[SecretFile]:
        self.fetched = True
        return super().fetch(plan, deadline)


def mount(backend: ScriptedBackend, context: Context) -> None:
    servicer = MountServicer(backend, VersionKey(b"k" * 32, "test"), AuditLog(None))
    request = json.dumps({"secretProviderClass": "spc", "objects": json.dumps([{"objectName": "a", "value": "v"}])})
    with contextlib.suppress(Aborted):
        servicer.Mount(pb.MountRequest(attributes=request, secrets="{}", permission="420", target_path="/t"),
                       context)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backend", "context", "details"),
    [
        (SlowPlan(0.6), Context(remaining=0.8), "the mount deadline passed before the objects were read"),
        (SlowPlan(0.0), Context(active=False), "the driver stopped waiting before the objects were checked"),
    ],
)
def test_work_stops_between_stages(backend: SlowPlan, context: Context, details: str) -> None:
    mount(backend, context)
    assert context.code is grpc.StatusCode.DEADLINE_EXCEEDED and details in context.details
    assert not backend.fetched


def test_a_mount_within_its_deadline_is_answered() -> None:
    backend, context = SlowPlan(0.0), Context()
    mount(backend, context)
    assert context.code is None and backend.fetched


def test_a_credential_is_redacted_before_the_value_is_cut() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9." + "p" * 400 + ".signature"
    shown = echo(jwt + "-and-more")
    assert "eyJ" not in shown and "[REDACTED]" in shown and "characters, truncated" in shown
    secret = "known-client-secret-" + "s" * 300  # a nodePublishSecretRef value of a recent request
    KNOWN_SECRETS.add([secret])
    shown = echo("x" + secret)
    assert shown.startswith("'x[REDACTED]'") and "known-client" not in shown

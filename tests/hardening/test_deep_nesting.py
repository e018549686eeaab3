"""Input nested deeper than a parser recurses (JSON in the request fields, YAML in `objects` and
`templates`) is a clean INVALID_ARGUMENT through the socket, for both backends; never INTERNAL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from provider.localdriver import PodIdentity, build_mount_request, call_mount
from tests.support.daemon import Daemon, start_daemon

DEEP = "[" * 50_000
CLIENT_ID = "00000000-0000-0000-0000-000000000000"
CASES = [
    ("vault", {"roleName": "r", "objects": DEEP}, "'objects' nests deeper"),
    ("vault", {"roleName": "r", "objects": "- objectName: a\n  secretPath: x\n  secretArgs: {a: " + DEEP + "}\n"},
     "'objects' nests deeper"),
    ("azure", {"keyvaultName": "kvname", "tenantID": "t", "clientID": CLIENT_ID, "objects": DEEP},
     "objects nests deeper"),
    ("azure", {"keyvaultName": "kvname", "tenantID": "t", "clientID": CLIENT_ID,
               "objects": "array:\n  - |\n    " + DEEP}, "object 0 in objects nests deeper"),
    ("vault", {"roleName": "r", "objects": "- {objectName: a, secretPath: x}", "templates": DEEP},
     "templates nests deeper"),
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with start_daemon(tmp_path_factory.mktemp("deep") / "providers", ["vault", "azure"]) as running:
        yield running


def mount(daemon: Daemon, provider: str, parameters: dict[str, str], edit: Callable[..., None] | None = None) -> None:
    spc = {"kind": "SecretProviderClass", "metadata": {"name": "deep"},
           "spec": {"provider": provider, "parameters": parameters}}
    tokens = {"vault": "a.b.c", "api://AzureADTokenExchange": "a.b.c"}
    request = build_mount_request(spc, PodIdentity.named("deep-pod"), tokens=tokens)
    if edit is not None:
        edit(request)
    call_mount(daemon.socket_path(provider), request, timeout=20)


@pytest.mark.parametrize(("provider", "parameters", "message"), CASES)
def test_deep_yaml_parameters(daemon: Daemon, provider: str, parameters: dict[str, str], message: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        mount(daemon, provider, parameters)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert message in (caught.value.details() or "")


@pytest.mark.parametrize("field", ["attributes", "secrets", "permission"])
def test_deep_json_request_fields(daemon: Daemon, field: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        mount(daemon, "vault", {"roleName": "r"}, lambda request: setattr(request, field, DEEP))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert f"{field} is not" in (caught.value.details() or "")
    assert "Traceback" not in daemon.logs()

"""Secret hygiene through every path: markers planted as secret values, service-account JWTs, the Vault
tokens the provider receives, Entra ID access tokens, nodePublishSecretRef client secrets, and backend
error bodies that echo what the provider sent; then successful and failing mounts with the daemon at
--log-level debug. Not one byte of any marker may reach the daemon's logs (stderr), its stdout, a gRPC
error message, /metrics or an audit record. (Mounted files are the one place values belong.)"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from provider.localdriver import build_mount_request, call_mount
from tests.hardening.conftest import Observed, new_pod, serve_flags, vault_mount
from tests.hardening.faultproxy import FaultProxy
from tests.support.azure_fake.cluster import BINDING_AUDIENCE
from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE
from tests.support.azure_fake.fixtures import Mounts, files_of, start_sandboxed
from tests.support.azure_fake.keyvault import Reply, error
from tests.support.azure_fake.world import World
from tests.support.openbao import Cluster, leaks, vault_spc

VALUE = "hygiene-value-" + secrets.token_hex(8)  # neither base64 nor hex, so decoding it fails
CLIENT_SECRET = "hygiene-client-secret-" + secrets.token_hex(8)
KV_PATH = f"hygiene-{uuid.uuid4().hex[:8]}"


def check_outputs(outputs: dict[str, str], markers: dict[str, str]) -> None:
    """No marker in any output; the failure names the marker and the output, never the marker's value."""
    found = [f"{name} in {where}" for where, text in outputs.items() for name, marker in markers.items()
             if marker and marker in text]
    assert found == [], "planted secrets leaked: " + ", ".join(found)


# ------------------------------------------------------------------------------------------------ Vault
@pytest.fixture(scope="module")
def planted(cluster: Cluster) -> str:
    """A KV v2 secret holding the value marker, and its base64 under another key."""
    cluster.bao.api("POST", f"secret/data/{KV_PATH}", {"data": {
        "value": VALUE, "encoded": base64.b64encode(VALUE.encode()).decode()}})
    return KV_PATH


def test_vault_paths_leak_nothing(vault_daemon: Observed, cluster: Cluster, proxy: FaultProxy, planted: str) -> None:
    daemon = vault_daemon.daemon
    assert "--log-level" in daemon.process.args and "debug" in daemon.process.args
    via = {"roleName": "kv-role", "vaultAddress": proxy.address}
    node_secrets = {"clientid": "some-app", "clientsecret": CLIENT_SECRET}
    value = f"- {{objectName: value, secretPath: secret/data/{planted}, secretKey: value}}"
    jwts: list[str] = []
    errors: list[str] = []

    def mount(objects: str, pod: Any = None, token: str | None = None, **parameters: str) -> Any:
        pod = pod or new_pod()
        jwt = token or cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
        jwts.append(jwt)
        outcome = vault_mount(daemon, cluster, pod, objects, token=jwt, secrets=node_secrets, **parameters)
        if outcome.code is not None:
            errors.append(outcome.details)
        return outcome

    # Successes: the value through a key, through the whole response and through a template.
    whole = f"- {{objectName: whole, secretPath: secret/data/{planted}}}"
    ok = mount(f"{value}\n{whole}", **via, templates="- {fileName: t.env, template: 'V={{ value }}'}")
    assert ok.files is not None and ok.files["value"] == VALUE.encode(), ok.details
    assert VALUE.encode() in ok.files["whole"] and ok.files["t.env"] == f"V={VALUE}".encode()
    # Failures that handle the value: decodings it does not fit, a template filter it does not fit.
    for encoding in ("hex", "base64"):
        assert mount(value.replace("}", f", encoding: {encoding}}}"), **via).code is grpc.StatusCode.INVALID_ARGUMENT
    assert mount(value, **via, templates="- {fileName: t, template: '{{ value | base64decode }}'}").code is not None
    # Failures of identity: a role that may not read, a service account the role does not bind, an expired JWT.
    assert mount(value, **{**via, "roleName": "no-policy-role"}).code is grpc.StatusCode.PERMISSION_DENIED
    assert mount(value, pod=new_pod("nginx-pki"), **via).code is grpc.StatusCode.UNAUTHENTICATED
    stale = new_pod()
    expired = cluster.issuer.pod_token(namespace="test", service_account="nginx-kv", pod_name=stale.name,
                                       pod_uid=stale.uid, audience="vault", issued_at=time.time() - 7200)
    assert mount(value, pod=stale, token=expired, **via).code is grpc.StatusCode.UNAUTHENTICATED
    # Backend error bodies that echo the request: the login body (the JWT), then a read's headers (the token).
    proxy.inject("echo", path="/login$", status=400)
    try:
        assert mount(value, **via).code is grpc.StatusCode.UNAUTHENTICATED
    finally:
        proxy.clear()
    assert '"jwt": "[REDACTED]"' in errors[-1], "the echoed login body reached the message, redacted"
    warm = new_pod()
    assert mount(value, pod=warm, **via).files is not None
    for status in (400, 500):
        proxy.inject("echo", path=f"^/v1/secret/data/{planted}$", status=status)
        try:
            assert mount(value, pod=warm, **via).code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE)
        finally:
            proxy.clear()
        assert "'x-vault-token': '[REDACTED]'" in errors[-1], "the echoed token reached the message, redacted"
    errors += malformed_requests(daemon.socket_path("vault"), jwts[-1])
    markers = {"the secret value": VALUE, "a nodePublishSecretRef client secret": CLIENT_SECRET,
               "the root token": cluster.bao.root_token}
    markers |= {f"service-account JWT #{i}": jwt for i, jwt in enumerate(jwts)}
    tokens = proxy.tokens()
    assert len(tokens) >= 4, "the proxy saw the Vault tokens the provider used"
    markers |= {f"Vault token #{i}": token for i, token in enumerate(sorted(tokens))}
    time.sleep(0.2)  # the last log lines and audit records are written as the answers go out
    outputs = {"logs": daemon.logs(), "stdout": daemon.stdout(), "gRPC errors": "\n".join(errors),
               "metrics": vault_daemon.metrics(), "audit records": vault_daemon.audit()}
    assert len(errors) >= 10 and vault_daemon.audit().count('"outcome": "error"') >= 10
    check_outputs(outputs, markers)
    for where, text in outputs.items():
        assert leaks(text, cluster) == [], where


def malformed_requests(socket_path: str, jwt: str) -> list[str]:
    """Requests the driver would never send, each carrying a credential near the broken spot
    (CVE-2025-7445 logged tokens only when parsing failed)."""
    pod = new_pod()
    good = build_mount_request(vault_spc("- {objectName: a, secretPath: p}", roleName="r"), pod,
                               tokens={"vault": jwt}, secrets={"clientsecret": CLIENT_SECRET})
    broken_tokens = json.loads(good.attributes)
    broken_tokens["csi.storage.k8s.io/serviceAccount.tokens"] = '{"vault": {"token": "' + jwt + '"'
    wrong_token_type = json.loads(good.attributes)
    wrong_token_type["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps({jwt: {"token": 1}})
    variants = [
        {"attributes": good.attributes[:-1] + ', "x": '},  # the attributes JSON cut short, tokens inside
        {"attributes": json.dumps(broken_tokens)},
        {"attributes": json.dumps(wrong_token_type)},  # a token where an audience goes
        {"secrets": '{"clientsecret": "' + CLIENT_SECRET},
        {"secrets": json.dumps({"clientsecret": [CLIENT_SECRET]})},
        {"permission": CLIENT_SECRET},
    ]
    details = []
    for variant in variants:
        request = build_mount_request(vault_spc("- {objectName: a, secretPath: p}", roleName="r"), pod,
                                      tokens={"vault": jwt}, secrets={"clientsecret": CLIENT_SECRET})
        for field, text in variant.items():
            setattr(request, field, text)
        with pytest.raises(grpc.RpcError) as caught:
            call_mount(socket_path, request, timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        details.append(caught.value.details() or "")
    return details


# ------------------------------------------------------------------------------------------------ Azure
@pytest.fixture(scope="module")
def azure(azure_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mounts, Observed]]:
    """A sandboxed daemon at debug with /metrics (inside its network namespace) and an audit file."""
    directory = tmp_path_factory.mktemp("azure-hygiene")
    flags = [*serve_flags(directory / "audit.log"), "--token-proxy-ca-file", str(azure_world.fake.cluster.ca_file)]
    daemon: SandboxedDaemon = start_sandboxed(azure_world, directory, flags, env={"KUBERNETES_SERVICE_PORT": "443"})
    yield Mounts(azure_world, daemon), Observed(daemon, directory / "audit.log")
    daemon.stop()


def metrics_in_sandbox(observed: Observed) -> str:
    """GET /metrics from inside the daemon's private network namespace, where it listens."""
    script = (f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{observed.metrics_port()}"
              "/metrics', timeout=10).read().decode())")
    done = subprocess.run(["nsenter", f"--target={observed.daemon.process.pid}", "--net", sys.executable, "-c",
                           script], capture_output=True, text=True, timeout=30, check=True)
    assert "provider_mounts_total" in done.stdout
    return done.stdout


class Echo:
    """Makes the Azure fake answer a matching request with an error that repeats what the provider sent:
    its form (client secret, client assertion) and its headers (the bearer access token)."""

    def __init__(self, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path: str | None = None
        real = world.fake.route

        def route(method: str, host: str, path: str, query: dict[str, str], headers: dict[str, str],
                  form: dict[str, str], face: str = "") -> Reply:
            if self.path is None or not re.search(self.path, path):
                return real(method, host, path, query, headers, form, face)
            if path.endswith("/token"):
                return Reply(400, {"error": "invalid_client", "error_codes": [7000215],
                                   "error_description": f"AADSTS7000215: Invalid client secret provided in {form}. "
                                                        f"Trace ID: {uuid.uuid4()}"}, {})
            return error(400, "BadParameter", f"The authorization {headers.get('authorization')} is not valid for "
                                              f"a request with headers {headers}.")

        monkeypatch.setattr(world.fake, "route", route)


def test_azure_paths_leak_nothing(azure: tuple[Mounts, Observed], monkeypatch: pytest.MonkeyPatch) -> None:
    mounts, observed = azure
    world = mounts.world
    vault = world.vault(f"kv-hygiene-{uuid.uuid4().hex[:6]}")
    vault.set_secret("value", VALUE)
    vault.set_secret("encoded", base64.b64encode(VALUE.encode()).decode())
    echo = Echo(world, monkeypatch)
    secret_objects = [{"objectName": "value", "objectType": "secret"},
                      {"objectName": "encoded", "objectType": "secret", "objectEncoding": "base64",
                       "objectAlias": "decoded"}]
    sp = {"keyvaultName": vault.name, "tenantID": world.tenant_id}
    jwts: list[str] = []
    errors: list[str] = []

    def call(params: dict[str, str], objects: list[Any] | None, secrets: dict[str, str] | None = None,
             pod_name: str = "hygiene", service_account: str = "workload-identity-sa") -> dict[str, bytes] | None:
        pod = world.pod(pod_name, service_account=service_account)
        audience = BINDING_AUDIENCE if "useAzureTokenProxy" in params else EXCHANGE_AUDIENCE
        jwt = world.pod_token(pod, audience)
        jwts.append(jwt)
        tokens = {audience: jwt} if "clientID" in params else None
        try:
            return files_of(mounts.call(mounts.request(params, objects, pod=pod, secrets=secrets, tokens=tokens)))
        except grpc.RpcError as exc:
            errors.append(exc.details() or "")
            return None

    assert call(world.workload(vault.name), secret_objects) == {"value": VALUE.encode(), "decoded": VALUE.encode()}
    assert call(sp, secret_objects, world.sp_secrets()) is not None
    assert call(sp, secret_objects, {"clientid": world.sp.client_id, "clientsecret": CLIENT_SECRET}) is None
    assert call(world.workload(vault.name), [{"objectName": "value", "objectType": "secret",
                                              "objectEncoding": "hex"}]) is None
    assert call(world.workload(vault.name, objects="array: [\n  - " + VALUE), None) is None
    # Error bodies that echo: Entra ID repeating the client secret or the pod's JWT it was sent, Key Vault
    # repeating the bearer token. Fresh identities, so no cached token skips the echoing request.
    app = world.fake.directory.add_app(secret=CLIENT_SECRET)
    vault.grant(app.principal_id)
    echo.path = r"/oauth2/v2\.0/token$"
    assert call(sp, secret_objects, {"clientid": app.client_id, "clientsecret": CLIENT_SECRET}) is None
    federated = world.fake.directory.add_app()
    world.fake.directory.federate(federated, world.issuer.issuer, "system:serviceaccount:default:workload-identity-sa")
    vault.grant(federated.principal_id)
    assert call({**world.workload(vault.name), "clientID": federated.client_id}, secret_objects) is None
    world.fake.cluster.bind(world.ib, "default", "hygiene-binding")  # the token proxy echoing the pod's JWT
    assert call(world.binding(vault.name), secret_objects, service_account="hygiene-binding") is None
    echo.path = r"^/secrets/value/"
    assert call(world.workload(vault.name), secret_objects) is None
    echo.path = None
    time.sleep(0.2)
    markers = {"the secret value": VALUE, "a client secret": CLIENT_SECRET, "the service principal's secret":
               world.sp_secret}
    markers |= {f"service-account JWT #{i}": jwt for i, jwt in enumerate(jwts)}
    issued = world.fake.directory.issued_tokens()
    assert len(issued) >= 2
    markers |= {f"Entra ID access token #{i}": token for i, token in enumerate(issued)}
    outputs = {"logs": observed.daemon.logs(), "stdout": observed.daemon.stdout(), "gRPC errors": "\n".join(errors),
               "metrics": metrics_in_sandbox(observed), "audit records": observed.audit()}
    assert len(errors) == 7, errors
    assert any("AADSTS7000215" in e and "'client_secret': '[REDACTED]'" in e for e in errors), \
        "the echoing Entra ID error reached the message, redacted"
    assert any("'client_assertion': '[REDACTED]'" in e for e in errors)
    assert any("The authorization Bearer [REDACTED] is not valid" in e for e in errors)
    check_outputs(outputs, markers)

"""Property tests of the real backends' plan(): whatever an SPC author (or a pod's volumeAttributes) puts in
the parameters, plan answers a clean ProviderError of a kind that fits, or a plan whose every output path
passes the driver's rules, stays inside the mount and forms a file set the output layer accepts. Never
another exception, never a planted token or client secret in a message, and never any I/O: no network at
all, and no file opened except a cloud file under the operator's --allowed-files-dir.

A third test drives the whole Mount pipeline in-process through the server's servicer (request, templates,
plan, output), with the backends' fetch replaced by files made from the plan, so the answer is always a gRPC
status that is not INTERNAL or files the driver accepts.

Together with test_request_and_output_fuzz.py this keeps `make test` above 10,000 generated cases
(test_generated_case_count.py checks it); `make fuzz` (HYPOTHESIS_PROFILE=long) runs 25 times as many.
"""

from __future__ import annotations

import atexit
import base64
import builtins
import contextlib
import json
import os
import posixpath
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provider._proto import v1alpha1_pb2 as pb
from provider.audit import AuditLog
from provider.backends.azure.backend import AzureBackend
from provider.backends.azure.config import AzureOptions, AzurePlan
from provider.backends.azure.policy import AzurePolicy
from provider.backends.vault.backend import VaultBackend
from provider.backends.vault.config import VaultPlan, defaults_from
from provider.backends.vault.policy import VaultPolicy, address_allowed
from provider.contract import plan_mount
from provider.errors import ErrorKind, ProviderError
from provider.files import SecretFile, VersionKey
from provider.findings import Findings
from provider.localdriver import check_response
from provider.output import check_file_set
from provider.paths import path_problem
from provider.policy import FilesPolicy
from provider.request import (
    POD_NAME,
    POD_NAMESPACE,
    POD_UID,
    SERVICE_ACCOUNT_NAME,
    SERVICE_ACCOUNT_TOKENS,
    SPC_NAME,
    parse_mount_request,
)
from provider.server import MountServicer
from tests.fuzz.budget import examples, ran

pytestmark = pytest.mark.fuzz
MOUNT = "/mnt/secrets-store"


def _jwt(subject: str) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'fuzz'})}.{part({'sub': subject})}.c2lnbmF0dXJlLW9mLXRoZS1mdXp6LWp3dA"


# Planted credentials: present in every generated request, never allowed in a message or a plan's repr.
POD_JWT = _jwt("system:serviceaccount:fuzz:planted")
CLIENT_SECRET = "planted-client-secret-3c9e51"
MARKERS = (POD_JWT, CLIENT_SECRET)

# ------------------------------------------------------------------------------------- the operator's disk
# An --allowed-files-dir with a CA file, a directory, a cloud file and a symlink that leads out of it.
ALLOWED_DIR = Path(tempfile.mkdtemp(prefix="fuzz-allowed-"))
OUTSIDE_DIR = Path(tempfile.mkdtemp(prefix="fuzz-outside-"))
for _made in (ALLOWED_DIR, OUTSIDE_DIR):
    atexit.register(shutil.rmtree, _made, ignore_errors=True)
(ALLOWED_DIR / "cas").mkdir()
(ALLOWED_DIR / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
(ALLOWED_DIR / "cloud.json").write_text(json.dumps({
    "name": "AzureStackCloud", "activeDirectoryEndpoint": "https://login.stack.example/",
    "keyVaultEndpoint": "https://vault.stack.example/", "keyVaultDNSSuffix": "vault.stack.example"}))
(OUTSIDE_DIR / "secret.pem").write_text("outside the allowed directory")
(ALLOWED_DIR / "out").symlink_to(OUTSIDE_DIR)
ALLOWED_ADDRESSES = ("http://127.0.0.1:8200", "https://vault.corp.example/team-a")
POLICIES = (
    VaultPolicy(),
    VaultPolicy(allowed_addresses=ALLOWED_ADDRESSES),
    VaultPolicy(allowed_addresses=ALLOWED_ADDRESSES, files=FilesPolicy(allowed_files_dir=str(ALLOWED_DIR))),
)

# ---------------------------------------------------------------------------------------------- strategies
PATH_PIECES = st.sampled_from(["/", ".", "..", "a", "b", "\x00", "\\", " ", "é", "~", "-", "data", "\n", "..data",
                               ":", "*", "%2e%2e", "\t"])
hostile = st.one_of(
    st.lists(PATH_PIECES, max_size=10).map("".join),
    st.text(max_size=30),
    st.integers(1, 300).map(lambda n: "x" * n),
    st.lists(st.sampled_from(["a", "..", ".", "", "..data", "b" * 256, "c"]), max_size=5).map("/".join),
)
plain_names = st.sampled_from(["db-password", "tls.crt", "nested/foo", "a", "a/b", "secret1", "kv1", "x-y"])
names = st.one_of(plain_names, hostile)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["0600", "0o644", "0x1ff", "1_0", "0777", "0900", "-1",
                                                           "~", "null", "yes", "1e999", "9" * 5000, ".inf"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)
file_params = st.one_of(st.just(""), hostile, st.sampled_from([
    "ca.pem", "cas", "cloud.json", "out/secret.pem", "../secret.pem", "/etc/passwd", str(ALLOWED_DIR / "ca.pem"),
    str(OUTSIDE_DIR / "secret.pem"), "ca.pem\x00", "/dev/zero", "missing.pem"]))
addresses = st.one_of(st.sampled_from([
    "", "http://127.0.0.1:8200", "https://vault.corp.example/team-a/x", "https://vault.corp.example",
    "http://[", "http://[::1", "https://h:99999", "https://h:port", "ftp://x", "unix://", "unix:///run/v.sock",
    "http://h/?q=1", "http://user:pw@127.0.0.1:8200", "https://vault.corp.example.evil.example/team-a",
    "http://127.0.0.1:8200#frag", " http://127.0.0.1:8200 ", "http://\x00", "//127.0.0.1:8200"]), st.text(max_size=25))
booleans = st.one_of(st.sampled_from(["", "true", "false", "True", "1", "0", "yes", "on", "tru"]), st.text(max_size=6))


def vault_object() -> st.SearchStrategy[dict[str, Any]]:
    fields = {
        "objectName": names,
        "secretPath": st.one_of(st.sampled_from(["secret/data/kv1", "/v1/kv/app", "v1/x", "p?version=1&a=b",
                                                 "p?a;b", "p?%zz", "pki/issue/r?", "?"]), st.text(max_size=20)),
        "secretKey": st.one_of(st.sampled_from(["bar1", "", "0600", "yes"]), st.text(max_size=10)),
        "encoding": st.one_of(st.sampled_from(["utf-8", "UTF-8", "base64", "hex", "", "utf8"]), st.text(max_size=6)),
        "filePermission": scalars,
        "method": st.one_of(st.sampled_from(["GET", "get", "POST", "PUT", "LIST", "PATCH", "DELETE", ""]),
                            st.text(max_size=5)),
        "secretArgs": values,
        "objectPath": st.text(max_size=5),
        "unknownField": scalars,
    }
    return st.fixed_dictionaries({}, optional={k: v | values if k == "objectName" else v for k, v in fields.items()})


vault_objects_text = st.one_of(
    st.lists(vault_object(), max_size=5).map(lambda objs: yaml.safe_dump(objs, allow_unicode=True)),
    st.lists(vault_object(), max_size=3).map(lambda objs: yaml.safe_dump({"array": objs})),
    values.map(yaml.safe_dump),
    st.text(max_size=60),
    st.lists(st.sampled_from(["- ", "objectName: ", "a", "\n", "  ", "{", "}", "[", "]", ":", "&x", "*x", "!!binary ",
                              "secretPath: p", "? ", "|", "'", '"', "%TAG", "---"]), max_size=20).map("".join),
)


def azure_element() -> st.SearchStrategy[dict[str, Any]]:
    fields = {
        "objectName": st.one_of(st.sampled_from(["secret1", "cert-1", "k", "a" * 128]), hostile),
        "objectAlias": names,
        "objectType": st.one_of(st.sampled_from(["secret", "key", "cert", "SECRET", "secrets", ""]),
                                st.text(max_size=5)),
        "objectVersion": st.one_of(st.sampled_from(["", "latest", "0" * 32, "a b"]), st.text(max_size=8)),
        "objectVersionHistory": st.one_of(st.integers(-5, 2**40).map(str), st.sampled_from(["", "x", "2", "1.5",
                                                                                           "9" * 5000]), scalars),
        "objectFormat": st.one_of(st.sampled_from(["pem", "PFX", "pkcs", ""]), st.text(max_size=4)),
        "objectEncoding": st.one_of(st.sampled_from(["utf-8", "base64", "hex", "utf-16", ""]), st.text(max_size=4)),
        "filePermission": scalars,
        "other": scalars,
    }
    return st.fixed_dictionaries({}, optional=fields)


def _azure_array(elements: list[Any], as_strings: bool) -> str:
    items = [yaml.safe_dump(e, allow_unicode=True) if as_strings else e for e in elements]
    return yaml.safe_dump({"array": items}, allow_unicode=True)


azure_objects_text = st.one_of(
    st.builds(_azure_array, st.lists(azure_element(), max_size=5), st.booleans()),
    st.builds(_azure_array, st.lists(values, max_size=3), st.booleans()),
    values.map(yaml.safe_dump),
    st.text(max_size=60),
)

VAULT_PARAMETERS: dict[str, st.SearchStrategy[str]] = {
    "roleName": st.one_of(st.sampled_from(["kv-role", "", " "]), st.text(max_size=8)),
    "vaultAddress": addresses,
    "vaultNamespace": st.text(max_size=8),
    "vaultAuthMountPath": st.one_of(st.sampled_from(["jwt", "kubernetes", "../sys", "a/../b", "/jwt/", ""]),
                                    st.text(max_size=8)),
    "vaultKubernetesMountPath": st.one_of(st.just("kubernetes"), st.text(max_size=6)),
    "audience": st.one_of(st.sampled_from(["vault", "", "custom"]), st.text(max_size=6)),
    "vaultCACertPath": file_params,
    "vaultCADirectory": file_params,
    "vaultTLSClientCertPath": file_params,
    "vaultTLSClientKeyPath": file_params,
    "vaultTLSServerName": st.text(max_size=10),
    "vaultSkipTLSVerify": booleans,
    "templates": st.text(max_size=10),
    "csi.storage.k8s.io/pod.namespace": st.text(max_size=5),  # overridden by kubelet's key, as in a cluster
}
AZURE_PARAMETERS: dict[str, st.SearchStrategy[str]] = {
    "keyvaultName": st.one_of(st.sampled_from(["kv-test", "kv", "a" * 25, "kv_test", ""]), st.text(max_size=10)),
    "tenantID": st.one_of(st.sampled_from(["tenant.example", "", "00000000-0000-0000-0000-000000000000"]),
                          st.text(max_size=10)),
    "tenantId": st.text(max_size=6),
    "clientID": st.one_of(st.sampled_from(["", "00000000-0000-0000-0000-000000000001", "a b"]), st.text(max_size=6)),
    "useVMManagedIdentity": booleans,
    "usePodIdentity": booleans,
    "useAzureTokenProxy": booleans,
    "userAssignedIdentityID": st.one_of(st.sampled_from(["", "x" * 300]), st.text(max_size=6)),
    "cloudName": st.one_of(st.sampled_from(["", "AzurePublicCloud", "azurestackcloud", "AzureChinaCloud", "Mars"]),
                           st.text(max_size=6)),
    "cloudEnvFileName": file_params,
}


def parameters(known: Mapping[str, st.SearchStrategy[str]]) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({}, optional=dict(known)) | st.dictionaries(st.text(max_size=10), st.text(max_size=10),
                                                                              max_size=3)


pods = st.fixed_dictionaries({
    POD_NAME: st.sampled_from(["web-0", ""]),
    POD_NAMESPACE: st.sampled_from(["shop", ""]),
    POD_UID: st.sampled_from(["6b2f3c1e-0000-4000-8000-000000000001", ""]),
    SERVICE_ACCOUNT_NAME: st.sampled_from(["web", ""]),
})
token_audiences = st.lists(st.sampled_from(["vault", "api://AzureADTokenExchange", "", "custom", "aud1"]),
                           max_size=3, unique=True)
node_secrets = st.sampled_from([None, {}, {"clientid": "app", "clientsecret": CLIENT_SECRET},
                                {"ClientID": "app", "ClientSecret": CLIENT_SECRET}, {"clientsecret": CLIENT_SECRET}])


def mount_context(params: dict[str, str], pod: dict[str, str], audiences: list[str],
                  secrets: dict[str, str] | None) -> Any:
    attributes = {**params, SPC_NAME: "fuzz-spc", **{k: v for k, v in pod.items() if v}}
    if audiences:
        attributes[SERVICE_ACCOUNT_TOKENS] = json.dumps({a: {"token": POD_JWT} for a in audiences})
    return parse_mount_request(json.dumps(attributes), json.dumps(secrets), "420", "/target")


# --------------------------------------------------------------------------------------------- no I/O at all
class IOGuard:
    """Records every network call and every file opened while a plan is made."""

    def __init__(self) -> None:
        self.network: list[str] = []
        self.opened: list[str] = []

    @contextlib.contextmanager
    def watching(self) -> Iterator[IOGuard]:
        real_open = builtins.open

        def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            self.opened.append(str(file))
            return real_open(file, *args, **kwargs)

        def no_network(name: str) -> Any:
            def refuse(*args: Any, **kwargs: Any) -> Any:
                self.network.append(name)
                raise OSError(f"plan used the network ({name})")
            return refuse

        with mock.patch("builtins.open", guarded_open), \
                mock.patch.object(socket.socket, "connect", no_network("connect")), \
                mock.patch.object(socket.socket, "connect_ex", no_network("connect_ex")), \
                mock.patch("socket.getaddrinfo", no_network("getaddrinfo")):
            yield self


def assert_clean_error(exc: ProviderError, allowed: set[ErrorKind]) -> None:
    assert exc.kind in allowed, f"{exc.kind}: {exc.message}"
    assert "Traceback" not in exc.message
    for marker in MARKERS:
        assert marker not in exc.message, "a planted credential reached an error message"
    assert str(OUTSIDE_DIR) not in exc.message, "a path outside the allowed directory was echoed"
    if exc.kind is ErrorKind.PERMISSION_DENIED:
        assert "--allowed-vault-addresses" in exc.message or "--allowed-files-dir" in exc.message, exc.message


def assert_safe_file_set(paths: list[str], what: str) -> None:
    """The paths a plan will write: each one valid and inside the mount, and the set acceptable as a whole."""
    for path in paths:
        assert path_problem(path) is None, f"{what} plans the path {path!r}: {path_problem(path)}"
        assert posixpath.normpath(posixpath.join(MOUNT, path)).startswith(MOUNT + "/")
    try:
        check_file_set([SecretFile(p, b"", f"id-{i}", f"spec-{i}") for i, p in enumerate(paths)])
    except ProviderError as exc:
        raise AssertionError(f"{what}: plan accepted what the output layer refuses after the fetch: {exc}") from None


def assert_under_allowed_dir(path: str) -> None:
    base = os.path.realpath(ALLOWED_DIR)
    assert os.path.commonpath([base, os.path.realpath(path)]) == base, path


# ------------------------------------------------------------------------------------------------- Vault
VAULT_KINDS = {ErrorKind.INVALID_ARGUMENT, ErrorKind.PERMISSION_DENIED}
VAULT_BACKENDS = [VaultBackend(defaults_from({}, {}, "kubernetes", policy)) for policy in POLICIES]


@settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=vault_objects_text, params=parameters(VAULT_PARAMETERS), pod=pods, audiences=token_audiences,
       secrets=node_secrets, which=st.integers(0, len(POLICIES) - 1))
def test_vault_plan_is_a_clean_error_or_safe_paths(objects: str, params: dict[str, str], pod: dict[str, str],
                                                   audiences: list[str], secrets: dict[str, str] | None,
                                                   which: int) -> None:
    ran("test_vault_plan_is_a_clean_error_or_safe_paths")
    backend, policy = VAULT_BACKENDS[which], POLICIES[which]
    ctx = mount_context({**params, "objects": objects}, pod, audiences, secrets)
    with IOGuard().watching() as guard:
        try:
            plan: VaultPlan = plan_mount(backend, ctx)
        except ProviderError as exc:
            assert_clean_error(exc, VAULT_KINDS)
            plan = None  # type: ignore[assignment]
    assert guard.network == [], "plan used the network"
    assert guard.opened == [], f"plan opened files: {guard.opened}"
    if plan is None:
        return
    assert_safe_file_set([obj.name for obj in plan.objects], "the Vault backend")
    for obj in plan.objects:
        assert obj.mode is None or 0 <= obj.mode <= 0o777
        assert obj.request.path.startswith("/v1/")
    spc_address = params.get("vaultAddress", "").strip()
    if spc_address and policy.allowed_addresses:
        assert address_allowed(spc_address, policy.allowed_addresses)
    tls = plan.connection.tls
    for name, resolved in (("vaultCACertPath", tls.ca_cert), ("vaultCADirectory", tls.ca_directory),
                           ("vaultTLSClientCertPath", tls.client_cert), ("vaultTLSClientKeyPath", tls.client_key)):
        if params.get(name, "").strip():
            assert policy.files.allowed_files_dir, f"{name} accepted without --allowed-files-dir"
            assert_under_allowed_dir(resolved)
    for marker in MARKERS:
        assert marker not in repr(plan)


# ------------------------------------------------------------------------------------------------- Azure
AZURE_KINDS = {ErrorKind.INVALID_ARGUMENT, ErrorKind.PERMISSION_DENIED, ErrorKind.UNAUTHENTICATED}
AZURE_BACKENDS = [AzureBackend(AzureOptions(split_cert_and_key=split, policy=AzurePolicy(files=policy.files)))
                  for policy in POLICIES for split in (False, True)]


def azure_paths(plan: AzurePlan) -> list[str]:
    """Every path the plan's objects can write: the file (or each file of a history) and, for secrets when
    split files are on, <file>.crt and <file>.key."""
    paths = []
    for item in plan.objects:
        obj = item.obj
        bases = [obj.file_name]
        if obj.syncs_history:
            bases = [f"{obj.file_name}/{i}" for i in sorted({0, 1, obj.history - 1}) if i < obj.history]
        suffixes = ("", ".crt", ".key") if plan.options.split_cert_and_key and obj.type == "secret" else ("",)
        paths += [base + suffix for base in bases for suffix in suffixes]
    return paths


@settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=azure_objects_text, params=parameters(AZURE_PARAMETERS), pod=pods, audiences=token_audiences,
       secrets=node_secrets, which=st.integers(0, len(AZURE_BACKENDS) - 1))
def test_azure_plan_is_a_clean_error_or_safe_paths(objects: str, params: dict[str, str], pod: dict[str, str],
                                                   audiences: list[str], secrets: dict[str, str] | None,
                                                   which: int) -> None:
    ran("test_azure_plan_is_a_clean_error_or_safe_paths")
    backend = AZURE_BACKENDS[which]
    policy = backend.options.policy
    ctx = mount_context({**params, "objects": objects}, pod, audiences, secrets)
    with IOGuard().watching() as guard:
        try:
            plan: AzurePlan | None = plan_mount(backend, ctx)
        except ProviderError as exc:
            assert_clean_error(exc, AZURE_KINDS)
            plan = None
    assert guard.network == [], "plan used the network"
    for opened in guard.opened:  # a custom cloud's file, and only under the operator's directory
        assert policy.files.allowed_files_dir, f"plan opened {opened} without --allowed-files-dir"
        assert_under_allowed_dir(opened)
    if plan is None:
        return
    assert_safe_file_set(azure_paths(plan), "the Azure backend")
    for item in plan.objects:
        assert item.obj.mode is None or 0 <= item.obj.mode <= 0o777
    assert plan.vault_url.startswith("https://") and plan.vault_url.endswith("/")
    for marker in MARKERS:
        assert marker not in repr(plan)


# ------------------------------------------------------------------------------- the servicer, in-process
class PlannedFiles:
    """A real backend's plan; its fetch makes the files the plan names, with keys of the kind a secret store
    may hold (for Vault's per-key objects), and does no I/O."""

    def __init__(self, backend: Any, paths: Any) -> None:
        self.declaration = backend.declaration
        self._backend = backend
        self._paths = paths

    def check(self, ctx: Any, findings: Findings) -> Any:
        return self._backend.check(ctx, findings)

    def fetch(self, plan: Any, deadline: float) -> list[SecretFile]:
        return [SecretFile(path, f"value of {path}".encode(), object_id, spec)
                for path, object_id, spec in self._paths(plan)]


STORE_KEYS = ("username", "tls.crt", "../escape", ".hidden", "a/b")


def vault_files(plan: VaultPlan) -> list[tuple[str, str, str]]:
    found = []
    for obj in plan.objects:
        if getattr(obj, "per_key", False):
            found += [(f"{obj.name}/{key}", obj.name, obj.spec) for key in STORE_KEYS]
        else:
            found.append((obj.name, obj.name, obj.spec))
    return found


def azure_files(plan: AzurePlan) -> list[tuple[str, str, str]]:
    ids = {}
    for item in plan.objects:
        ids[item.obj.file_name] = (item.object_id, item.spec)
    found = []
    for path in azure_paths(plan):
        base = next(p for p in sorted(ids, key=len, reverse=True) if path == p or path.startswith(p))
        object_id, spec = ids[base]
        found.append((path, f"{object_id}/{path[len(base):]}", spec))
    return found


class Aborted(Exception):
    """What grpc's ServicerContext.abort raises: the RPC ends there with the status."""


class FakeContext:
    def __init__(self) -> None:
        self.code: Any = None
        self.details = ""

    def time_remaining(self) -> float:
        return 100.0

    def is_active(self) -> bool:
        return True

    def abort(self, code: Any, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted(details)


SERVICERS = {
    "vault": MountServicer(PlannedFiles(VAULT_BACKENDS[2], vault_files), VersionKey(b"k" * 32, "fuzz"), AuditLog(None)),
    "azure": MountServicer(PlannedFiles(AZURE_BACKENDS[5], azure_files), VersionKey(b"k" * 32, "fuzz"), AuditLog(None)),
}
templates_text = st.one_of(st.just(None), st.text(max_size=30), st.lists(st.fixed_dictionaries(
    {"fileName": names, "template": st.one_of(st.sampled_from(["{{ db-password }}", "{{ secret1 | base64 }}",
                                                               "x{{", '{{ "lit" | json }}', "{{ a/b | nope }}"]),
                                              st.text(max_size=15))},
    optional={"filePermission": scalars, "keepSources": scalars}), max_size=2).map(yaml.safe_dump))


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backend=st.sampled_from(sorted(SERVICERS)), vault_objects=vault_objects_text, azure_objects=azure_objects_text,
       vault_params=parameters(VAULT_PARAMETERS), azure_params=parameters(AZURE_PARAMETERS), templates=templates_text,
       pod=pods, audiences=token_audiences, secrets=node_secrets,
       permission=st.one_of(st.sampled_from(["420", "256", "", "0644", "-1", "512", "null"]), st.text(max_size=4)))
def test_servicer_answers_every_request_cleanly(backend: str, vault_objects: str, azure_objects: str,
                                                vault_params: dict[str, str], azure_params: dict[str, str],
                                                templates: str | None, pod: dict[str, str], audiences: list[str],
                                                secrets: dict[str, str] | None, permission: str) -> None:
    ran("test_servicer_answers_every_request_cleanly")
    params = {**vault_params, "objects": vault_objects} if backend == "vault" else {**azure_params,
                                                                                    "objects": azure_objects}
    if templates is not None:
        params["templates"] = templates
    attributes = {**params, SPC_NAME: "fuzz-spc", **{k: v for k, v in pod.items() if v}}
    if audiences:
        attributes[SERVICE_ACCOUNT_TOKENS] = json.dumps({a: {"token": POD_JWT} for a in audiences})
    request = pb.MountRequest(attributes=json.dumps(attributes), secrets=json.dumps(secrets), permission=permission,
                              target_path="/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount")
    context = FakeContext()
    response = None
    with IOGuard().watching() as guard, contextlib.suppress(Aborted):
        response = SERVICERS[backend].Mount(request, context)  # type: ignore[arg-type]
    assert guard.network == []
    assert (response is None) == (context.code is not None), "an error is aborted, never returned with a message"
    if context.code is not None:
        assert context.code.name != "INTERNAL", context.details
        assert "Traceback" not in context.details
        for marker in MARKERS:
            assert marker not in context.details
        return
    check_response(response)
    paths = [f.path for f in response.files]
    assert len(set(paths)) == len(paths)
    for item in response.files:
        assert posixpath.normpath(posixpath.join(MOUNT, item.path)).startswith(MOUNT + "/")
        assert 0 <= item.mode <= 0o777

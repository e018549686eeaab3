"""Key Vault reads for one mount: the SDK clients, parallel and deduplicated, retried, inside the deadline.

Two phases on the backend's bounded pool (fanout.py), at most `limit` calls of one mount at a time:
list the versions of the objects that keep a history, then get every distinct (type, name, version)
once. Every call's timeouts are cut to the time left, so the mount answers DEADLINE_EXCEEDED at its
deadline, naming what was still unanswered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.keyvault.certificates import CertificateClient
from azure.keyvault.keys import KeyClient
from azure.keyvault.secrets import SecretClient

from provider.backends.azure import content, sdk_errors
from provider.backends.azure.config import AzurePlan, PlannedObject
from provider.backends.azure.declaration import DECLARATION
from provider.backends.azure.retry import POLICY
from provider.backends.azure.versions import ListedVersion, select_versions, version_from_id
from provider.deadline import time_left
from provider.errors import ErrorKind, ProviderError
from provider.fanout import DeadlinePassed, FanOut
from provider.files import SecretFile
from provider.metrics import METRICS, Metrics
from provider.retry import call_with_retries

BACKEND = DECLARATION.name  # the metrics label
# The api-version the official provider speaks (azsecrets v0.13 and friends): same wire, same answers.
API_VERSION = "7.4"
# A call that fails this close to the deadline failed because its timeout was cut to the time left.
DEADLINE_SLACK_SECONDS = 0.1
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
T = TypeVar("T")


@dataclass(frozen=True)
class VaultClients:
    secrets: SecretClient
    keys: KeyClient
    certificates: CertificateClient


def make_clients(vault_url: str, credential: Any) -> VaultClients:
    """Clients for one vault and identity. Retries are ours (retry.py), so azure-core's are off."""
    settings: dict[str, Any] = {
        "api_version": API_VERSION,
        "retry_total": 0,
        "connection_timeout": CONNECT_TIMEOUT_SECONDS,
        "read_timeout": READ_TIMEOUT_SECONDS,
    }
    return VaultClients(
        secrets=SecretClient(vault_url, credential, **settings),
        keys=KeyClient(vault_url, credential, **settings),
        certificates=CertificateClient(vault_url, credential, **settings),
    )


def fetch_files(plan: AzurePlan, clients: Mapping[str, VaultClients], deadline: float, fanout: FanOut,
                limit: int, metrics: Metrics = METRICS) -> list[SecretFile]:
    """Every object's files; `clients` by vault URL (an object may name its own vault, see config.py)."""
    reader = _Reader(plan, clients, deadline, metrics)
    listed = [item for item in plan.objects if item.obj.syncs_history]
    histories = dict(zip((item.obj.index for item in listed),
                         _in_parallel(fanout, limit, reader.list_versions, listed, deadline, "listing object versions"),
                         strict=True))
    wanted = [
        (item, histories[item.obj.index] if item.obj.syncs_history else [item.obj.version])
        for item in plan.objects
    ]
    gets: dict[tuple[str, str, str, str], tuple[PlannedObject, str]] = {}
    for item, versions in wanted:
        for version in versions:
            gets.setdefault(_get_key(item, version), (item, version))
    values = dict(zip(gets, _in_parallel(fanout, limit, lambda pair: reader.get(*pair), list(gets.values()),
                                         deadline, "reading objects"), strict=True))
    files: list[SecretFile] = []
    for item, versions in wanted:
        for index, version in enumerate(versions):
            value = values[_get_key(item, version)]
            files.extend(_files(plan, item, value, index if item.obj.syncs_history else None))
    return files


def _get_key(item: PlannedObject, version: str) -> tuple[str, str, str, str]:
    """Objects asking for the same version of the same object share one get."""
    return (item.vault_url, item.obj.type, item.obj.name.lower(), version.lower())


def _where(item: PlannedObject) -> str:
    return f"{item.obj.describe()} in {item.vault_url}"


def _in_parallel(fanout: FanOut, limit: int, read: Callable[[Any], T], items: list[Any], deadline: float,
                 stage: str) -> list[T]:
    """read over items on the backend's pool, `limit` at a time; the first failure, or DEADLINE_EXCEEDED
    naming what was still unanswered."""
    time_left(deadline, stage)
    try:
        return fanout.run(read, items, limit, lambda: deadline - time.monotonic())
    except DeadlinePassed as exc:
        late = [_where(item if isinstance(item, PlannedObject) else item[0]) for item in
                (items[i] for i in exc.pending)]
        more = f" and {len(late) - 3} more" if len(late) > 3 else ""
        raise ProviderError(
            ErrorKind.DEADLINE_EXCEEDED,
            f"Key Vault did not answer before the mount's deadline ({stage}: {'; '.join(late[:3])}{more}); "
            "check the vault's latency and throttling",
        ) from None


def _files(plan: AzurePlan, item: PlannedObject, value: content.Fetched, index: int | None) -> list[SecretFile]:
    obj = item.obj
    object_id = item.object_id if index is None else f"{item.object_id}/{index}"
    base = obj.file_name if index is None else f"{obj.file_name}/{index}"
    try:
        pieces = content.render(obj, value, plan.options, object_id)
    except content.ContentError as exc:
        raise ProviderError(ErrorKind.INVALID_ARGUMENT, f"{obj.describe()}: {exc}") from None
    spec = item.spec if index is None else obj.spec(item.vault_url, index)
    return [
        SecretFile(path=base + suffix, contents=data, object_id=object_id, object_spec=spec, mode=obj.mode,
                   version=value.version or None)
        for suffix, data in pieces
    ]


class _Reader:
    """The SDK calls of one mount, each retried and translated into ProviderError."""

    def __init__(self, plan: AzurePlan, clients: Mapping[str, VaultClients], deadline: float,
                 metrics: Metrics) -> None:
        self._plan = plan
        self._metrics = metrics
        self._clients = clients
        self._deadline = deadline

    def list_versions(self, item: PlannedObject) -> list[str]:
        obj, clients = item.obj, self._clients[item.vault_url]
        listers: dict[str, Callable[..., Any]] = {
            "secret": clients.secrets.list_properties_of_secret_versions,
            "key": clients.keys.list_properties_of_key_versions,
            "cert": clients.certificates.list_properties_of_certificate_versions,
        }

        def listed(timeouts: dict[str, float]) -> list[ListedVersion]:
            return [
                ListedVersion(version_from_id(p.id) or "", p.enabled is True, p.created_on)
                for p in listers[obj.type](obj.name, **timeouts)
            ]

        found = self._call(listed, item, "list_versions")
        return select_versions(found, obj.version, obj.history, obj.describe())

    def get(self, item: PlannedObject, version: str) -> content.Fetched:
        obj, clients = item.obj, self._clients[item.vault_url]
        if obj.type == "secret":
            return self._call(lambda t: _secret(clients.secrets, obj.name, version, t), item, "get_secret")
        if obj.type == "key":
            return self._call(lambda t: _key(clients.keys, obj.name, version, t), item, "get_key")
        return self._call(lambda t: _cert(clients.certificates, obj.name, version, t), item, "get_certificate")

    def _call(self, operation: Callable[[dict[str, float]], T], item: PlannedObject, name: str) -> T:
        what = item.obj.describe()

        def attempt(left: float) -> T:
            timeouts = {"connection_timeout": min(CONNECT_TIMEOUT_SECONDS, left),
                        "read_timeout": min(READ_TIMEOUT_SECONDS, left)}
            started = time.monotonic()
            status: int | None = None
            try:
                result = operation(timeouts)
                status = 200
                return result
            except Exception as exc:
                status = getattr(exc, "status_code", None)
                raise
            finally:
                self._metrics.backend_request(BACKEND, name, status, time.monotonic() - started)

        try:
            return call_with_retries(attempt, self._deadline, f"reading {what}", POLICY, sdk_errors.transient)
        except ProviderError as exc:
            if exc.kind is ErrorKind.DEADLINE_EXCEEDED:
                raise DeadlinePassed() from exc  # the mount's message names every object still unanswered
            raise
        except Exception as exc:
            if time.monotonic() >= self._deadline - DEADLINE_SLACK_SECONDS:
                raise DeadlinePassed() from exc  # the call ended because its timeout was the time left
            raise sdk_errors.translate(exc, what, name, item.vault_url, self._plan.identity) from exc


def _secret(client: SecretClient, name: str, version: str, timeouts: dict[str, Any]) -> content.SecretValue:
    secret = client.get_secret(name, version or None, **timeouts)
    props = secret.properties
    return content.SecretValue(secret.value, props.content_type, props.key_id, version_from_id(secret.id) or "")


def _key(client: KeyClient, name: str, version: str, timeouts: dict[str, Any]) -> content.KeyValue:
    key = client.get_key(name, version or None, **timeouts)
    jwk: Any = key.key  # JsonWebKey sets its fields dynamically
    fields: dict[str, bytes | str | None] = {
        "n": jwk.n, "e": jwk.e, "x": jwk.x, "y": jwk.y, "crv": _text(jwk.crv),
    }
    return content.KeyValue(_text(jwk.kty) or "", fields, version_from_id(key.id) or "")


def _cert(client: CertificateClient, name: str, version: str, timeouts: dict[str, Any]) -> content.CertificateValue:
    if version:
        cert = client.get_certificate_version(name, version, **timeouts)
    else:
        cert = client.get_certificate(name, **timeouts)
    return content.CertificateValue(bytes(cert.cer) if cert.cer is not None else None, version_from_id(cert.id) or "")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


"""Key Vault reads for one mount: the SDK clients, parallel and deduplicated, retried, inside the deadline.

Two phases on a small per-mount pool: list the versions of the objects that keep a history, then get
every distinct (type, name, version) once. The caller's deadline is hard: if the pool has not finished
by then the mount fails with DEADLINE_EXCEEDED and the stragglers end on their own short timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.keyvault.certificates import CertificateClient
from azure.keyvault.keys import KeyClient
from azure.keyvault.secrets import SecretClient

from provider.backends.azure import content, sdk_errors
from provider.backends.azure.config import AzurePlan, PlannedObject
from provider.backends.azure.retry import call_with_retries
from provider.backends.azure.versions import ListedVersion, select_versions, version_from_id
from provider.deadline import time_left
from provider.errors import ErrorKind, ProviderError
from provider.observability import record_backend_request
from provider.output import SecretFile

BACKEND = "azure"
# The api-version the official provider speaks (azsecrets v0.13 and friends): same wire, same answers.
API_VERSION = "7.4"
MAX_PARALLEL = 8
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


def fetch_files(plan: AzurePlan, clients: Mapping[str, VaultClients], deadline: float) -> list[SecretFile]:
    """Every object's files; `clients` by vault URL (an object may name its own vault, see config.py)."""
    pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="azure-fetch")
    try:
        reader = _Reader(plan, clients, deadline)
        histories = {
            item.obj.index: pool.submit(reader.list_versions, item) for item in plan.objects if item.obj.syncs_history
        }
        _await({histories[i.obj.index]: _where(i) for i in plan.objects if i.obj.syncs_history}, deadline,
               "listing object versions")
        wanted = [
            (item, histories[item.obj.index].result() if item.obj.syncs_history else [item.obj.version])
            for item in plan.objects
        ]
        gets: dict[tuple[str, str, str, str], Future[content.Fetched]] = {}
        waiting: dict[Future[Any], str] = {}
        for item, versions in wanted:
            for version in versions:
                key = (item.vault_url, item.obj.type, item.obj.name.lower(), version.lower())
                if key not in gets:
                    gets[key] = pool.submit(reader.get, item, version)
                    waiting[gets[key]] = _where(item)
        _await(waiting, deadline, "reading objects")
        files: list[SecretFile] = []
        for item, versions in wanted:
            for index, version in enumerate(versions):
                value = gets[(item.vault_url, item.obj.type, item.obj.name.lower(), version.lower())].result()
                files.extend(_files(plan, item, value, index if item.obj.syncs_history else None))
        return files
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _where(item: PlannedObject) -> str:
    return f"{item.obj.describe()} in {item.vault_url}"


def _await(futures: Mapping[Future[Any], str], deadline: float, stage: str) -> None:
    """Wait for every future (each with what it reads); the first failure, or DEADLINE_EXCEEDED naming what
    was still unanswered."""
    pending = list(futures)
    done, not_done = wait(pending, timeout=time_left(deadline, stage), return_when=FIRST_EXCEPTION)
    failed = [f for f in pending if f in done and f.exception() is not None]
    if failed:
        raise failed[0].exception()  # type: ignore[misc]
    if not_done:
        late = [futures[f] for f in pending if f in not_done]
        more = f" and {len(late) - 3} more" if len(late) > 3 else ""
        raise ProviderError(
            ErrorKind.DEADLINE_EXCEEDED,
            f"Key Vault did not answer before the mount's deadline ({stage}: {'; '.join(late[:3])}{more}); "
            "check the vault's latency and throttling",
        )


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

    def __init__(self, plan: AzurePlan, clients: Mapping[str, VaultClients], deadline: float) -> None:
        self._plan = plan
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
                record_backend_request(BACKEND, name, status, time.monotonic() - started)

        try:
            return call_with_retries(attempt, self._deadline, f"reading {what}", sdk_errors.transient)
        except ProviderError:
            raise
        except Exception as exc:
            raise sdk_errors.translate(exc, what, name, item.vault_url, self._plan.identity) from None


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


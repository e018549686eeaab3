"""The fake Key Vault REST API (api-version 7.x / 2025+): challenge, secrets, keys, certificates, paging.

Shapes follow Microsoft's documentation: SecretBundle, KeyBundle (JWK), CertificateBundle (`cer`), list
pages with `nextLink`, errors as {"error": {"code", "message", "innererror"}}.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tests.support.azure_fake.entra import Directory
from tests.support.azure_fake.store import CertificateVersion, KeyVersion, SecretVersion, Vault, thumbprint

API_VERSIONS = frozenset({"7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"})
_KINDS = {"secrets": ("secret", "Secret"), "keys": ("key", "Key"), "certificates": ("certificate", "Certificate")}
_PATH = re.compile(r"^/(secrets|keys|certificates)/([^/]+)(?:/([^/]*))?/?$")


@dataclass(frozen=True)
class FakeCloud:
    """One cloud the fake plays: its vault DNS suffix, token resource and Entra ID host."""

    suffix: str
    resource: str
    login_host: str
    challenge_authority: str  # what the 401 names as authorization=

    def environment(self) -> dict[str, str]:
        """The cloudEnvFileName JSON for this cloud (AzureStackCloud)."""
        return {"name": "AzureStackCloud", "activeDirectoryEndpoint": f"https://{self.login_host}/",
                "keyVaultEndpoint": self.resource + "/", "keyVaultDNSSuffix": self.suffix}


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str]


def error(status: int, code: str, message: str, inner: str | None = None, headers: dict[str, str] | None = None
          ) -> Reply:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if inner:
        body["error"]["innererror"] = {"code": inner}
    return Reply(status, body, headers or {})


class KeyVaultApi:
    def __init__(self, directory: Directory, page_size: int) -> None:
        self.directory = directory
        self.page_size = page_size

    def handle(self, vault: Vault, cloud: FakeCloud, host: str, path: str, query: dict[str, str],
               authorization: str | None) -> Reply:
        challenge = {"WWW-Authenticate": f'Bearer authorization="{cloud.challenge_authority}/{vault.tenant_id}", '
                                         f'resource="{cloud.resource}"'}
        api_version = query.get("api-version")
        if not api_version:
            return error(400, "BadParameter", "The 'api-version' query parameter is missing.")
        if api_version not in API_VERSIONS:
            return error(400, "BadParameter", f"The specified version ({api_version}) is not recognized. Consider "
                                              "using the latest supported version.")
        if not authorization or not authorization.startswith("Bearer "):
            return error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", headers=challenge)
        grant = self.directory.grant_for(authorization[len("Bearer "):])
        if grant is None or grant.expires < _now():
            return error(401, "Unauthorized", "AKV10022: Invalid token or expired.", headers=challenge)
        if grant.resource != cloud.resource:
            return error(401, "Unauthorized", f"AKV10022: Invalid audience. Expected {cloud.resource}, found: "
                                              f"{grant.resource}.", headers=challenge)
        if grant.tenant_id != vault.tenant_id:
            return error(401, "Unauthorized", "AKV10032: Invalid issuer. Expected one of "
                                              f"https://sts.windows.net/{vault.tenant_id}/", headers=challenge)
        match = _PATH.match(path)
        if match is None:
            return error(404, "NotFound", "The requested resource was not found.")
        collection, name, rest = match.group(1), match.group(2), match.group(3) or ""
        singular, title = _KINDS[collection]
        base = f"https://{host}"
        if rest == "versions":
            if not vault.allowed(grant.principal_id, f"{collection}/list"):
                return self._forbidden(vault, grant.client_id, grant.principal_id, f"{collection} list")
            return self._list(vault, collection, name, base, query)
        if not vault.allowed(grant.principal_id, f"{collection}/get"):
            return self._forbidden(vault, grant.client_id, grant.principal_id, f"{collection} get")
        versions: list[Any] = getattr(vault, collection).get(name.lower(), [])
        item = _pick(versions, rest)
        if item is None:
            shown = f"{name}/{rest}" if rest else name
            return error(404, f"{title}NotFound", f"A {singular} with (name/id) {shown} was not found in this key "
                                                  f"vault. If you recently deleted this {singular} you may be able "
                                                  "to recover it using the correct recovery command. For help "
                                                  "resolving this issue, please see "
                                                  "https://go.microsoft.com/fwlink/?linkid=2125182")
        if not item.attributes.enabled:
            return error(403, "Forbidden", f"Operation get is not allowed on a disabled {singular}.",
                         f"{title}Disabled")
        display = vault.display_names.get(name.lower(), name)
        return Reply(200, _bundle(collection, item, base, display), {})

    def _forbidden(self, vault: Vault, client_id: str, principal_id: str, permission: str) -> Reply:
        return error(403, "Forbidden",
                     f"The user, group or application 'appid={client_id};oid={principal_id};"
                     f"iss=https://sts.windows.net/{vault.tenant_id}/' does not have {permission} permission on "
                     f"key vault '{vault.name};location=westeurope'. For help resolving this issue, please see "
                     "https://go.microsoft.com/fwlink/?linkid=2125287", "AccessDenied")

    def _list(self, vault: Vault, collection: str, name: str, base: str, query: dict[str, str]) -> Reply:
        versions = getattr(vault, collection).get(name.lower(), [])
        display = vault.display_names.get(name.lower(), name)
        size = min(self.page_size, int(query.get("maxresults") or 25))
        start = int(base64.urlsafe_b64decode(query["$skiptoken"]).decode()) if "$skiptoken" in query else 0
        page = versions[start : start + size]
        body: dict[str, Any] = {"value": [_item(collection, v, base, display) for v in page], "nextLink": None}
        if start + size < len(versions):
            token = base64.urlsafe_b64encode(str(start + size).encode()).decode()
            # Like the real service: an explicit :443, a skip token and maxresults on the next page's URL.
            origin = base if ":" in base.removeprefix("https://") else base + ":443"
            body["nextLink"] = (f"{origin}/{collection}/{quote(display)}/versions?api-version={query['api-version']}"
                                f"&$skiptoken={token}&maxresults={size}")
        return Reply(200, body, {})


def _pick(versions: list[Any], version: str) -> Any:
    if not versions:
        return None
    if not version:
        return max(enumerate(versions), key=lambda pair: (pair[1].attributes.created, pair[0]))[1]
    return next((v for v in versions if v.version.lower() == version.lower()), None)


def _now() -> float:
    return time.time()


def _bundle(collection: str, item: Any, base: str, name: str) -> dict[str, Any]:
    if isinstance(item, SecretVersion):
        body: dict[str, Any] = {"id": f"{base}/secrets/{name}/{item.version}",
                                "attributes": item.attributes.to_json(), "tags": {}}
        if item.value is not None:
            body["value"] = item.value
        if item.content_type is not None:
            body["contentType"] = item.content_type
        if item.kid:
            body["kid"] = item.kid.replace("https://{host}", base)
            body["managed"] = True
        return body
    if isinstance(item, KeyVersion):
        jwk = dict(item.jwk, kid=f"{base}/keys/{name}/{item.version}")
        return {"key": jwk, "attributes": item.attributes.to_json({"exportable": False}), "tags": {}}
    assert isinstance(item, CertificateVersion)
    body = {
        "id": f"{base}/certificates/{name}/{item.version}",
        "kid": f"{base}/keys/{name}/{item.version}",
        "sid": f"{base}/secrets/{name}/{item.version}",
        "attributes": item.attributes.to_json(),
        "tags": {},
        "policy": {"id": f"{base}/certificates/{name}/policy",
                   "secret_props": {"contentType": item.content_type}},
    }
    if item.cer is not None:
        body.update({"x5t": thumbprint(item.cer), "cer": base64.b64encode(item.cer).decode()})
    return body


def _item(collection: str, item: Any, base: str, name: str) -> dict[str, Any]:
    attributes = item.attributes.to_json()
    if isinstance(item, KeyVersion):
        return {"kid": f"{base}/keys/{name}/{item.version}", "attributes": attributes, "tags": {}}
    body: dict[str, Any] = {"id": f"{base}/{collection}/{name}/{item.version}", "attributes": attributes, "tags": {}}
    if isinstance(item, SecretVersion) and item.content_type is not None:
        body["contentType"] = item.content_type
    if isinstance(item, CertificateVersion) and item.cer is not None:
        body["x5t"] = thumbprint(item.cer)
    return body


def dumps(body: dict[str, Any] | None) -> bytes:
    return b"" if body is None else json.dumps(body).encode()

"""The fake Entra ID: tenants, app registrations (client secrets, federated credentials), managed
identities, and the access tokens it hands out. Error bodies follow Entra ID's (AADSTS codes)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


@dataclass(frozen=True)
class FederatedCredential:
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (EXCHANGE_AUDIENCE,)


@dataclass
class App:
    """An app registration (or a user-assigned identity's app) in one tenant."""

    tenant_id: str
    client_id: str
    principal_id: str
    client_secrets: set[str] = field(default_factory=set, repr=False)
    federated: list[FederatedCredential] = field(default_factory=list)


@dataclass(frozen=True)
class Grant:
    """What an access token stands for."""

    principal_id: str
    client_id: str
    tenant_id: str
    resource: str
    expires: float


class EntraError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {
            "error": error,
            "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {uuid.uuid4()}\r\n"
                                 f"Correlation ID: {uuid.uuid4()}\r\nTimestamp: {time.strftime('%Y-%m-%d %H:%M:%SZ')}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        }


class Directory:
    """Tenants, apps, managed identities, trusted token issuers, and issued access tokens."""

    def __init__(self, tenant_id: str, token_lifetime: int = 3599) -> None:
        self.tenant_id = tenant_id
        self.token_lifetime = token_lifetime
        self.apps: dict[tuple[str, str], App] = {}
        self.issuers: dict[str, Any] = {}  # issuer URL → public key (a Kubernetes service-account issuer)
        self.system_identity: App | None = None
        self.user_identities: dict[str, App] = {}
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ set-up, from the tests
    def add_app(self, client_id: str | None = None, secret: str | None = None, tenant_id: str | None = None) -> App:
        app = App(tenant_id or self.tenant_id, client_id or str(uuid.uuid4()), str(uuid.uuid4()))
        if secret:
            app.client_secrets.add(secret)
        self.apps[(app.tenant_id, app.client_id.lower())] = app
        return app

    def federate(self, app: App, issuer: str, subject: str, audience: str = EXCHANGE_AUDIENCE) -> None:
        app.federated.append(FederatedCredential(issuer, subject, (audience,)))

    def trust_issuer(self, issuer: str, public_key: Any) -> None:
        self.issuers[issuer] = public_key

    def add_system_identity(self) -> App:
        self.system_identity = App(self.tenant_id, str(uuid.uuid4()), str(uuid.uuid4()))
        return self.system_identity

    def add_user_identity(self) -> App:
        app = App(self.tenant_id, str(uuid.uuid4()), str(uuid.uuid4()))
        self.user_identities[app.client_id.lower()] = app
        return app

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._grants)

    def grant_for(self, token: str) -> Grant | None:
        with self._lock:
            return self._grants.get(token)

    # ------------------------------------------------------------------ the endpoints' logic
    def client_credentials(self, tenant_id: str, form: dict[str, str], resources: set[str]) -> dict[str, Any]:
        """POST /{tenant}/oauth2/v2.0/token with grant_type=client_credentials."""
        if form.get("grant_type") != "client_credentials":
            raise EntraError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if not any(tid == tenant_id for tid, _ in self.apps) and tenant_id != self.tenant_id:
            raise EntraError(400, "invalid_request", 90002, f"Tenant '{tenant_id}' not found.")
        client_id = form.get("client_id", "")
        app = self.apps.get((tenant_id, client_id.lower()))
        if app is None:
            raise EntraError(400, "unauthorized_client", 700016,
                             f"Application with identifier '{client_id}' was not found in the directory "
                             f"'{tenant_id}'.")
        resource = self._resource(form.get("scope", ""), resources)
        if "client_secret" in form:
            if form["client_secret"] not in app.client_secrets:
                raise EntraError(401, "invalid_client", 7000215,
                                 "Invalid client secret provided. Ensure the secret being sent in the request is "
                                 "the client secret value, not the client secret ID.")
        elif form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            self._check_assertion(app, form.get("client_assertion", ""))
        else:
            raise EntraError(401, "invalid_client", 7000218,
                             "The request body must contain the following parameter: 'client_assertion' or "
                             "'client_secret'.")
        return self._issue(app, resource)

    def managed_identity(self, client_id: str | None, resource: str, resources: set[str]) -> dict[str, Any]:
        """IMDS GET /metadata/identity/oauth2/token."""
        app = self.user_identities.get(client_id.lower()) if client_id else self.system_identity
        if app is None:
            raise EntraError(400, "invalid_request", 0, "Identity not found")
        if resource.rstrip("/") not in resources:
            raise EntraError(400, "invalid_resource", 500011, f"The resource principal named {resource} was not "
                                                              "found in the tenant.")
        body = self._issue(app, resource.rstrip("/") + "/.default")
        now = int(time.time())
        return {"access_token": body["access_token"], "client_id": app.client_id,
                "expires_in": str(self.token_lifetime), "expires_on": str(now + self.token_lifetime),
                "ext_expires_in": str(self.token_lifetime), "not_before": str(now), "resource": resource,
                "token_type": "Bearer"}

    def _resource(self, scope: str, resources: set[str]) -> str:
        resource = scope.split(" ")[0]
        if not resource.endswith("/.default"):
            raise EntraError(400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid. "
                                                            "Client credential flows must have a scope value with "
                                                            "/.default suffixed to the resource identifier.")
        if resource[: -len("/.default")].rstrip("/") not in resources:
            raise EntraError(400, "invalid_resource", 500011,
                             f"The resource principal named {resource[: -len('/.default')]} was not found in the "
                             f"tenant named {self.tenant_id}.")
        return resource

    def _check_assertion(self, app: App, assertion: str) -> None:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise EntraError(400, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
        issuer = str(unverified.get("iss", ""))
        key = self.issuers.get(issuer)
        if key is None:
            raise EntraError(400, "invalid_client", 700211,
                             f"No matching federated identity record found for presented assertion issuer "
                             f"'{issuer}'.")
        try:
            claims = jwt.decode(assertion, key, algorithms=["RS256"], options={"verify_aud": False})
        except jwt.ExpiredSignatureError:
            raise EntraError(400, "invalid_client", 700024,
                             "Client assertion is not within its valid time range.") from None
        except jwt.PyJWTError:
            raise EntraError(401, "invalid_client", 50013, "Assertion failed signature validation.") from None
        audiences = claims.get("aud", [])
        audiences = [audiences] if isinstance(audiences, str) else list(audiences)
        subject = str(claims.get("sub", ""))
        for credential in app.federated:
            if credential.issuer == issuer and credential.subject == subject and set(audiences) & set(
                credential.audiences
            ):
                return
        raise EntraError(400, "invalid_request", 70021,
                         f"No matching federated identity record found for presented assertion. Assertion Issuer: "
                         f"'{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: "
                         f"'{','.join(audiences)}'.")

    def _issue(self, app: App, scope: str) -> dict[str, Any]:
        resource = scope[: -len("/.default")].rstrip("/")
        expires = time.time() + self.token_lifetime
        token = _access_token(app, resource)
        with self._lock:
            self._grants[token] = Grant(app.principal_id, app.client_id, app.tenant_id, resource, expires)
        return {"token_type": "Bearer", "expires_in": self.token_lifetime, "ext_expires_in": self.token_lifetime,
                "access_token": token}


def _access_token(app: App, resource: str) -> str:
    """JWT-shaped like Entra's, so a leaked one is also caught by the log redactor's shape filter."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    header = {"typ": "JWT", "alg": "RS256", "kid": "fake"}
    claims = {"aud": resource, "iss": f"https://sts.windows.net/{app.tenant_id}/", "oid": app.principal_id,
              "appid": app.client_id, "tid": app.tenant_id, "jti": secrets.token_hex(8)}
    return f"{part(header)}.{part(claims)}.{secrets.token_urlsafe(32)}"

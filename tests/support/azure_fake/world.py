"""A ready-made Azure for the tests: one tenant with a service principal, a workload identity federated
with a Kubernetes issuer the tests own, a managed identity bound to the AKS cluster (identity binding),
managed identities of the node, and helpers that write SPCs the official way."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provider.localdriver import PodIdentity
from tests.support.azure_fake.cluster import BINDING_AUDIENCE
from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE, App
from tests.support.azure_fake.keyvault import FakeCloud
from tests.support.azure_fake.server import PUBLIC, AzureFake
from tests.support.azure_fake.store import Vault
from tests.support.service_accounts import Issuer

NAMESPACE = "default"
SERVICE_ACCOUNT = "workload-identity-sa"


@dataclass
class World:
    fake: AzureFake
    issuer: Issuer
    sp: App
    sp_secret: str
    wi: App
    system_identity: App
    user_identity: App
    ib: App  # bound to the cluster for NAMESPACE/SERVICE_ACCOUNT (identity binding)

    @property
    def tenant_id(self) -> str:
        return self.fake.tenant_id

    def vault(self, name: str, cloud: FakeCloud = PUBLIC) -> Vault:
        """A new vault every identity of the world may read."""
        vault = self.fake.add_vault(name, cloud)
        for app in (self.sp, self.wi, self.system_identity, self.user_identity, self.ib):
            vault.grant(app.principal_id)
        return vault

    def pod(self, name: str = "app", namespace: str = NAMESPACE, service_account: str = SERVICE_ACCOUNT) -> PodIdentity:
        return PodIdentity.named(name, namespace, service_account)

    def pod_token(self, pod: PodIdentity, audience: str = EXCHANGE_AUDIENCE, lifetime: int = 600) -> str:
        return self.issuer.pod_token(namespace=pod.namespace, service_account=pod.service_account, pod_name=pod.name,
                                     pod_uid=pod.uid, audience=audience, lifetime=lifetime)

    def workload(self, vault: str, **extra: str) -> dict[str, str]:
        """SPC parameters for workload identity."""
        return {"keyvaultName": vault, "tenantID": self.tenant_id, "clientID": self.wi.client_id, **extra}

    def binding(self, vault: str, **extra: str) -> dict[str, str]:
        """SPC parameters for identity binding, as the official provider's docs write them."""
        return {"useAzureTokenProxy": "true", "keyvaultName": vault, "tenantId": self.tenant_id,
                "clientID": self.ib.client_id, **extra}

    def tokens_for(self, parameters: Mapping[str, str], pod: PodIdentity) -> dict[str, str] | None:
        """The tokens a CSIDriver with both Azure audiences sends, when the SPC names a client."""
        if "clientID" not in parameters:
            return None
        return {EXCHANGE_AUDIENCE: self.pod_token(pod), BINDING_AUDIENCE: self.pod_token(pod, BINDING_AUDIENCE)}

    def sp_secrets(self) -> dict[str, str]:
        return {"clientid": self.sp.client_id, "clientsecret": self.sp_secret}


def build_world(fake: AzureFake) -> World:
    issuer = Issuer()
    fake.directory.trust_issuer(issuer.issuer, issuer.key.public_key())
    sp_secret = "sp-secret-" + secrets.token_urlsafe(12)
    sp = fake.directory.add_app(secret=sp_secret)
    wi = fake.directory.add_app()
    fake.directory.federate(wi, issuer.issuer, f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}")
    ib = fake.directory.add_app()
    fake.cluster.bind(ib, NAMESPACE, SERVICE_ACCOUNT)
    return World(fake, issuer, sp, sp_secret, wi, fake.directory.add_system_identity(),
                 fake.directory.add_user_identity(), ib)


def objects_param(*objects: Mapping[str, Any] | str) -> str:
    """The official `objects` parameter: `array:` of YAML strings, one per object."""
    lines = ["array:"]
    for obj in objects:
        body = obj if isinstance(obj, str) else "\n".join(f"{key}: {value}" for key, value in obj.items())
        lines.append("  - |")
        lines.extend(f"    {line}" for line in body.splitlines())
    return "\n".join(lines) + "\n"


def spc(name: str, parameters: Mapping[str, str], objects: list[Mapping[str, Any] | str] | None = None
        ) -> dict[str, Any]:
    """A SecretProviderClass manifest for `provider: azure`."""
    params = dict(parameters)
    if objects is not None:
        params["objects"] = objects_param(*objects)
    return {"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": {"provider": "azure", "parameters": params}}

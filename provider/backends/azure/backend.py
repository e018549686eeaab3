"""The Azure Key Vault backend: plan (config.py, no I/O) then fetch (fetch.py) with cached identities."""

from __future__ import annotations

from provider.backends.azure.auth import IdentityCache
from provider.backends.azure.config import AzureOptions, AzurePlan, build_plan
from provider.backends.azure.fetch import VaultClients, fetch_files, make_clients
from provider.output import SecretFile
from provider.request import MountContext


class AzureBackend:
    name = "azure"

    def __init__(self, options: AzureOptions) -> None:
        self.options = options
        self.identities: IdentityCache[VaultClients] = IdentityCache(make_clients)

    def plan(self, ctx: MountContext) -> AzurePlan:
        return build_plan(ctx, self.options)

    def fetch(self, plan: AzurePlan, deadline: float) -> list[SecretFile]:
        clients = self.identities.clients(plan.identity, plan.cloud, plan.vault_url)
        return fetch_files(plan, clients, deadline)

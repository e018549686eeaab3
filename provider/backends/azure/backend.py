"""The Azure Key Vault backend: plan (config.py, no I/O) then fetch (fetch.py) with cached identities.

The Azure SDKs (azure-identity, azure-keyvault-*: about 18 MB of RSS) load at the first fetch, not at
start-up, so a daemon that serves both sockets but only ever gets Vault mounts never loads them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from provider.backends.azure.config import AzureOptions, AzurePlan, IdentityBinding, check_plan
from provider.backends.azure.declaration import DECLARATION
from provider.backends.azure.tokenproxy import TokenProxy
from provider.fanout import FanOut
from provider.files import SecretFile
from provider.findings import Findings
from provider.metrics import METRICS, Metrics
from provider.request import MountContext

if TYPE_CHECKING:
    from provider.backends.azure.auth import IdentityCache
    from provider.backends.azure.fetch import VaultClients


# Key Vault calls of one mount in flight at once, and the backend's threads for the whole process per call.
MAX_PARALLEL = 8
HELPERS_PER_READ = 4


class AzureBackend:
    """The contract's Backend[AzurePlan]."""

    declaration = DECLARATION

    def __init__(self, options: AzureOptions, metrics: Metrics = METRICS) -> None:
        self.options = options
        self.metrics = metrics
        self.fanout = FanOut(HELPERS_PER_READ * MAX_PARALLEL, "azure-fetch")
        self._identities: IdentityCache[VaultClients] | None = None
        self._lock = threading.Lock()
        self.token_proxy = TokenProxy(options.token_proxy)

    @property
    def identities(self) -> IdentityCache[VaultClients]:
        with self._lock:
            if self._identities is None:
                from provider.backends.azure.auth import IdentityCache
                from provider.backends.azure.fetch import make_clients

                self._identities = IdentityCache(make_clients, metrics=self.metrics)
            return self._identities

    def check(self, ctx: MountContext, findings: Findings) -> AzurePlan | None:
        return check_plan(ctx, self.options, findings)

    def fetch(self, plan: AzurePlan, deadline: float) -> list[SecretFile]:
        from provider.backends.azure.fetch import fetch_files

        # Before the identity cache: the first identity-binding mount may wait for the API server here.
        route = self.token_proxy.route(deadline) if isinstance(plan.identity, IdentityBinding) else None
        # One identity for every vault of the SPC; its clients are kept per vault.
        urls = dict.fromkeys(item.vault_url for item in plan.objects)
        clients = {url: self.identities.clients(plan.identity, plan.cloud, url, route) for url in urls}
        return fetch_files(plan, clients, deadline, self.fanout, MAX_PARALLEL, self.metrics)

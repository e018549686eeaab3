"""The Azure Key Vault backend: plan (config.py, no I/O) then fetch (fetch.py) with cached identities.

The Azure SDKs (azure-identity, azure-keyvault-*: about 18 MB of RSS) load at the first fetch, not at
start-up, so a daemon that serves both sockets but only ever gets Vault mounts never loads them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from provider.backends.azure.config import AzureOptions, AzurePlan, IdentityBinding, check_plan
from provider.backends.azure.tokenproxy import TokenProxy
from provider.findings import Finding, Findings, warn_once
from provider.output import SecretFile
from provider.request import MountContext

if TYPE_CHECKING:
    from provider.backends.azure.auth import IdentityCache
    from provider.backends.azure.fetch import VaultClients


class AzureBackend:
    name = "azure"

    def __init__(self, options: AzureOptions) -> None:
        self.options = options
        self._identities: IdentityCache[VaultClients] | None = None
        self._lock = threading.Lock()
        self.token_proxy = TokenProxy(options.token_proxy)

    @property
    def identities(self) -> IdentityCache[VaultClients]:
        with self._lock:
            if self._identities is None:
                from provider.backends.azure.auth import IdentityCache
                from provider.backends.azure.fetch import make_clients

                self._identities = IdentityCache(make_clients)
            return self._identities

    def plan(self, ctx: MountContext) -> AzurePlan:
        findings = Findings()
        plan = check_plan(ctx, self.options, findings)
        spc = f"{ctx.pod.namespace}/{ctx.spc_name}"
        for warning in findings.warnings:
            warn_once(spc, warning.key, f"SecretProviderClass {spc}: {warning.message}", warning.fields)
        findings.raise_first()
        assert plan is not None
        return plan

    def lint(self, ctx: MountContext) -> list[Finding]:
        """Every problem `plan` would find (it raises only the first), and every warning it would log."""
        findings = Findings()
        check_plan(ctx, self.options, findings)
        return findings.items

    def fetch(self, plan: AzurePlan, deadline: float) -> list[SecretFile]:
        from provider.backends.azure.fetch import fetch_files

        # Before the identity cache: the first identity-binding mount may wait for the API server here.
        route = self.token_proxy.route(deadline) if isinstance(plan.identity, IdentityBinding) else None
        # One identity for every vault of the SPC; its clients are kept per vault.
        urls = dict.fromkeys(item.vault_url for item in plan.objects)
        clients = {url: self.identities.clients(plan.identity, plan.cloud, url, route) for url in urls}
        return fetch_files(plan, clients, deadline)

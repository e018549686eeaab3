"""A local Azure for the tests: Key Vault REST, Entra ID and IMDS over HTTPS (server.py, keyvault.py,
entra.py, store.py, pki.py), reached by the product only through the real azure-identity and
azure-keyvault clients. The daemon runs in private namespaces whose /etc/hosts sends the real host names
to it (sandbox.py, daemon.py); tests that call the backend in-process map the names instead
(resolver.py). world.py and fixtures.py set up a tenant, identities and SPCs for the tests."""

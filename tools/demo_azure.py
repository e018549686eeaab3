"""`make demo-azure`: the documentation's `azure-kvname-podid` SecretProviderClass, rewritten for
workload identity, mounted end to end from a local Azure Key Vault fake.

1. The fake (tests/support/azure_fake) on 127.0.0.1: Key Vault, Entra ID and IMDS over HTTPS with a
   throw-away CA, set up as an operator would set up Azure: tenant 11111111-..., an identity with client
   ID 00000000-... and a federated credential for the service account default/workload-identity-sa of
   a cluster whose issuer key this script owns, and the vault `kvname` with `secret1` and `key1`. These
   are the placeholders of the example, so the SecretProviderClass is used exactly as written.
2. The provider daemon (`azure.sock`) in private mount and network namespaces whose /etc/hosts sends
   kvname.vault.azure.net and login.microsoftonline.com to the fake (needs root and `unshare`; without
   them the daemon runs inside this script, with the same name mapping).
3. `secrets-store-csi-provider mount deploy/examples/azure/spc-azure-kvname-podid.yaml` as the driver
   would call it for pod default/busybox-secrets-store-inline-wi with its token for the audience
   api://AzureADTokenExchange, into ./demo-out/azure.
Everything started here is stopped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from demo import show, step  # the Vault demo's way of printing steps and commands (same directory)

ROOT = Path(__file__).resolve().parents[1]
SPC = ROOT / "deploy" / "examples" / "azure" / "spc-azure-kvname-podid.yaml"
TARGET = ROOT / "demo-out" / "azure"
TENANT = "11111111-1111-1111-1111-111111111111"
CLIENT_ID = "00000000-0000-0000-0000-000000000000"
NAMESPACE, SERVICE_ACCOUNT, POD = "default", "workload-identity-sa", "busybox-secrets-store-inline-wi"
AUDIENCE = "api://AzureADTokenExchange"
SECRET_VALUE = "Hello from Key Vault (the fake one)"


@contextlib.contextmanager
def daemon_socket(fake: object, work: Path, serve_args: list[str]) -> Iterator[Path]:
    """The daemon's azure.sock: a sandboxed subprocess when possible, else a daemon in this process."""
    from tests.support.azure_fake import sandbox
    from tests.support.azure_fake.daemon import SandboxedDaemon

    reason = sandbox.available()
    if reason is None:
        show("unshare --mount --net ... secrets-store-csi-provider", serve_args, work)
        daemon = SandboxedDaemon(fake, work / "providers", serve_args[5:], log_level="info")  # type: ignore[arg-type]
        try:
            daemon.wait_ready(30)
            yield Path(daemon.socket_path("azure"))
        finally:
            daemon.stop()
        return
    print(f"   (no sandbox here: {reason}; the daemon runs inside this script)")
    yield from _in_process(fake, work, serve_args)


def _in_process(fake: object, work: Path, serve_args: list[str]) -> Iterator[Path]:
    from provider.audit import AuditLog
    from provider.backends import create_backend
    from provider.cli import build_parser
    from provider.files import VersionKey
    from provider.server import ProviderDaemon
    from tests.support.azure_fake.resolver import resolve_to_fake
    from tests.support.azure_fake.server import IMDS_HOST

    os.environ["REQUESTS_CA_BUNDLE"] = str(fake.ca.ca_file)  # type: ignore[attr-defined]
    os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = f"https://{IMDS_HOST}"
    args = build_parser().parse_args(serve_args)
    with resolve_to_fake(fake.serves, fake.port):  # type: ignore[attr-defined]
        daemon = ProviderDaemon(str(work / "providers"), {"azure": create_backend("azure", args)},
                                VersionKey.from_file(args.version_key_file), AuditLog(None))
        daemon.start()
        try:
            yield Path(daemon.socket_path("azure"))
        finally:
            daemon.stop(1.0)


def main() -> int:
    from provider.localdriver import PodIdentity
    from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE
    from tests.support.azure_fake.pki import new_key
    from tests.support.azure_fake.server import AzureFake
    from tests.support.service_accounts import Issuer

    shutil.rmtree(TARGET, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="sscsi-demo-azure-"))
    try:
        step("Azure fake on 127.0.0.1: Key Vault, Entra ID and IMDS over HTTPS (a throw-away CA)")
        with AzureFake(work / "fake", tenant_id=TENANT) as fake:
            issuer = Issuer()  # plays the cluster's service-account issuer
            fake.directory.trust_issuer(issuer.issuer, issuer.key.public_key())
            identity = fake.directory.add_app(client_id=CLIENT_ID)
            subject = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
            fake.directory.federate(identity, issuer.issuer, subject, EXCHANGE_AUDIENCE)
            vault = fake.add_vault("kvname")
            vault.grant(identity.principal_id, "secrets/get", "keys/get")
            vault.set_secret("secret1", SECRET_VALUE)
            vault.add_key("key1", new_key("P-256"))
            print(f"   tenant {TENANT}; identity {CLIENT_ID} federated with {subject}")
            print("   vault kvname.vault.azure.net: secret `secret1`, key `key1` (EC P-256)")

            version_key = work / "version.key"
            version_key.write_bytes(os.urandom(32))
            serve = ["serve", "--provider-dir", str(work / "providers"), "--backends", "azure",
                     "--version-key-file", str(version_key), "--log-format", "text"]
            step("Start the provider daemon (socket $TMP/providers/azure.sock)")
            with daemon_socket(fake, work, serve) as socket_path:
                pod = PodIdentity.named(POD, NAMESPACE, SERVICE_ACCOUNT)
                token_file = work / "token.jwt"
                token_file.write_text(issuer.pod_token(namespace=NAMESPACE, service_account=SERVICE_ACCOUNT,
                                                       pod_name=POD, pod_uid=pod.uid, audience=AUDIENCE))
                token_file.chmod(0o600)
                step(f"Mount {SPC.relative_to(ROOT)} for pod {NAMESPACE}/{POD} into {TARGET.relative_to(ROOT)}")
                mount = [sys.executable, "-m", "provider", "mount", str(SPC.relative_to(ROOT)), "--target",
                         str(TARGET), "--socket", str(socket_path), "--namespace", NAMESPACE, "--service-account",
                         SERVICE_ACCOUNT, "--pod", POD, "--token", f"{AUDIENCE}={token_file}", "--show",
                         "--log-format", "text"]
                show("secrets-store-csi-provider", mount[3:], work)
                started = time.monotonic()
                done = subprocess.run(mount, cwd=ROOT, text=True, capture_output=True, check=False)
                print(done.stdout, end="")
                if done.returncode != 0:
                    print(done.stderr, file=sys.stderr)
                    return done.returncode
                print(f"   ({time.monotonic() - started:.2f}s, {len(fake.requests)} requests to the fake)")
        step(f"The mounted files in {TARGET.relative_to(ROOT)}")
        for name in ("secret1", "key1"):
            print(f"   $ cat {(TARGET / name).relative_to(ROOT)}")
            print((TARGET / name).read_text())
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())

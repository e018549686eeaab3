"""Lease-aware dynamic secrets through the daemon's socket, counted in OpenBao's audit log.

A pod's rotation polls get the same leased credentials (same bytes, same version) until two thirds of
the lease; then a renewable lease (or the token it hangs on) is renewed and kept, and anything else is
read anew. Another pod never gets them. Leases are short here (seconds) so the tests can wait for them.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from provider._proto import v1alpha1_pb2 as pb
from provider.localdriver import PodIdentity, build_mount_request, call_mount, check_response
from tests.support.daemon import Daemon, start_daemon
from tests.support.leases import LEASED_PKI_ROLE, NAMESPACE, RabbitMQFake, configure_leases
from tests.support.openbao import Cluster, daemon_env, vault_spc

ENGINES = {"rabbitmq": ("6s", "1h"), "rabbitmq-capped": ("6s", "7s"), "rabbitmq-long": ("1h", "1h")}
ROLES = {"lease-role": ("lease-sa", "1h"), "short-token-role": ("lease-short", "6s")}


@pytest.fixture(scope="module")
def rabbitmq(cluster: Cluster) -> Iterator[RabbitMQFake]:
    fake = RabbitMQFake()
    configure_leases(cluster.bao, fake, ENGINES, ROLES)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def daemon(cluster: Cluster, rabbitmq: RabbitMQFake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    directory = tmp_path_factory.mktemp("vault-leases")
    key = directory / "version.key"
    key.write_bytes(os.urandom(32))
    with start_daemon(directory / "providers", ["vault"], ["--vault-addr", cluster.bao.address, "--vault-mount",
                      "jwt", "--version-key-file", str(key)], env=daemon_env(cluster, directory)) as running:
        yield running


def new_pod(service_account: str = "lease-sa") -> PodIdentity:
    return PodIdentity(f"app-{uuid.uuid4().hex[:6]}", NAMESPACE, str(uuid.uuid4()), service_account)


def mount(daemon: Daemon, cluster: Cluster, pod: PodIdentity, spc: dict[str, object]) -> pb.MountResponse:
    token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    response = call_mount(daemon.socket_path("vault"), build_mount_request(spc, pod, tokens={"vault": token}),
                          timeout=30)
    check_response(response)
    return response


def files(response: pb.MountResponse) -> dict[str, bytes]:
    return {f.path: f.contents for f in response.files}


def versions(response: pb.MountResponse) -> dict[str, str]:
    return {v.id: v.version for v in response.object_version}


def credentials_spc(mount_path: str, role: str = "lease-role") -> dict[str, object]:
    return vault_spc(f"""
- {{objectName: username, secretPath: {mount_path}/creds/app, secretKey: username}}
- {{objectName: password, secretPath: {mount_path}/creds/app, secretKey: password}}
- {{objectName: lease.json, secretPath: {mount_path}/creds/app}}
""", name=f"creds-{mount_path}", roleName=role)


CERT_SPC = vault_spc(f"""
- objectName: tls.crt
  secretPath: pki/issue/{LEASED_PKI_ROLE}
  method: PUT
  secretArgs: {{common_name: app.example.com}}
  secretKey: certificate
- objectName: tls.key
  secretPath: pki/issue/{LEASED_PKI_ROLE}
  method: PUT
  secretArgs: {{common_name: app.example.com}}
  secretKey: private_key
""", name="leased-cert", roleName="lease-role")


def test_a_leased_certificate_is_kept_until_two_thirds_of_its_lease(daemon: Daemon, cluster: Cluster) -> None:
    # Not renewable (PKI): kept for 4 of its 6 seconds, then a new one. Another pod never gets it.
    pod, other = new_pod(), new_pod()
    mark = cluster.bao.audit_mark()
    issued = time.monotonic()
    first = mount(daemon, cluster, pod, CERT_SPC)
    polls = [mount(daemon, cluster, pod, CERT_SPC) for _ in range(3)]
    assert cluster.bao.count(mark, f"pki/issue/{LEASED_PKI_ROLE}") == 1
    assert all(files(p) == files(first) and versions(p) == versions(first) for p in polls)
    theirs = mount(daemon, cluster, other, CERT_SPC)
    assert files(theirs)["tls.crt"] != files(first)["tls.crt"]
    assert cluster.bao.count(mark, f"pki/issue/{LEASED_PKI_ROLE}") == 2
    time.sleep(max(0.0, issued + 4.4 - time.monotonic()))
    later = mount(daemon, cluster, pod, CERT_SPC)
    assert cluster.bao.count(mark, f"pki/issue/{LEASED_PKI_ROLE}") == 3
    assert files(later)["tls.crt"] != files(first)["tls.crt"]
    assert versions(later) != versions(first)


def test_renewable_leases_and_their_tokens_are_renewed_at_two_thirds(daemon: Daemon, cluster: Cluster,
                                                                      rabbitmq: RabbitMQFake) -> None:
    renewed = new_pod()  # 6 s lease, renewable up to an hour: renewed and kept
    capped = new_pod()  # 6 s lease capped at 7 s: a renewal cannot extend it, so new credentials
    token_bound = new_pod("lease-short")  # 1 h lease on a 6 s token: the token is renewed, the lease kept
    cases = ((renewed, credentials_spc("rabbitmq")), (capped, credentials_spc("rabbitmq-capped")),
             (token_bound, credentials_spc("rabbitmq-long", role="short-token-role")))
    mark = cluster.bao.audit_mark()
    started = time.monotonic()
    first = [mount(daemon, cluster, pod, spc) for pod, spc in cases]
    assert [cluster.bao.count(mark, f"{m}/creds/app") for m in ENGINES] == [1, 1, 1]
    assert all(files(r)["username"].decode() in rabbitmq.users for r in first)
    assert [files(mount(daemon, cluster, pod, spc)) for pod, spc in cases] == [files(r) for r in first]
    time.sleep(max(0.0, started + 4.4 - time.monotonic()))
    later = [mount(daemon, cluster, pod, spc) for pod, spc in cases]
    assert [cluster.bao.count(mark, f"{m}/creds/app") for m in ENGINES] == [1, 2, 1]
    assert cluster.bao.count(mark, "sys/leases/renew") == 2  # the renewed and the capped lease
    assert cluster.bao.count(mark, "auth/token/renew-self") == 1
    assert (files(later[0]), versions(later[0])) == (files(first[0]), versions(first[0]))
    assert (files(later[2]), versions(later[2])) == (files(first[2]), versions(first[2]))
    assert files(later[1])["username"] != files(first[1])["username"]
    assert versions(later[1])["username"] != versions(first[1])["username"]
    assert files(later[0])["username"].decode() in rabbitmq.users

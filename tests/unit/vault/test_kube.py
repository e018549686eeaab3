"""provider/kube.py: credentials from KUBECONFIG, and TokenRequest against the stub API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import yaml

from provider.kube import KubeError, KubeUnavailable, TokenRequester, load_connection
from tests.support.kubeapi import KubeAPI
from tests.support.service_accounts import Issuer


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeAPI]:
    api = KubeAPI(Issuer(), forbidden={"test/locked"})
    yield api
    api.stop()


def kubeconfig(path: Path, user: dict[str, object], server: str = "http://127.0.0.1:1") -> Path:
    path.write_text(yaml.safe_dump({
        "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }))
    return path


def test_token_request_is_bound_to_the_pod(kube: KubeAPI, tmp_path: Path) -> None:
    requester = TokenRequester({"KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "config"))})
    issued = requester.request_token("test", "nginx", "pod-a", "uid-a", ["custom-audience"], timeout=5)
    claims = jwt.decode(issued.token, kube.issuer.key.public_key(), algorithms=["RS256"], audience="custom-audience")
    assert claims["kubernetes.io"]["pod"] == {"name": "pod-a", "uid": "uid-a"}
    assert claims["sub"] == "system:serviceaccount:test:nginx"
    record = kube.token_requests[-1]
    assert (record.audiences, record.expiration_seconds, record.bound["kind"]) == (["custom-audience"], 600, "Pod")


@pytest.mark.parametrize(
    ("namespace", "account", "token", "status"),
    [("test", "locked", None, 403), ("test", "nginx", "wrong-credential", 401)],
)
def test_token_request_refusals(kube: KubeAPI, tmp_path: Path, namespace: str, account: str, token: str | None,
                                status: int) -> None:
    path = kubeconfig(tmp_path / "config", {"token": token or kube.provider_token}, kube.url)
    with pytest.raises(KubeError) as caught:
        TokenRequester({"KUBECONFIG": str(path)}).request_token(namespace, account, "p", "u", [], timeout=5)
    assert caught.value.status == status
    assert kube.provider_token not in caught.value.message


def test_unreachable_api_server(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", {"token": "t"}, "http://127.0.0.1:1")
    with pytest.raises(KubeError) as caught:
        TokenRequester({"KUBECONFIG": str(path)}).request_token("n", "s", "p", "u", [], timeout=2)
    assert caught.value.status == 0


def test_token_file_is_relative_to_the_kubeconfig_and_re_read(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("first\n")
    connection = load_connection({"KUBECONFIG": str(kubeconfig(tmp_path / "config", {"tokenFile": "token"}))})
    assert connection.bearer() == "first"
    (tmp_path / "token").write_text("second")
    assert connection.bearer() == "second"


@pytest.mark.parametrize(
    ("user", "message"),
    [({"exec": {"command": "aws"}}, "exec or auth-provider"), ({"auth-provider": {"name": "gcp"}}, "exec")],
)
def test_plugins_are_not_supported(tmp_path: Path, user: dict[str, object], message: str) -> None:
    with pytest.raises(KubeUnavailable, match=message):
        load_connection({"KUBECONFIG": str(kubeconfig(tmp_path / "config", user))})


@pytest.mark.parametrize(
    ("environ", "message"),
    [({}, "KUBECONFIG is not set"), ({"KUBECONFIG": "/nonexistent/config"}, "cannot read KUBECONFIG")],
)
def test_no_credentials(environ: dict[str, str], message: str) -> None:
    with pytest.raises(KubeUnavailable, match=message):
        load_connection(environ)

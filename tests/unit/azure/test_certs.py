"""PKCS#12 → PEM, chain order, JWK → public key: TestDecodePKCS12, TestFetchCertChain*, TestGetCurve,
TestParsePrivateKey, TestSplitCertAndKey, TestGetCertificate, as table tests over generated material."""

from __future__ import annotations

import base64
import itertools
import logging

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provider.backends.azure import certs
from tests.support.azure_fake.pki import Chain, Issued, issue, make_chain, new_key, pfx, pfx_in_order
from tests.support.azure_fake.store import jwk_of


@pytest.fixture(scope="module")
def ec_chain() -> Chain:
    return make_chain("ec", intermediates=1)


@pytest.fixture(scope="module")
def rsa_chain_leaf_without_ski() -> Chain:
    return make_chain("rsa", intermediates=2, leaf_ski=False)


def pfx_text(key: object, order: list[Issued]) -> str:
    return base64.b64encode(pfx(key, order)).decode()  # type: ignore[arg-type]


def blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(kind, DER) of each PEM block, to compare content regardless of line layout."""
    return [(b.kind, base64.b64decode(b"".join(b.text.splitlines()[1:-1]))) for b in certs.pem_blocks(data)]


def cert_blocks(chain: list[Issued]) -> list[tuple[str, bytes]]:
    return [("CERTIFICATE", c.der) for c in chain]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_ec_chain_in_every_order_comes_out_leaf_intermediate_root(ec_chain: Chain, order: tuple[int, ...]) -> None:
    given = [ec_chain.leaf_to_root[i] for i in order]
    out = certs.pkcs12_to_pem(pfx_text(None, given), construct_chain=True, object_id="secret/c")
    assert blocks(out) == cert_blocks(ec_chain.leaf_to_root)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_leaf_without_ski_still_orders(rsa_chain_leaf_without_ski: Chain, order: tuple[int, ...]) -> None:
    chain = rsa_chain_leaf_without_ski.leaf_to_root  # server, intermediate2, intermediate1, root
    out = certs.pkcs12_to_pem(pfx_text(None, [chain[i] for i in order]), construct_chain=True, object_id="c")
    assert blocks(out) == cert_blocks(chain)


@pytest.mark.parametrize("others", [(1, 2), (2, 1)])
def test_key_then_chain_with_the_key_certificate_stored_first(ec_chain: Chain, others: tuple[int, int]) -> None:
    chain = ec_chain.leaf_to_root
    out = certs.pkcs12_to_pem(pfx_text(ec_chain.leaf.key, [chain[0], *(chain[i] for i in others)]), True, "c")
    assert blocks(out) == [("PRIVATE KEY", ec_chain.leaf.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        *cert_blocks(chain)]


def test_one_certificate_and_key(ec_chain: Chain) -> None:
    out = certs.pkcs12_to_pem(pfx_text(ec_chain.leaf.key, [ec_chain.leaf]), True, "c")
    assert [kind for kind, _ in blocks(out)] == ["PRIVATE KEY", "CERTIFICATE"]
    assert out.startswith(b"-----BEGIN PRIVATE KEY-----\n") and out.endswith(b"-----END CERTIFICATE-----\n")


@pytest.mark.parametrize("kind", ["rsa", "P-256", "P-384", "P-521"])
def test_private_keys_become_pkcs8(kind: str) -> None:
    key = new_key(kind)
    leaf = issue("leaf", key)
    out = certs.pkcs12_to_pem(pfx_text(key, [leaf]), True, "c")
    loaded = serialization.load_pem_private_key(out, None)
    assert loaded.public_key().public_numbers() == key.public_key().public_numbers()
    assert out.startswith(b"-----BEGIN PRIVATE KEY-----\n")


def key_block(chain: Chain) -> tuple[str, bytes]:
    return ("PRIVATE KEY", chain.leaf.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


# (case, the PFX's certificate bags by name, --construct-pem-chain, the certificates written, warned)
ORDER_TABLE = [
    ("complete, root first", ["root", "leaf", "inter"], True, ["leaf", "inter", "root"], False),
    ("complete, leaf last", ["inter", "root", "leaf"], True, ["leaf", "inter", "root"], False),
    ("complete, leaf first", ["leaf", "root", "inter"], True, ["leaf", "inter", "root"], False),
    ("intermediate missing, root first", ["root", "leaf"], True, ["root", "leaf"], True),
    ("intermediate missing, leaf first", ["leaf", "root"], True, ["leaf", "root"], True),
    ("root missing is complete", ["inter", "leaf"], True, ["leaf", "inter"], False),
    ("leaf alone", ["leaf"], True, ["leaf"], False),
    ("no chain construction, root first", ["root", "leaf", "inter"], False, ["root", "leaf", "inter"], False),
    ("no chain construction, leaf last", ["inter", "root", "leaf"], False, ["inter", "root", "leaf"], False),
]


@pytest.mark.parametrize(("bags", "construct", "expected", "warned"), [c[1:] for c in ORDER_TABLE],
                         ids=[c[0] for c in ORDER_TABLE])
def test_certificate_order_follows_the_official_provider(
    ec_chain: Chain, caplog: pytest.LogCaptureFixture, bags: list[str], construct: bool, expected: list[str],
    warned: bool,
) -> None:
    named = {"leaf": ec_chain.leaf, "inter": ec_chain.intermediates[0], "root": ec_chain.root}
    value = base64.b64encode(pfx_in_order(ec_chain.leaf.key, [named[n] for n in bags])).decode()
    with caplog.at_level(logging.WARNING, logger="provider.backends.azure.certs"):
        out = certs.pkcs12_to_pem(value, construct, "secret/c")
    assert blocks(out) == [key_block(ec_chain), *cert_blocks([named[n] for n in expected])]
    warnings = [r for r in caplog.records if "certificate chain is not complete" in r.getMessage()]
    assert [r.getMessage() for r in warnings] == ([certs.CHAIN_INCOMPLETE_WARNING] if warned else [])
    assert all(r.fields == {"object": "secret/c"} for r in warnings)  # type: ignore[attr-defined]


def test_the_pfx_order_is_read_from_encrypted_bags(ec_chain: Chain) -> None:
    from provider.backends.azure import pfxorder

    given = [ec_chain.root, ec_chain.leaf, ec_chain.intermediates[0]]
    ordered = pfxorder.certificates_in_pfx_order(pfx_in_order(ec_chain.leaf.key, given, b"pw"), b"pw")
    assert ordered == [c.cert for c in given]


def test_a_pfx_this_reader_cannot_take_apart_keeps_the_key_certificate_first(
    ec_chain: Chain, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from provider.backends.azure import pfxorder

    monkeypatch.setattr(pfxorder, "certificates_in_pfx_order", lambda pfx, password: None)
    value = base64.b64encode(pfx_in_order(ec_chain.leaf.key, [ec_chain.root, ec_chain.leaf])).decode()
    with caplog.at_level(logging.WARNING, logger="provider.backends.azure.certs"):
        out = certs.pkcs12_to_pem(value, True, "c")
    assert blocks(out)[1:] == cert_blocks([ec_chain.leaf, ec_chain.root])
    assert [r.getMessage() for r in caplog.records] == [certs.CHAIN_INCOMPLETE_KEY_FIRST_WARNING]


@pytest.mark.parametrize("data", [b"", b"0", b"\x30\x80\x02\x01\x03", b"\x30\x03\x02\x01\x03", b"garbage" * 9])
def test_what_is_not_a_pfx_gives_no_order(data: bytes) -> None:
    from provider.backends.azure import pfxorder

    assert pfxorder.certificates_in_pfx_order(data, None) is None


def test_pkcs12_key_derivation_matches_openssl(ec_chain: Chain) -> None:
    # OpenSSL verifies the MAC of the copy with this derivation: a wrong one would not load at all.
    from provider.backends.azure import pfxorder

    given = [ec_chain.intermediates[0], ec_chain.leaf]
    for password in (None, b""):
        assert pfxorder.certificates_in_pfx_order(pfx_in_order(ec_chain.leaf.key, given), password) == \
            [c.cert for c in given]


@pytest.mark.parametrize(
    ("description", "build", "expected"),
    [
        ("one self-signed", lambda c: [c.root], [0]),
        ("leaf without AKI", lambda c: [issue("x", new_key(), c.root, aki=False), c.root], None),
        ("two unrelated roots", lambda c: [c.root, make_chain().root], None),
        ("leaf and issuer", lambda c: [c.intermediates[0], c.leaf], [1, 0]),
    ],
)
def test_chain_order_rule(ec_chain: Chain, description: str, build: object, expected: list[int] | None) -> None:
    chain = [i.cert for i in build(ec_chain)]  # type: ignore[operator]
    assert certs.chain_order(chain) == expected, description


def test_a_cycle_is_an_incomplete_chain() -> None:
    key_a, key_b = new_key(), new_key()
    a = issue("a", key_a, Issued(issue("b", key_b).cert, key_b))
    b = issue("b", key_b, Issued(a.cert, key_a))
    assert certs.chain_order([a.cert, b.cert]) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [("not base64!", "not base64 PKCS#12"), (base64.b64encode(b"garbage").decode(), "not a PKCS#12 file")],
)
def test_bad_pkcs12(value: str, message: str) -> None:
    with pytest.raises(certs.MaterialError, match=message):
        certs.pkcs12_to_pem(value, True, "c")


def test_certificate_pem_wraps_the_der_bytes() -> None:
    # TestGetCertificate: CER "test"
    assert certs.pem_certificate(b"test") == b"-----BEGIN CERTIFICATE-----\ndGVzdA==\n-----END CERTIFICATE-----\n"
    long = certs.pem_certificate(bytes(100))
    assert [len(line) for line in long.splitlines()[1:-1]] == [64, 64, 8]  # 136 base64 characters


def test_split_cert_and_key(ec_chain: Chain) -> None:
    # TestSplitCertAndKey: server + key; root + intermediate + server + key (input order kept)
    key = ec_chain.leaf.key_pem
    assert certs.split_cert_and_key(ec_chain.leaf.pem + key) == (ec_chain.leaf.pem, key)
    chain = ec_chain.root.pem + ec_chain.intermediates[0].pem + ec_chain.leaf.pem
    assert certs.split_cert_and_key(chain + key) == (chain, key)
    assert certs.split_cert_and_key(key + chain) == (chain, key)


@pytest.mark.parametrize("kind", ["rsa", "P-256", "P-384", "P-521"])
def test_jwk_to_subject_public_key_info(kind: str) -> None:
    key = new_key(kind)
    jwk = jwk_of(key)
    fields = {name: _b64url(jwk[name]) if name in jwk else None for name in ("n", "e", "x", "y")}
    fields["crv"] = jwk.get("crv")
    out = certs.jwk_public_pem(jwk["kty"], fields)
    expected = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert out == expected
    assert out.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    hsm = certs.jwk_public_pem(jwk["kty"] + "-HSM", fields)
    assert hsm == expected


@pytest.mark.parametrize(
    ("kty", "fields", "message"),
    [
        ("EC", {"crv": "P-256K", "x": b"\x01", "y": b"\x02"}, "curve P-256K is not supported"),
        ("oct", {}, "key type 'oct' currently not supported"),
        ("oct-HSM", {}, "key type 'oct-HSM' currently not supported"),
        ("RSA", {"n": None, "e": b"\x01\x00\x01"}, "the RSA key has no modulus"),
        ("EC", {"crv": "P-256", "x": b"\x01", "y": b"\x02"}, "is not a point on P-256"),
    ],
)
def test_unsupported_keys(kty: str, fields: dict[str, bytes | str | None], message: str) -> None:
    with pytest.raises(certs.MaterialError, match=message):
        certs.jwk_public_pem(kty, fields)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_pem_block_parser_keeps_headers_out_of_kinds(ec_chain: Chain) -> None:
    text = b"junk\n" + ec_chain.leaf.pem + b"\n\n" + ec_chain.leaf.key_pem.replace(b"\n", b"\r\n")
    kinds = [b.kind for b in certs.pem_blocks(text)]
    assert kinds == ["CERTIFICATE", "PRIVATE KEY"]
    assert x509.load_pem_x509_certificate(certs.pem_blocks(text)[0].text) == ec_chain.leaf.cert

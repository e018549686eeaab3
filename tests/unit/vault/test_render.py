"""secretKey values, whole responses and encodings → file bytes (official provider_test cases)."""

from __future__ import annotations

import base64

import pytest

from provider.backends.vault.render import decode, render_object, render_value, select_value, whole_response
from provider.gojson import JsonNumber, RenderError, go_float, go_json, parse_json


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [  # TestKeyFromData, with the data as Vault sends it (JSON text)
        ('{"foo": "bar", "baz": "zap"}', "foo", b"bar"),
        ('{"foo": "bar", "baz": "zap", "data": "hello"}', "data", b"hello"),
        ('{"data": {"foo": "bar"}}', "foo", b"bar"),
        ('{"foo": 10}', "foo", b"10"),
        ('{"foo": {"baz": "zap", "bar": "hop", "cheeses": {"cheddar": "8", "brie": 9}}}', "foo",
         b'{"bar":"hop","baz":"zap","cheeses":{"brie":9,"cheddar":"8"}}'),
        ('{"values": [6, "stilton", true]}', "values", b'[6,"stilton",true]'),
        ('{"n": 1.50}', "n", b"1.50"),
        ('{"n": 1e5}', "n", b"1e5"),
        ('{"b": false, "z": null}', "b", b"false"),
        ('{"b": false, "z": null}', "z", b"null"),
        ('{"s": "<a&b>"}', "s", b"<a&b>"),
        ('{"o": {"s": "<a&b>\\n\\u2028"}}', "o", b'{"s":"\\u003ca\\u0026b\\u003e\\n\\u2028"}'),
        ('{"o": ["caf\\u00e9", "\\u0001"]}', "o", '["café","\\u0001"]'.encode()),
        ('{"s": "caf\\u00e9"}', "s", "café".encode()),
        ('{"s": "\\ud800"}', "s", "\ufffd".encode()),
    ],
)
def test_key_from_data(data: str, key: str, expected: bytes) -> None:
    assert render_value(select_value(parse_json(data.encode()), key)) == expected


@pytest.mark.parametrize(
    "data",
    ['{"foo": "bar", "baz": "zap"}', '{"foo": "bar", "baz": "zap", "data": "hello"}', '{"data": {"foo": "bar"}}'],
)
def test_key_from_data_missing_key(data: str) -> None:
    with pytest.raises(KeyError):
        select_value(parse_json(data.encode()), "non-existing")


def test_whole_response_keeps_the_official_envelope_without_request_id() -> None:
    # TestHandleMountRequest's whole-response file; request_id is left empty (issue #474).
    response = parse_json(b'{"request_id":"1c7e0f3a","lease_id":"","renewable":false,"lease_duration":0,'
                          b'"data":{"the-key":"secret v1 from: /v1/path/two"},"wrap_info":null,"warnings":null,'
                          b'"auth":null}')
    assert whole_response(response) == (
        b'{"request_id":"","lease_id":"","lease_duration":0,"renewable":false,'
        b'"data":{"the-key":"secret v1 from: /v1/path/two"},"warnings":null}'
    )


@pytest.mark.parametrize(
    ("extra", "tail"),
    [
        (',"warnings":["w<1>"]', '"warnings":["w\\u003c1\\u003e"]}'),
        (',"mount_type":"kv"', '"warnings":null,"mount_type":"kv"}'),
        (',"lease_id":"db/creds/x/abc","lease_duration":3600,"renewable":true', '"warnings":null}'),
    ],
)
def test_whole_response_fields(extra: str, tail: str) -> None:
    response = parse_json(('{"request_id":"r","data":{"k":"v"}' + extra + "}").encode())
    rendered = whole_response(response).decode()
    assert rendered.endswith(tail)
    assert rendered.startswith('{"request_id":"","lease_id":')


def test_encoding_is_ignored_without_secret_key() -> None:
    response = {"data": {"k": "aGk="}}
    assert render_object(response, "", "base64") == whole_response(response)


@pytest.mark.parametrize(
    ("raw", "encoding", "expected"),
    [
        (b"hello", "utf-8", b"hello"),
        (b"aGVsbG8tc3luYzM=", "base64", b"hello-sync3"),
        (b"aGVsbG8t\nc3luYzM=\r\n", "base64", b"hello-sync3"),
        (b"", "base64", b""),
        (b"00ff10e2", "hex", b"\x00\xff\x10\xe2"),
        (b"00FF", "hex", b"\x00\xff"),
        (base64.b64encode(bytes(range(256))), "base64", bytes(range(256))),
    ],
)
def test_decode(raw: bytes, encoding: str, expected: bytes) -> None:
    assert decode(raw, encoding) == expected


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [(b"aGVsbG8", "base64"), (b"not base64!", "base64"), (b"abc", "hex"), (b"zz", "hex"), (b"aGk=aGk=", "base64")],
)
def test_decode_errors_do_not_echo_the_value(raw: bytes, encoding: str) -> None:
    with pytest.raises(RenderError) as caught:
        decode(raw, encoding)
    assert raw.decode() not in str(caught.value)
    assert f"not valid {encoding}" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.0, "1"), (1.5, "1.5"), (1e-7, "1e-7"), (1.5e-7, "1.5e-7"), (1e-5, "0.00001"), (1e21, "1e+21"),
     (1.5e16, "15000000000000000"), (-2.25, "-2.25"), (0.0, "0"), (123456.789, "123456.789")],
)
def test_go_float(value: float, expected: str) -> None:
    assert go_float(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [True, None]}, '{"a":[true,null],"b":1}'),
        (JsonNumber("1.50"), "1.50"),
        ("tab\tquote\"back\\slash\b\f", '"tab\\tquote\\"back\\\\slash\\b\\f"'),
        ("\x7f\u00e9", '"\x7f\u00e9"'),
    ],
)
def test_go_json(value: object, expected: str) -> None:
    assert go_json(value) == expected


@pytest.mark.parametrize("body", [b"-----BEGIN CERTIFICATE-----", b"NaN", b"{"])
def test_non_json_answers_are_rejected(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_json(body)

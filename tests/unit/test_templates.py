"""templates.py: the template language, table by table (input → expected output or error)."""

from __future__ import annotations

import pytest
import yaml

from provider.errors import ErrorKind, ProviderError
from provider.files import SecretFile
from provider.templates import apply_templates, parse_templates

FILES = [
    SecretFile("db-username", b"app", "db-username", "s1"),
    SecretFile("db-password", b"p@ss'word\n", "db-password", "s2"),
    SecretFile("nested/token", b"dG9rZW4=", "nested/token", "s3"),
    SecretFile("binary", b"\xff\x00", "binary", "s4"),
]


def templates(*entries: dict[str, object]) -> dict[str, str]:
    return {"templates": yaml.safe_dump(list(entries))}


def render(template: str) -> bytes:
    parsed = parse_templates(templates({"fileName": "out", "template": template}))
    return next(f for f in apply_templates(parsed, FILES) if f.path == "out").contents


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("plain text", b"plain text"),
        ("{{ db-username }}", b"app"),
        ("{{db-username}}:{{ db-password | trim }}", b"app:p@ss'word"),
        ("host:5432:*:{{ db-username }}:{{ db-password|trim }}\n", b"host:5432:*:app:p@ss'word\n"),
        ("PASSWORD={{ db-password | trim | shell }}", b"PASSWORD='p@ss'\\''word'"),
        ('{"password": {{ db-password | trim | json }}}', b'{"password": "p@ss\'word"}'),
        ("{{ nested/token | base64decode }}", b"token"),
        ("{{ db-username | base64 }}", b"YXBw"),
        ("{{ db-username | upper }}", b"APP"),
        ('{{ "{{" }} literal braces {{ "}}" }}', b"{{ literal braces }}"),
        ('{{ "a|b" | upper }}', b"A|B"),
        ("{{ binary }}", b"\xff\x00"),
        ("", b""),
    ],
)
def test_rendering(template: str, expected: bytes) -> None:
    assert render(template) == expected


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ("[unclosed", "not valid YAML"),
        ("fileName: x", "must be a YAML list"),
        (yaml.safe_dump(["x"]), "must be a mapping"),
        (yaml.safe_dump([{"template": "x"}]), "fileName must be a non-empty string"),
        (yaml.safe_dump([{"fileName": "x"}]), "template must be a string"),
        (yaml.safe_dump([{"fileName": "x", "template": "{{ a | nope }}"}]), "unknown filter 'nope'"),
        (yaml.safe_dump([{"fileName": "x", "template": "{{ a "}]), "is not closed"),
        (yaml.safe_dump([{"fileName": "x", "template": "{{ }}"}]), "empty"),
        (yaml.safe_dump([{"fileName": "x", "template": "{{ a b }}"}]), "neither a file name"),
        (yaml.safe_dump([{"fileName": "x", "template": "", "filePermission": "0999"}]), "not an octal mode"),
        (yaml.safe_dump([{"fileName": "x", "template": "", "filePermission": "01777"}]), "outside"),
        (yaml.safe_dump([{"fileName": "x", "template": "", "keepSources": "no"}]), "keepSources"),
        (yaml.safe_dump([{"fileName": "x", "template": "", "tempalte": ""}]), "unknown field 'tempalte'"),
        (yaml.safe_dump([{"fileName": "x", "template": ""}, {"fileName": "x", "template": ""}]), "unique"),
    ],
)
def test_errors_before_any_fetch(parameter: str, message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_templates({"templates": parameter})
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT and message in caught.value.message


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ missing }}", "refers to 'missing', which no object produced"),
        ("{{ binary | json }}", "needs UTF-8"),
        ("{{ db-username | base64decode }}", "not base64"),
    ],
)
def test_errors_at_render(template: str, message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        render(template)
    assert message in caught.value.message
    assert b"p@ss" not in caught.value.message.encode(), "no values in errors"


def test_no_templates_leaves_files_untouched() -> None:
    assert apply_templates(parse_templates({}), FILES) == FILES
    assert apply_templates(parse_templates({"templates": " "}), FILES) == FILES


def test_keep_sources_false_drops_only_the_sources() -> None:
    parsed = parse_templates(templates(
        {"fileName": ".pgpass", "template": "{{ db-username }}:{{ db-password | trim }}", "keepSources": False,
         "filePermission": "0600"},
        {"fileName": "env", "template": "T={{ nested/token }}"},
    ))
    out = apply_templates(parsed, FILES)
    assert [f.path for f in out] == ["nested/token", "binary", ".pgpass", "env"]
    pgpass = out[2]
    assert (pgpass.object_id, pgpass.mode, pgpass.contents) == ("template/.pgpass", 0o600, b"app:p@ss'word")


@pytest.mark.parametrize(
    ("entries", "what"),
    [
        ([{"fileName": "bomb", "template": "{{ db-username" + " | base64" * 60 + " }}"}], "'db-username | base64'"),
        ([{"fileName": "bomb", "template": '{{ "abc"' + " | base64" * 60 + " }}"}], "'literal | base64'"),
        ([{"fileName": "bomb", "template": ("{{ db-username" + " | base64" * 42 + " }}") * 4}],
         "'db-username | base64'"),  # 1.1 MB each: the fourth crosses the limit
        ([{"fileName": f"t{i}", "template": "{{ db-username" + " | base64" * 42 + " }}"} for i in range(4)],
         "'db-username | base64'"),  # the same over templates: the limit is for the whole mount
    ],
)
def test_output_is_bounded_as_it_grows(entries: list[dict[str, object]], what: str) -> None:
    with pytest.raises(ProviderError) as caught:
        apply_templates(parse_templates(templates(*entries)), FILES)
    assert caught.value.kind is ErrorKind.RESOURCE_EXHAUSTED
    name = entries[-1]["fileName"]
    assert caught.value.message.startswith(f"template {name!r} grows past the driver's 4194304-byte limit for a "
                                           f"whole mount at {what}")

"""spcyaml.py: SPC YAML within an alias budget, at every parse site (input → accepted, or the site's error)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from provider import spcyaml
from provider.backends.azure.objects import parse_objects as azure_objects
from provider.backends.vault.objects import parse_objects as vault_objects
from provider.backends.vault.yamlcore import TreeCache
from provider.errors import ErrorKind, ProviderError
from provider.templates import parse_templates


def bomb(levels: int = 9, indent: str = "") -> str:
    """A billion laughs: nine levels of nine aliases each, under 500 bytes."""
    lines = [f"{indent}l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{indent}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def shared_args(objects: int) -> str:
    """Honest reuse: one anchored secretArgs map given to every object."""
    first = ("- objectName: o0\n  secretPath: pki/issue/r\n  method: PUT\n"
             "  secretArgs: &args {common_name: a, ttl: 1h}\n")
    rest = "".join(f"- {{objectName: o{i}, secretPath: pki/issue/r, method: PUT, secretArgs: *args}}\n"
                   for i in range(1, objects))
    return first + rest


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        (bomb(), False),
        (bomb(levels=5), False),  # 9**4 * 9 nodes from 40 written ones
        (bomb(levels=4), True),  # 7,380 nodes added: under the floor of 10,000
        (shared_args(1000), True),  # 4,995 nodes added by aliases to 13,000 written
        ("a: &a [1, *a]", False),  # an alias inside its own anchor
        ("x: &c {a: 1}\ny: *c\nz: {<<: *c, b: 2}", True),
        ("- &big [" + ", ".join(["v"] * 20_000) + "]\n- *big\n", True),  # aliases add as many as written
        ("- &big [" + ", ".join(["v"] * 20_000) + "]\n- *big\n- *big\n", False),
    ],
)
def test_alias_budget(text: str, accepted: bool) -> None:
    for parse in (spcyaml.compose, spcyaml.load):
        if accepted:
            parse(text)
        else:
            with pytest.raises(spcyaml.ExcessiveAliasing):
                parse(text)


def test_the_refusal_names_the_rule_and_the_place() -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        spcyaml.load(bomb())
    assert "excessive aliasing" in str(caught.value) and "line 5" in str(caught.value)
    with pytest.raises(yaml.YAMLError, match=r"the alias \*a refers to a node that contains it"):
        spcyaml.load("a: &a [1, *a]")


def test_plain_scalars_read_as_pyyaml_reads_them() -> None:
    node = spcyaml.compose("a: plain\nb: 'quoted'\n")
    assert isinstance(node, yaml.MappingNode)
    assert [value.style for _, value in node.value] == [None, "'"]
    assert spcyaml.load("a: 0600\nb: true\nc: ~\n") == yaml.safe_load("a: 0600\nb: true\nc: ~\n")


SPC = "ns/spc"
AZURE_BOMB = "array:\n  - |\n" + bomb(indent="    ")


@pytest.mark.parametrize(
    ("parse", "message"),
    [
        (lambda: vault_objects(bomb(), SPC), f"SecretProviderClass {SPC}: 'objects' is not valid YAML: the "
                                             "document contains excessive aliasing"),
        (lambda: vault_objects("- objectName: a\n  secretPath: p\n  secretArgs:\n" + bomb(indent="    "), SPC),
         "'objects' is not valid YAML: the document contains excessive aliasing"),
        (lambda: azure_objects("x:\n" + bomb(indent="  ")), "objects is not valid YAML (the document contains "
                                                            "excessive aliasing"),
        (lambda: azure_objects(AZURE_BOMB), "object 0 in objects is not valid YAML (the document contains "
                                            "excessive aliasing"),
        (lambda: parse_templates({"templates": bomb()}), "templates is not valid YAML: the document contains "
                                                         "excessive aliasing"),
    ],
)
def test_every_site_refuses_alias_bombs_in_its_own_words(parse: Callable[[], object], message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse()
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert message in caught.value.message


def test_tree_cache_is_bounded_by_text_size() -> None:
    cache = TreeCache(max_text=100, budget=250)
    small = [f"- {{objectName: o{i}, secretPath: p}}" for i in range(20)]
    for text in small:
        assert cache.get(text) is cache.get(text)
    assert cache.chars <= 250 and len(cache) == 250 // len(small[0])
    big = "- {objectName: big, secretPath: p}" + " " * 200
    cache.get(big)
    assert big not in set(cache) and cache.chars <= 250

"""YAML that a SecretProviderClass author wrote (`objects`, `secretArgs`, `templates`), read within a budget.

Every SPC parameter holding YAML is read here, so one rule covers them all. PyYAML shares an anchored
node among its aliases, so a few hundred bytes of nested aliases describe a tree of billions of nodes:
nothing is copied while composing, but whatever walks the tree afterwards (a request body, a repr, a
merge key) does it billions of times. Like yaml.v3 (under the official providers), which refuses
"excessive aliasing" by comparing alias-expanded nodes with decoded ones, the composer here counts as it
goes: each node written in the text is one node, each alias is as many nodes as the subtree it names,
and the document is refused as soon as its aliases add more than MAX_ALIAS_NODES nodes or more nodes
than the text itself writes, whichever is larger. An alias to a node that is still open (a recursive
alias) is refused too, as yaml.v3 does. The counting happens before any consumer sees the tree, so
memory and time stay proportional to the text.

libyaml does the scanning when PyYAML was built with it (ten times faster; yaml.v3 is a port of it);
the composer is PyYAML's own, in Python, with the counting added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.events import AliasEvent, Event
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# Nodes that aliases may add beyond the text's own nodes, at least; yaml.v3 allows more (99% of a
# document may come from aliases), but everything here is rebuilt by a consumer, so the floor stays small.
MAX_ALIAS_NODES = 10_000

if yaml.__with_libyaml__:
    from yaml._yaml import CParser as _Parser  # type: ignore[import-not-found,unused-ignore]
else:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser as _PythonParser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, _PythonParser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            _PythonParser.__init__(self)


class ExcessiveAliasing(ComposerError):
    """A document whose aliases expand past the budget, or an alias inside the node it names."""


class _BudgetComposer(Composer):
    """PyYAML's composer, counting written and alias-expanded nodes as it composes."""

    if TYPE_CHECKING:  # given by the parser it is mixed with
        def check_event(self, *choices: type[Event]) -> bool: ...
        def peek_event(self) -> Event: ...

    def compose_document(self) -> Node | None:
        self._sizes: dict[int, int] = {}  # id(node) → nodes in its subtree, aliases expanded
        self._written = 0
        self._expanded = 0
        try:
            node: Node | None = super().compose_document()
        finally:
            self._sizes = {}
        return node

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            mark: Any = event.start_mark  # libyaml's Mark or PyYAML's
            target = super().compose_node(parent, index)
            size = self._sizes.get(id(target))
            if size is None:
                anchor = getattr(event, "anchor", "")
                raise ExcessiveAliasing(None, None, f"the alias *{anchor} refers to a node that contains it",
                                        mark)
            self._count(0, size, mark)
            return target
        node = super().compose_node(parent, index)
        if node is None:
            return None
        if isinstance(node, ScalarNode) and node.style == "":
            node.style = None  # libyaml's plain style, written as PyYAML's own parser writes it
        size = 1 + sum(self._sizes[id(child)] for child in _children(node))
        self._sizes[id(node)] = size
        self._count(1, 1, node.start_mark)
        return node

    def _count(self, written: int, expanded: int, mark: Any) -> None:
        self._written += written
        self._expanded += expanded
        added = self._expanded - self._written
        if added > max(MAX_ALIAS_NODES, self._written):
            raise ExcessiveAliasing(None, None, f"the document contains excessive aliasing (its aliases expand to "
                                    f"more than {max(MAX_ALIAS_NODES, self._written)} nodes)", mark)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class SpcLoader(_BudgetComposer, _Parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """The safe loader (no Python tags) with the alias budget; subclass it to change the resolvers."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


def compose(text: str) -> Node | None:
    """The YAML tree of a text (None for an empty one); yaml.YAMLError, or RecursionError when it nests deeper
    than the composer recurses."""
    loader = SpcLoader(text)
    try:
        node: Node | None = loader.get_single_node()
        return node
    except yaml.MarkedYAMLError as exc:
        raise _too_deep(exc) from None
    finally:
        loader.dispose()


def load(text: str, loader: type[SpcLoader] = SpcLoader) -> Any:
    """The Python value of a text, as yaml.safe_load gives it, within the alias budget."""
    reader = loader(text)
    try:
        return reader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise _too_deep(exc) from None
    finally:
        reader.dispose()


def _too_deep(exc: yaml.MarkedYAMLError) -> BaseException:
    """libyaml's own nesting limit (1,000 levels) reads as the composer's: one RecursionError for both."""
    if "maximum nesting depth" in str(exc.problem):
        return RecursionError(exc.problem)
    return exc

"""Scalar values as SecretProviderClasses and flags write them, read the way the Go providers read them.

Booleans: Go's strconv.ParseBool (1, t, T, TRUE, true, True and their false twins), which the official
providers use for every boolean parameter. A parameter whose accepted set differs says so in its
declaration by naming another BoolSyntax (the Azure daemon flags, for one, have always taken yes/on/no/off
in any letter case).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BoolSyntax:
    """Which texts mean true and false; `fold_case` compares them in lower case."""

    true: frozenset[str]
    false: frozenset[str]
    fold_case: bool = False

    def parse(self, text: str) -> bool | None:
        """True or False, or None when the text is neither (the caller words the error)."""
        key = text.lower() if self.fold_case else text
        if key in self.true:
            return True
        if key in self.false:
            return False
        return None


GO_BOOL = BoolSyntax(frozenset({"1", "t", "T", "TRUE", "true", "True"}),
                     frozenset({"0", "f", "F", "FALSE", "false", "False"}))
# Flags of the daemon that take a word: what the first release accepted, kept so no manifest breaks.
FLAG_BOOL = BoolSyntax(frozenset({"1", "t", "true", "yes", "on"}), frozenset({"0", "f", "false", "no", "off"}),
                       fold_case=True)

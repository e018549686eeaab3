"""Scalar values as SecretProviderClasses and flags write them, read the way the Go providers read them.

Booleans: Go's strconv.ParseBool (1, t, T, TRUE, true, True and their false twins), which the official
providers use for every boolean parameter. A parameter whose accepted set differs says so in its
declaration by naming another BoolSyntax (the Azure daemon flags, for one, have always taken yes/on/no/off
in any letter case).

Whole numbers: the argparse `type` of the daemon's counting flags (the core's and the backends'), whose
error names the accepted range, so a bad value stops `serve` with one line before anything starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BoolSyntax:
    """Which texts mean true and false; `fold_case` compares them in lower case."""

    true: frozenset[str]
    false: frozenset[str]
    fold_case: bool = False

    def words(self) -> str:
        """The accepted texts, for an error message: "1, t, true or 0, f, false"."""
        return f"{', '.join(sorted(self.true))} or {', '.join(sorted(self.false))}" + \
            (" (any letter case)" if self.fold_case else "")

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


def whole_number_from(minimum: int) -> Callable[[str], int]:
    """An argparse `type`: a whole number of at least `minimum`, else ArgumentTypeError naming the range."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; it must be at least {minimum}") \
                from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return whole_number

"""redaction.KnownSecrets: credentials seen in requests are removed from any text, whatever their shape."""

from __future__ import annotations

from provider.redaction import REDACTED, KnownSecrets


def test_known_values_are_removed_wherever_they_appear() -> None:
    known = KnownSecrets()
    known.add(["client-secret-1", "short", "client-secret-1-and-more"])
    text = "AADSTS7000215: Invalid client secret provided: 'client-secret-1-and-more' (client-secret-1); short"
    assert known.scrub(text) == f"AADSTS7000215: Invalid client secret provided: '{REDACTED}' ({REDACTED}); short"


def test_the_oldest_values_are_forgotten_past_the_limit() -> None:
    known = KnownSecrets()
    known.add(f"secret-number-{i:05d}" for i in range(KnownSecrets.LIMIT + 10))
    assert known.scrub("secret-number-00000") == "secret-number-00000"
    assert known.scrub(f"secret-number-{KnownSecrets.LIMIT + 9:05d}") == REDACTED
    known.add(["secret-number-00020"])  # seen again: now the newest
    known.add(f"later-secret-{i:05d}" for i in range(KnownSecrets.LIMIT - 1))
    assert known.scrub("secret-number-00020") == REDACTED

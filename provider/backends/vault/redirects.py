"""Which redirect from Vault the provider follows: the rule, apart from any HTTP library.

A redirected request is sent again with the pod's Vault token or, for a login, its JWT, so the target
must be a place the operator lets credentials go. Like the official Vault client, the provider turns
its HTTP library's automatic redirects off and follows at most one itself (an HA standby pointing at
the active node), never from https to plain http; in addition, the target must be a plain URL that the
Vault policy allows (the allowlist, with its path narrowing, when set). The transport asks `decide`
before it sends anything to the target.
"""

from __future__ import annotations

from urllib.parse import urljoin

from provider.backends.vault.policy import VaultPolicy
from provider.errors import ErrorKind, ProviderError
from provider.plainurl import parse_plain_url, shown_url

MAX_REDIRECTS = 1
# The statuses that ask for the same request elsewhere (303 asks for a GET instead, which no Vault sends).
FOLLOWED_STATUSES = frozenset({301, 302, 307, 308})
REDIRECT_STATUSES = FOLLOWED_STATUSES | {303}


class RedirectRefused(ProviderError):
    """A redirect the provider did not follow; the message names the target (without credentials) and why."""

    def __init__(self, kind: ErrorKind, target: str, reason: str) -> None:
        super().__init__(kind, f"Vault redirected the request to {shown_url(target)!r}, which the provider does not "
                               f"follow: {reason}")
        self.target = target
        self.reason = reason


def decide(next_url: str, current_url: str, policy: VaultPolicy, *, status: int = 307, followed: int = 0) -> str:
    """The URL to send the request to once more, rebuilt from its checked parts; RedirectRefused saying why not.

    next_url is the Location header (it may be relative to current_url, the URL just requested);
    followed is how many redirects this request has already followed."""
    target = urljoin(current_url, next_url.strip()) if "://" in current_url else next_url
    if followed >= MAX_REDIRECTS:
        raise RedirectRefused(ErrorKind.UNAVAILABLE, target,
                              f"the provider follows at most {MAX_REDIRECTS} redirect per request (an HA standby "
                              "pointing at the active node); check that Vault has an active node")
    if status not in FOLLOWED_STATUSES:
        raise RedirectRefused(ErrorKind.UNAVAILABLE, target,
                              f"HTTP {status} asks for a different request, not the same one elsewhere")
    current_scheme = current_url.partition("://")[0].lower()
    if current_scheme not in ("http", "https"):
        raise RedirectRefused(ErrorKind.PERMISSION_DENIED, target,
                              f"a Vault at a {current_scheme or 'unix'}:// address is never redirected")
    try:
        parts = parse_plain_url(target, allow_query=True)
    except ValueError as exc:
        raise RedirectRefused(ErrorKind.PERMISSION_DENIED, target,
                              f"it is not a plain http(s) URL ({exc})") from None
    if current_scheme == "https" and parts.scheme != "https":
        raise RedirectRefused(ErrorKind.PERMISSION_DENIED, target,
                              "it goes from https to plain http, which would send credentials unencrypted")
    if not policy.allows_address(parts.text):
        raise RedirectRefused(ErrorKind.PERMISSION_DENIED, target,
                              "it is not under an address this provider's --allowed-vault-addresses allows; "
                              "the operator can add the Vault node's address")
    return parts.text

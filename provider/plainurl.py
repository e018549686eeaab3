"""Plain URLs, `scheme://host[:port][/path]`, parsed strictly and rebuilt from the parts that were checked.

URL parsers disagree about anything else: `http://a:1\\@b:2` is host b to urlsplit and host a to urllib3,
so an address checked by one and dialled by the other goes somewhere nobody allowed. Refusing every URL
that is not plain (userinfo, backslashes, whitespace, control characters, query, fragment, bad escapes)
and handing on only the rebuilt text makes the address checked the address dialled. Dot segments
(`.`, `..`, also percent-encoded) are refused too: a path is compared as written, and a server or
gateway that resolves them would otherwise serve a path outside the one that was allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/[A-Za-z0-9._~!$&'()*+,;=:%/-]*)?"
    r"(?:\?(?P<query>[A-Za-z0-9._~!$&'()*+,;=:%/?@-]*))?",
    re.ASCII,
)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SEGMENT_SEPARATORS = re.compile(r"[/\\]")


@dataclass(frozen=True)
class PlainURL:
    scheme: str  # lower case: http or https
    host: str  # lower case; an IPv6 address keeps its brackets
    port: int | None  # as written; None when the URL names none
    path: str  # "" or "/a/b": no empty segments, no trailing slash
    query: str = ""  # only where a query was allowed

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.scheme]

    @property
    def text(self) -> str:
        """The URL rebuilt from its checked parts: what is handed to the HTTP stack."""
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}{port}{self.path}{query}"


def parse_plain_url(text: str, allow_query: bool = False) -> PlainURL:
    """The parts of an http(s) URL that is plain; ValueError saying what is wrong with any other."""
    found = _URL.fullmatch(text)
    if found is None:
        raise ValueError(_not_plain(text, allow_query))
    scheme = found["scheme"].lower()
    if scheme not in SCHEMES:
        raise ValueError(f"its scheme {scheme!r} is not http or https")
    port = int(found["port"]) if found["port"] is not None else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"its port {port} is not between 1 and 65535")
    path, query = found["path"] or "", found["query"]
    if query is not None and not allow_query:
        raise ValueError("it has a query ('?'); a Vault address is scheme://host[:port][/path]")
    if _BAD_ESCAPE.search(path) or _BAD_ESCAPE.search(query or ""):
        raise ValueError("it has a '%' that is not a %XX escape")
    if has_dot_segment(path):
        raise ValueError("its path has a '.' or '..' segment (also when percent-encoded)")
    segments = [s for s in path.split("/") if s]
    return PlainURL(scheme=scheme, host=found["host"].lower(), port=port,
                    path="/" + "/".join(segments) if segments else "", query=query or "")


def _not_plain(text: str, allow_query: bool) -> str:
    """Why text is not a plain URL, for the message."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        return "it has whitespace or a control character"
    if "\\" in text:
        return "it has a backslash"
    authority = text.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        return "it has user information ('user@'); a Vault address names no user"
    if "#" in text:
        return "it has a fragment ('#')"
    if "?" in text and not allow_query:
        return "it has a query ('?'); a Vault address is scheme://host[:port][/path]"
    if "://" not in text:
        return "it is not of the form scheme://host[:port][/path]"
    return "it is not of the form scheme://host[:port][/path] with a host name or IP address"


def has_dot_segment(path: str) -> bool:
    """True when a segment of path is `.` or `..`, as written or once or twice percent-decoded; a backslash
    counts as a separator, as some servers take it."""
    seen = path
    for _ in range(3):
        if any(segment in (".", "..") for segment in _SEGMENT_SEPARATORS.split(seen)):
            return True
        decoded = unquote(seen)
        if decoded == seen:
            return False
        seen = decoded
    return True  # escaped three times over: no path needs that


MAX_SHOWN = 200
_USERINFO = re.compile(r"(?<=//)[^/?#]*@")


def shown_url(text: str) -> str:
    """A URL as an error message may show it: no user information or query (either may hold a credential),
    no control characters, at most MAX_SHOWN characters."""
    text = _USERINFO.sub("…@", text).split("?", 1)[0].split("#", 1)[0]
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"… ({len(text) - MAX_SHOWN} more characters)"

"""Server URLs: ``smtps://user:password@mail.example.com?timeout=10``.

:func:`parse_url` reads one URL into a :class:`ServerURL`: the server it
names, how to reach it (implicit TLS, STARTTLS required, LMTP) and the
per-server options of its query. A ``servers=`` entry holding ``://`` is a
URL; anything else is a plain ``host[:port]`` entry.

| scheme | means | default port |
|---|---|---|
| ``smtp://host[:port]`` | the same as ``host[:port]`` | the call's (25, 465 with ``tlsimport``) |
| ``smtps://host[:port]`` | implicit TLS (RFC 8314 section 3.3) | 465 |
| ``smtp+starttls://host[:port]`` | STARTTLS required (``tlspolicy="secure"``) | 587 (submission, RFC 6409) |
| ``lmtp://host[:port]`` | LMTP (RFC 2033) over TCP | 24 (by convention: LMTP has no assigned port) |
| ``lmtp+unix:///path`` | LMTP over a Unix socket | -- |

``user[:password]@`` before the host is percent-decoded (``%40`` for an
``@`` in a user name). The query takes the options of ``QUERY_OPTIONS``:
``tlspolicy`` (secure, insecure), ``timeout`` (seconds) and ``mechanisms``
(SASL names, comma-separated).

The parser is our own, a few linear passes with str.find and partition
(no regular expression, no urllib: urlsplit silently drops tabs, CR and LF
and has changed its mind about brackets and blanks between versions).
Every malformed URL is a UsageError naming the part that is wrong --
never showing the URL or any part of it, which may hold a password. The
password is kept as a Secret: no repr, str or error shows it.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ._errors import UsageError
from ._secret import Secret

__all__ = ["QUERY_OPTIONS", "SCHEMES", "ServerURL", "is_url", "parse_url", "shown"]

# scheme -> (protocol, tlsimport, tlspolicy, default port)
SCHEMES: Mapping[str, tuple[str, Optional[bool], Optional[str], Optional[int]]] = {
    "smtp": ("smtp", None, None, None),
    "smtps": ("smtp", True, None, 465),
    "smtp+starttls": ("smtp", False, "secure", 587),
    "lmtp": ("lmtp", None, None, 24),
    "lmtp+unix": ("lmtp", None, None, None),
}
QUERY_OPTIONS = ("tlspolicy", "timeout", "mechanisms")

_HEX = frozenset("0123456789abcdefABCDEF")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+-.")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
_MECHANISM_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_MAX_URL = 8192   # octets: longer is not a server's address


@dataclass(frozen=True)
class ServerURL:
    """One server, as a URL names it (see the module docstring).

    ``host`` is the name or address to connect to (an IPv6 literal without
    its brackets; "" for ``lmtp+unix``), ``port`` the URL's port (None when
    it names none), ``path`` the socket of ``lmtp+unix`` (None otherwise).
    ``protocol``, ``tlsimport`` and ``tlspolicy`` are what the scheme (and
    the query's ``tlspolicy``) say, None where they leave it to the call.
    ``username`` and ``password`` (a Secret: repr and str show ``***``)
    are percent-decoded. ``timeout`` and ``mechanisms`` come from the
    query; ``options`` holds the query options as given, decoded.
    """

    scheme: str
    host: str
    port: Optional[int] = None
    path: Optional[str] = None
    protocol: str = "smtp"
    tlsimport: Optional[bool] = None
    tlspolicy: Optional[str] = None
    username: Optional[str] = None
    password: Optional[Secret] = field(default=None, compare=False)
    timeout: Optional[float] = None
    mechanisms: Optional[tuple[str, ...]] = None
    options: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        """A ServerURL made by hand is held to what parse_url guarantees:
        a known scheme, and no control character (CR, LF, NUL...) in any
        text field -- UsageError otherwise."""
        if self.scheme not in SCHEMES:
            raise UsageError(f"unknown URL scheme {self.scheme!r}: one of {', '.join(SCHEMES)}")
        texts = [self.host, self.path or "", self.username or "", *self.options.keys(), *self.options.values()]
        if any(_controls(text) for text in texts):
            raise UsageError("a control character (CR, LF, NUL...) in a ServerURL")

    @property
    def default_port(self) -> Optional[int]:
        """The scheme's port when the URL names none (None: the call's default)."""
        return SCHEMES[self.scheme][3]

    @property
    def server(self) -> str:
        """The ``servers=`` entry for the place this URL names: ``host``,
        ``host:port``, ``[v6]:port``, or the socket path."""
        if self.path is not None:
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host + (f":{self.port}" if self.port is not None else "")

    def keywords(self) -> dict[str, Any]:
        """The sendmessage keyword arguments this URL stands for (only those
        it sets): ``tlsimport``, ``tlspolicy``, ``username``, ``password``
        (the Secret), ``timeout``, ``mechanisms``, ``protocol`` (for LMTP)."""
        found: dict[str, Any] = dict(tlsimport=self.tlsimport, tlspolicy=self.tlspolicy, username=self.username,
                                     password=self.password, timeout=self.timeout,
                                     mechanisms=list(self.mechanisms) if self.mechanisms is not None else None)
        if self.protocol != "smtp":
            found["protocol"] = self.protocol
        return {name: value for name, value in found.items() if value is not None}

    def __str__(self) -> str:
        """The URL again, without the password (its user percent-encoded)."""
        user = _encode(self.username) + "@" if self.username is not None else ""
        where = "" if self.path is not None else self.server
        query = "&".join(f"{key}={_encode(value)}" for key, value in self.options.items())
        return f"{self.scheme}://{user}{where}{_encode(self.path, '/') if self.path else ''}" + (
            f"?{query}" if query else "")


def is_url(entry: str) -> bool:
    """Whether a ``servers=`` entry is a URL (holds ``://``)."""
    return "://" in entry


def shown(entry: object) -> str:
    """A ``servers=`` entry as a repr, log line or message may show it: a
    URL without its password (a malformed URL as ``<malformed URL>``),
    any other entry as it is."""
    if isinstance(entry, ServerURL):
        return str(entry)
    text = str(entry)
    if not is_url(text):
        return text if "@" not in text else "<malformed URL>"   # a user and password without a scheme
    url: Optional[ServerURL] = None
    try:
        url = parse_url(text.strip())
    except UsageError:
        pass
    return str(url) if url is not None else "<malformed URL>"


def parse_url(url: str) -> ServerURL:
    """Read a server URL (see the module docstring). Raises TypeError for a
    value that is not a str, UsageError naming the part that is wrong for
    a malformed URL: an unknown scheme, a port out of range, a path where
    none is allowed, bad percent-encoding, CR/LF/NUL (or any control
    character or blank) anywhere, an empty host, an unknown or repeated
    query option. No error shows the URL or any part of it but the scheme."""
    if not isinstance(url, str):
        raise TypeError(f"a server URL must be a str, not {type(url).__name__}")
    _check_text(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UsageError("not a server URL: it needs a scheme, as in smtps://host")
    if not (scheme.isascii() and scheme[:1].isalpha() and all(c in _SCHEME_CHARS for c in scheme.lower())):
        raise UsageError("malformed URL scheme (letters, digits, '+', '-', '.' before '://')")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise UsageError(f"unknown URL scheme {scheme!r}: one of {', '.join(SCHEMES)}")
    protocol, tlsimport, tlspolicy, _ = SCHEMES[scheme]
    rest, hash_, _fragment = rest.partition("#")
    if hash_:
        raise UsageError("a server URL takes no fragment ('#...'): write a '#' in a password as %23")
    rest, question, query = rest.partition("?")
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    options = _query(query, question == "?")
    if scheme == "lmtp+unix":
        if authority:
            raise UsageError("an lmtp+unix URL names no host, user or port: lmtp+unix:///path/to/socket")
        socket_path = _decode(path, "socket path")
        if len(socket_path) < 2 or _controls(socket_path):
            raise UsageError("an lmtp+unix URL needs the socket's absolute path: lmtp+unix:///path/to/socket")
        if "tlspolicy" in options:
            raise UsageError("an lmtp+unix URL takes no tlspolicy (there is no TLS on a local socket)")
        return ServerURL(scheme, "", None, socket_path, protocol, tlsimport, tlspolicy, None, None,
                         _timeout(options), _mechanisms(options), options)
    if path not in ("", "/"):
        raise UsageError(f"a {scheme} URL takes no path (nothing may follow the host and port but '?options'); "
                         "write a '/' in a password as %2F")
    username, password, hostport = _userinfo(authority)
    host, port = _hostport(hostport)
    if "tlspolicy" in options:
        if options["tlspolicy"] not in ("secure", "insecure"):
            raise UsageError("the URL's tlspolicy must be secure or insecure")
        if scheme == "smtp+starttls" and options["tlspolicy"] != "secure":
            raise UsageError("an smtp+starttls URL requires TLS: its tlspolicy cannot be insecure")
        tlspolicy = options["tlspolicy"]
    return ServerURL(scheme, host, port, None, protocol, tlsimport, tlspolicy, username, password,
                     _timeout(options), _mechanisms(options), options)


def _check_text(url: str) -> None:
    """Refuse controls (CR, LF, NUL, TAB...), blanks and text that is not
    valid (a lone surrogate), before anything else is read."""
    if len(url) > _MAX_URL:
        raise UsageError(f"a server URL longer than {_MAX_URL} characters")
    if _controls(url):
        raise UsageError("a control character (CR, LF, NUL, TAB...) in a server URL")
    if " " in url:
        raise UsageError("a blank in a server URL: write it as %20")
    valid = True
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        valid = False
    if not valid:   # raised outside the except: its __context__ would hold the URL
        raise UsageError("a server URL that is not valid text (a lone surrogate)")


def _controls(text: str) -> bool:
    """Any C0 or C1 control character, DEL, or a Unicode line or paragraph separator."""
    return any(c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029" for c in text)


def _decode(text: str, part: str) -> str:
    """Percent-decode ``text`` (strictly: ``%`` and two hex digits, the
    result UTF-8); UsageError naming ``part`` otherwise."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] != "%":
            end = text.find("%", i)
            end = len(text) if end < 0 else end
            out += text[i:end].encode("utf-8")
            i = end
            continue
        pair = text[i + 1:i + 3]
        if len(pair) != 2 or not all(c in _HEX for c in pair):
            raise UsageError(f"bad percent-encoding in the URL's {part}: '%' must be followed by two hex digits")
        out.append(int(pair, 16))
        i += 3
    decoded: Optional[str]
    try:
        decoded = out.decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
    if decoded is None:   # raised outside the except: its __context__ would hold the octets
        raise UsageError(f"the URL's {part} is not UTF-8 once percent-decoded")
    return decoded


def _encode(text: Optional[str], safe: str = "") -> str:
    """Percent-encode what a URL part cannot hold as it is."""
    keep = _HOST_CHARS | frozenset("~" + safe)
    return "".join(c if c in keep else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in text or "")


def _userinfo(authority: str) -> tuple[Optional[str], Optional[Secret], str]:
    """``user[:password]@`` split off the authority: (user, password, host[:port])."""
    if authority.count("@") > 1:
        raise UsageError("an '@' in the URL's user name or password: write it as %40")
    info, at, hostport = authority.rpartition("@")
    if not at:
        return None, None, authority
    user_text, colon, password_text = info.partition(":")
    username = _decode(user_text, "user name")
    if not username:
        raise UsageError("the URL's user name is empty (leave out the '@' for none)")
    if _controls(username):
        raise UsageError("a control character (CR, LF, NUL...) in the URL's user name")
    if not colon:
        return username, None, hostport
    password = _decode(password_text, "password")
    if not password:
        raise UsageError("the URL's password is empty (leave out the ':' for none)")
    if _controls(password):
        raise UsageError("a control character (CR, LF, NUL...) in the URL's password")
    return username, Secret(password), hostport


def _hostport(text: str) -> tuple[str, Optional[int]]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise UsageError("the URL's host opens '[' without closing it")
        valid = True
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            valid = False
        if not valid:
            raise UsageError("the URL's host in brackets is not an IPv6 address")
        host = inner
        if rest and not rest.startswith(":"):
            raise UsageError("text after the URL's ']' that is not ':port'")
        port_text: Optional[str] = rest[1:] if rest else None
    else:
        host, colon, after = text.partition(":")
        port_text = after if colon else None
        if ":" in after:
            raise UsageError("more than one ':' after the URL's host (an IPv6 address goes in brackets: [::1])")
        if not host:
            raise UsageError("the URL names no host")
        if not all(c in _HOST_CHARS or not c.isascii() for c in host):
            raise UsageError("the URL's host holds a character no host name has")
    if port_text is None:
        return host, None
    if not port_text or not (port_text.isascii() and port_text.isdigit()):
        raise UsageError("the URL's port must be a number from 1 to 65535")
    port = int(port_text)
    if not 0 < port < 65536:
        raise UsageError("the URL's port is out of range (1 to 65535)")
    return host, port


def _query(query: str, present: bool) -> dict[str, str]:
    """``key=value&...`` with keys from QUERY_OPTIONS, each once."""
    options: dict[str, str] = {}
    if not present:
        return options
    for item in query.split("&"):
        key, equals, value = item.partition("=")
        if key not in QUERY_OPTIONS:
            # the key is not shown: a mangled URL could have put part of a password here
            raise UsageError(f"an unknown option in the URL's query: the options are {', '.join(QUERY_OPTIONS)}")
        if not equals or not value:
            raise UsageError(f"the URL's {key} option needs a value ({key}=...)")
        if key in options:
            raise UsageError(f"the URL's {key} option is given twice")
        decoded = _decode(value, f"{key} option")
        if _controls(decoded):
            raise UsageError(f"a control character (CR, LF, NUL...) in the URL's {key} option")
        options[key] = decoded
    return options


def _timeout(options: Mapping[str, str]) -> Optional[float]:
    if "timeout" not in options:
        return None
    seconds: Optional[float]
    try:
        seconds = float(options["timeout"])
    except ValueError:
        seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise UsageError("the URL's timeout must be a positive number of seconds")
    return seconds


def _mechanisms(options: Mapping[str, str]) -> Optional[tuple[str, ...]]:
    if "mechanisms" not in options:
        return None
    text = options["mechanisms"]
    names = tuple(text.upper().replace(",", " ").split()) if text.isascii() else ()
    if not names or not all(name and all(c in _MECHANISM_CHARS for c in name) for name in names):
        raise UsageError("the URL's mechanisms must be SASL mechanism names, comma-separated")
    return names

"""SASL client mechanisms, strongest first.

Each mechanism is a small state machine with no I/O: ``start()`` gives the
initial response (or None when the server speaks first), ``respond(challenge)``
answers each server challenge, ``finish()`` runs when the server says the
exchange succeeded and checks that the server proved itself where the
mechanism lets it (SCRAM, DIGEST-MD5). A server that sends nonsense makes
them raise :class:`SASLFailure`; the caller then cancels the exchange.

The exchange and the login loop are written here once, with no I/O and
no protocol in them (:func:`exchange`, :func:`authenticate`): generators
that yield :class:`Begin` (the AUTH command, with its initial response),
:class:`Respond`, :class:`Cancel` and :class:`Note` steps and receive the
server's :class:`Challenge` or :class:`Final` answer. SMTP (RFC 4954: 334
challenges, smtpsend._setup) and POP3 (RFC 5034: "+ " continuations,
smtpsend.pop3) each drive them with their own framing only; the rules --
strongest first, the next mechanism only when the mechanism failed (the
protocol's ``next_mechanism`` says which refusals those are), never a
weaker one after a server that failed to prove itself, one refresh of an
OAuth token the server rejected -- are the same for both.

Secrets (password, token) are held as :class:`~smtpsend._secret.Secret`:
no ``repr``, ``vars()`` or pickle of a mechanism shows them. Credentials
that cannot be sent as given (a lone surrogate, NUL in a PLAIN field, ^A in
an OAuth one) are refused with UsageError by :func:`check_credentials`,
which smtpsend calls before it connects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import stringprep
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Generic, Optional, TypeVar, Union

from ._errors import UsageError
from ._secret import Secret, wrap

__all__ = ["Begin", "Cancel", "Challenge", "Final", "MECHANISMS", "Mechanism", "Note", "Outcome", "Respond",
           "SASLFailure", "ServerNotProven", "Step", "TokenFailure", "TokenFunction", "TokenSource",
           "authenticate", "check_credentials", "choose", "exchange", "run", "saslprep", "token_source"]

Credential = Union[str, Secret, None]
TokenFunction = Callable[[str, bool], str]     # token(username, refresh) -> a bearer token

MAX_ROUNDS = 8          # challenges answered before we give up (lettre caps them too)
MAX_ITERATIONS = 1_000_000   # SCRAM iteration counts above this are a denial of service


class SASLFailure(Exception):
    """The server's side of a SASL exchange is malformed or failed to prove
    itself, or the credentials cannot be prepared for this mechanism. The
    message never contains a secret or a character of one."""


class ServerNotProven(SASLFailure):
    """The server failed to prove that it knows the password (SCRAM's
    server signature, DIGEST-MD5's rspauth): it may be an impostor, so no
    other mechanism is tried with the same credentials."""


class TokenFailure(Exception):
    """The ``token=`` callable raised (its exception is the ``__cause__``),
    or returned something that cannot be sent as a bearer token. The
    message names the failure -- the exception's type, or what is wrong
    with the value -- never a token."""


class TokenSource:
    """``token=`` for one connection: a fixed token, or a callable
    ``token(username, refresh)`` that is called the first time a token is
    needed (when XOAUTH2 or OAUTHBEARER is tried, not before) and at most
    once more, with ``refresh=True``, after the server rejected the token.
    Holds the token as Secret: no repr or vars() shows it."""

    __slots__ = ("_function", "_token", "refreshed")

    def __init__(self, given: Union[Secret, TokenFunction]) -> None:
        self._function: Optional[TokenFunction] = None if isinstance(given, Secret) else given
        self._token: Optional[Secret] = given if isinstance(given, Secret) else None
        self.refreshed = False

    @property
    def refreshable(self) -> bool:
        """True while a new token can still be asked for on this connection."""
        return self._function is not None and not self.refreshed

    @property
    def fixed(self) -> Optional[Secret]:
        """The token when it was given as a value (None for a callable)."""
        return None if self._function is not None else self._token

    def get(self, username: str) -> Secret:
        """The token: the one given, or the callable's (called once)."""
        if self._token is None:
            self._token = self._call(username, False)
        return self._token

    def refresh(self, username: str) -> Secret:
        """Ask the callable for a new token (once per connection)."""
        if not self.refreshable:
            raise TokenFailure("no new token can be had: token= is not a callable, or it was asked already")
        self.refreshed = True
        self._token = self._call(username, True)
        return self._token

    def _call(self, username: str, refresh: bool) -> Secret:
        """Call the function; TokenFailure (cause chained, no token in it)
        when it raises or returns a token that cannot be sent."""
        assert self._function is not None
        try:
            value = self._function(username, refresh)
        except Exception as exc:   # the caller's code: whatever it raises is reported, typed
            raise TokenFailure(f"the token= callable raised {type(exc).__name__}"
                               f"{' (asked to refresh)' if refresh else ''}") from exc
        problem: Optional[str] = None
        if not isinstance(value, str) or not value:
            problem = f"returned {type(value).__name__ if not isinstance(value, str) else 'an empty str'}, " \
                      "not a token"
        else:
            try:
                check_credentials(None, None, value)
            except UsageError as exc:
                problem = f"returned a token that cannot be sent: {exc}"
        if problem is not None:   # raised outside the handlers: no __context__ holding the value
            raise TokenFailure(f"the token= callable {problem}")
        return Secret(value)

    def __repr__(self) -> str:
        return f"<TokenSource {'callable' if self._function is not None else 'fixed'} token=***>"


TokenArg = Union[str, Secret, TokenFunction, TokenSource, None]


def token_source(token: TokenArg) -> Optional[TokenSource]:
    """``token=`` as a TokenSource of its own (a new one for each
    connection: the callable is then called once per connection)."""
    if token is None:
        return None
    if isinstance(token, TokenSource):
        return token
    if isinstance(token, (str, Secret)):
        return TokenSource(Secret(token) if isinstance(token, str) else token)
    if callable(token):
        return TokenSource(token)
    raise UsageError(f"token= must be a str or a callable token(username, refresh), not {type(token).__name__}")


def _text(value: Credential) -> Optional[str]:
    return value.reveal() if isinstance(value, Secret) else value


def check_credentials(username: Optional[str], password: Credential = None, token: TokenArg = None) -> None:
    """Refuse credentials that cannot be sent as given, before anything is
    sent: UsageError (a ValueError) naming the argument, never its value.

    - not a str, or not encodable as UTF-8 (a lone surrogate, as
      ``os.environ`` and ``sys.argv`` give for undecodable bytes);
    - NUL in the user name or password: PLAIN separates its fields with NUL
      (RFC 4616 section 2);
    - ^A (U+0001) in the user name, or a token that is not printable ASCII:
      XOAUTH2 and OAUTHBEARER separate their fields with ^A (RFC 7628
      section 3.1; a bearer token is a b64token, RFC 6750 section 2.1).

    A token callable is not called here: its token is checked when it
    comes (see :class:`TokenSource`).
    """
    if isinstance(token, TokenSource):
        token = token.fixed
    elif callable(token):
        token = None
    for name, value in (("username", username), ("password", password), ("token", token)):
        text = _text(value)
        if text is None:
            continue
        if not isinstance(text, str):
            raise UsageError(f"{name}= must be a str, not {type(text).__name__}")
        encodable = True
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            encodable = False
        if not encodable:
            # raised outside the except clause: the UnicodeEncodeError holds
            # the text and must not become this error's __context__
            raise UsageError(f"{name}= is not valid text: it holds a lone surrogate (undecodable bytes, "
                             "e.g. from os.environ or sys.argv); decode it with its real encoding first")
        if name != "token" and "\0" in text:
            raise UsageError(f"{name}= contains NUL, which SASL PLAIN uses as its separator (RFC 4616)")
        if name == "username" and "\x01" in text:
            raise UsageError("username= contains ^A (U+0001), which XOAUTH2 and OAUTHBEARER use as their "
                             "separator (RFC 7628 section 3.1)")
        if name == "token" and not all(32 <= ord(c) < 127 for c in text):
            raise UsageError("token= must be printable ASCII (a bearer token, RFC 6750 section 2.1)")


def saslprep(text: str) -> str:
    """Prepare a user name or password (RFC 4013, the SASLprep profile).

    Maps non-ASCII spaces to space and removes the characters mapped to
    nothing, normalises with NFKC, and refuses prohibited characters and
    bad bidirectional text with SASLFailure -- whose message never names
    the character (the text may be a password). Unassigned code points are
    allowed: SCRAM prepares both strings as queries (RFC 5802 section 2.2).
    """
    if text.isascii() and all(32 <= ord(c) < 127 for c in text):
        return text
    mapped = "".join(" " if stringprep.in_table_c12(c) else c
                     for c in text if not stringprep.in_table_b1(c))
    mapped = unicodedata.normalize("NFKC", mapped)
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22,
                  stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
                  stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
                  stringprep.in_table_c9)
    for c in mapped:
        if any(table(c) for table in prohibited):
            raise SASLFailure("a character SASLprep prohibits (RFC 4013 section 2.3)")
    rtl = [stringprep.in_table_d1(c) for c in mapped]
    if any(rtl):
        if any(stringprep.in_table_d2(c) for c in mapped) or not (rtl[0] and rtl[-1]):
            raise SASLFailure("bidirectional text not allowed by RFC 3454 section 6")
    return mapped


class Mechanism:
    """A SASL mechanism for one exchange."""

    name = ""
    needs_password = True

    def __init__(self, username: str, password: Credential = None, token: TokenArg = None,
                 host: str = "localhost", channel_binding: Optional[bytes] = None) -> None:
        """Raises UsageError for credentials that cannot be sent (see
        :func:`check_credentials`) and, for SCRAM, SASLFailure when SASLprep
        refuses them. A token callable is not called here (see TokenSource)."""
        check_credentials(username, password, token)
        self._username = username
        self._password = wrap(password)
        self._token = token_source(token)
        self._host = host
        self._cb = channel_binding
        self._round = 0
        self.token_rejected = False   # the server said the token is invalid or expired (see refreshed())

    def _secret(self, which: str = "password") -> str:
        """The password, or the token (asking a token callable for it now:
        TokenFailure when it fails)."""
        if which == "token":
            if self._token is None:
                raise UsageError(f"{self.name} needs a token")
            return self._token.get(self._username).reveal()
        if self._password is None:
            raise UsageError(f"{self.name} needs a {which}")
        return self._password.reveal()

    @property
    def refreshable(self) -> bool:
        """True when the server rejected this mechanism's token and the
        token callable may still be asked for a new one on this connection."""
        return self.token_rejected and self._token is not None and self._token.refreshable

    def refreshed(self) -> "Mechanism":
        """The same mechanism, for a new exchange, with a new token from the
        token callable (asked with ``refresh=True``); TokenFailure when it fails."""
        assert self._token is not None
        self._token.refresh(self._username)
        return type(self)(self._username, self._password, self._token, self._host, self._cb)

    def start(self) -> Optional[bytes]:
        """The initial response, or None when the server speaks first."""
        return None

    def respond(self, challenge: bytes) -> bytes:
        """The answer to one server challenge; SASLFailure for nonsense or
        after MAX_ROUNDS challenges."""
        self._round += 1
        if self._round > MAX_ROUNDS:
            raise SASLFailure(f"more than {MAX_ROUNDS} challenges")
        return self._respond(challenge)

    def _respond(self, challenge: bytes) -> bytes:
        raise SASLFailure(f"{self.name} expects no challenge")

    def finish(self) -> None:
        """Called when the server reports success."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} user={self._username!r} secret=***>"


class Plain(Mechanism):
    """PLAIN (RFC 4616): authzid NUL authcid NUL password, as the initial response."""

    name = "PLAIN"

    def start(self) -> bytes:
        return b"\0" + self._username.encode() + b"\0" + self._secret().encode()


class Login(Mechanism):
    """LOGIN (draft-murchison-sasl-login): user name, then password, on prompts."""

    name = "LOGIN"

    def _respond(self, challenge: bytes) -> bytes:
        if self._round == 1:
            return self._username.encode()
        if self._round == 2:
            return self._secret().encode()
        raise SASLFailure("LOGIN asked for a third value")


class CramMD5(Mechanism):
    """CRAM-MD5 (RFC 2195): user name and HMAC-MD5 of the challenge."""

    name = "CRAM-MD5"

    def _respond(self, challenge: bytes) -> bytes:
        if self._round > 1:
            raise SASLFailure("CRAM-MD5 has one challenge")
        digest = hmac.new(self._secret().encode(), challenge, hashlib.md5).hexdigest()
        return self._username.encode() + b" " + digest.encode()


def _quoted(value: str) -> str:
    """A quoted-string's content (RFC 2831 section 7.2): backslash and quote escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


_DIGEST_RE = re.compile(r'\s*([\w-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)')


def _digest_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _DIGEST_RE.match(text, pos)
        if not m or m.end() == pos:
            raise SASLFailure(f"malformed DIGEST-MD5 challenge near {text[pos:pos + 20]!r}")
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        fields.setdefault(m.group(1).lower(), value.strip())
        pos = m.end()
    return fields


class DigestMD5(Mechanism):
    """DIGEST-MD5 (RFC 2831), qop=auth; checks the server's rspauth."""

    name = "DIGEST-MD5"

    def __init__(self, *args: Any, cnonce: Optional[str] = None, service: str = "smtp", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cnonce = cnonce or secrets.token_urlsafe(16)
        self._service = service
        self._rspauth: Optional[str] = None
        self._verified = False

    def _hash_input(self, realm: str, utf8: bool) -> bytes:
        text = f"{self._username}:{realm}:{self._secret()}"
        if utf8:
            # RFC 2831 section 2.1.2.1 says to hash ISO 8859-1 when every
            # character fits, but Dovecot (the server most submission services
            # run) hashes the UTF-8 as it is, and so do GNU SASL and msmtp.
            return text.encode("utf-8")
        return text.encode("iso-8859-1", "replace")

    def _respond(self, challenge: bytes) -> bytes:
        fields = _digest_fields(challenge.decode("utf-8", "replace"))
        if self._round == 2 or "rspauth" in fields:
            if not hmac.compare_digest(fields.get("rspauth", ""), self._rspauth or "x"):
                raise ServerNotProven("DIGEST-MD5 server proof (rspauth) does not match")
            self._verified = True
            return b""
        if self._round > 1:
            raise SASLFailure("unexpected DIGEST-MD5 challenge")
        nonce = fields.get("nonce")
        if not nonce:
            raise SASLFailure("DIGEST-MD5 challenge without nonce")
        if "auth" not in [q.strip() for q in fields.get("qop", "auth").split(",")]:
            raise SASLFailure("DIGEST-MD5 server does not offer qop=auth")
        realm = fields.get("realm", "")
        utf8 = fields.get("charset", "").lower() == "utf-8"
        uri = f"{self._service}/{self._host}"
        nc = "00000001"

        def h(data: bytes) -> bytes:
            return hashlib.md5(data).digest()

        def hexh(data: bytes) -> str:
            return hashlib.md5(data).hexdigest()

        a1 = h(self._hash_input(realm, utf8)) + f":{nonce}:{self._cnonce}".encode()
        ha1 = hexh(a1)
        tail = f"{nonce}:{nc}:{self._cnonce}:auth:"
        response = hexh(f"{ha1}:{tail}{hexh(f'AUTHENTICATE:{uri}'.encode())}".encode())
        self._rspauth = hexh(f"{ha1}:{tail}{hexh(f':{uri}'.encode())}".encode())
        user, realm_q, nonce_q = (_quoted(v) for v in (self._username, realm, nonce))
        parts = [f'username="{user}"', f'realm="{realm_q}"', f'nonce="{nonce_q}"', f"nc={nc}",
                 f'cnonce="{self._cnonce}"', f'digest-uri="{uri}"', f"response={response}", "qop=auth"]
        if utf8:
            parts.insert(0, "charset=utf-8")
        return ",".join(parts).encode("utf-8")

    def finish(self) -> None:
        if not self._verified:
            raise ServerNotProven("the server did not prove that it knows the password (no rspauth)")


_ITERATIONS = re.compile(r"[1-9][0-9]{0,8}")   # 1 .. 999,999,999: enough to compare with MAX_ITERATIONS


class Scram(Mechanism):
    """SCRAM (RFC 5802, RFC 7677), with tls-unique channel binding in the
    -PLUS variants; verifies the server's signature."""

    hash_name = "sha1"
    plus = False

    def __init__(self, *args: Any, cnonce: Optional[str] = None, **kwargs: Any) -> None:
        """SASLFailure when SASLprep refuses the user name or the password
        (the message names neither)."""
        super().__init__(*args, **kwargs)
        self._cnonce = cnonce or secrets.token_urlsafe(24)
        self._server_signature: Optional[bytes] = None
        self._verified = False
        if self.plus:
            self._gs2 = "p=tls-unique,,"
        elif self._cb is not None:
            self._gs2 = "y,,"  # we could bind, but the server offered no -PLUS (RFC 5802 section 6)
        else:
            self._gs2 = "n,,"
        try:
            name = saslprep(self._username).replace("=", "=3D").replace(",", "=2C")
            # RFC 5802 section 2.2: Hi(Normalize(password), ...)
            self._prepared = Secret(saslprep(self._secret()))
        except SASLFailure:
            raise SASLFailure(f"{self.name} cannot use this user name or password: SASLprep "
                              "(RFC 4013) refuses it") from None
        self._first_bare = f"n={name},r={self._cnonce}"

    def start(self) -> bytes:
        return (self._gs2 + self._first_bare).encode("utf-8")

    def _respond(self, challenge: bytes) -> bytes:
        text = challenge.decode("utf-8", "replace")
        if self._round == 1:
            return self._client_final(text)
        if self._round == 2:
            fields = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
            if "e" in fields:
                raise SASLFailure(f"SCRAM server error: {fields['e']}")
            try:
                proof = base64.b64decode(fields.get("v", ""), validate=True)
            except ValueError:
                raise SASLFailure("malformed SCRAM server signature") from None
            if not hmac.compare_digest(proof, self._server_signature or b""):
                raise ServerNotProven("SCRAM server signature does not match: not the real server")
            self._verified = True
            return b""
        raise SASLFailure("unexpected SCRAM challenge")

    def _client_final(self, server_first: str) -> bytes:
        fields: dict[str, str] = {}
        for item in server_first.split(","):
            if len(item) < 2 or item[1] != "=":
                raise SASLFailure("malformed SCRAM server-first-message")
            fields.setdefault(item[0], item[2:])
        if "m" in fields:
            raise SASLFailure("SCRAM server requires an extension we do not know")
        nonce, salt, iterations = fields.get("r", ""), fields.get("s"), fields.get("i", "")
        if not nonce.startswith(self._cnonce) or len(nonce) <= len(self._cnonce):
            raise SASLFailure("SCRAM server nonce does not extend ours")
        # ASCII digits only: str.isdigit() accepts "²", which int() refuses
        if salt is None or not _ITERATIONS.fullmatch(iterations) or int(iterations) > MAX_ITERATIONS:
            raise SASLFailure("SCRAM salt or iteration count missing or out of range")
        try:
            salt_bytes = base64.b64decode(salt, validate=True)
        except ValueError:
            raise SASLFailure("malformed SCRAM salt") from None
        digest = getattr(hashlib, self.hash_name)
        salted = hashlib.pbkdf2_hmac(self.hash_name, self._prepared.reveal().encode("utf-8"),
                                     salt_bytes, int(iterations))
        client_key = hmac.new(salted, b"Client Key", digest).digest()
        stored_key = digest(client_key).digest()
        cbind = self._gs2.encode() + ((self._cb or b"") if self.plus else b"")
        without_proof = f"c={base64.b64encode(cbind).decode()},r={nonce}"
        auth_message = f"{self._first_bare},{server_first},{without_proof}".encode("utf-8")
        signature = hmac.new(stored_key, auth_message, digest).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", digest).digest()
        self._server_signature = hmac.new(server_key, auth_message, digest).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode("utf-8")

    def finish(self) -> None:
        if not self._verified:
            raise ServerNotProven("the server did not send its SCRAM signature")


class ScramSHA1(Scram):
    name = "SCRAM-SHA-1"


class ScramSHA1Plus(ScramSHA1):
    name = "SCRAM-SHA-1-PLUS"
    plus = True


class ScramSHA256(Scram):
    name = "SCRAM-SHA-256"
    hash_name = "sha256"


class ScramSHA256Plus(ScramSHA256):
    name = "SCRAM-SHA-256-PLUS"
    plus = True


# The "status" of an OAuth error challenge that says the token is invalid
# or expired: "401" in XOAUTH2's (Google's and Microsoft's JSON),
# "invalid_token" in OAUTHBEARER's (RFC 7628 section 3.2.2, from RFC 6750
# section 3.1). Either is taken from either mechanism.
INVALID_TOKEN = frozenset({"401", "invalid_token"})


def _invalid_token(challenge: bytes) -> bool:
    """Whether an OAuth error challenge (JSON) says the token is invalid.
    Anything else -- not JSON, nested too deep, another status -- is not."""
    try:
        data = json.loads(challenge.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and str(data.get("status")) in INVALID_TOKEN


class XOAuth2(Mechanism):
    """XOAUTH2 (Google, Microsoft): user name and bearer token."""

    name = "XOAUTH2"
    needs_password = False

    def start(self) -> bytes:
        return f"user={self._username}\x01auth=Bearer {self._secret('token')}\x01\x01".encode()

    def _respond(self, challenge: bytes) -> bytes:
        self.token_rejected = self.token_rejected or _invalid_token(challenge)
        return b""  # the challenge is a JSON error; an empty reply ends the exchange


class OAuthBearer(Mechanism):
    """OAUTHBEARER (RFC 7628)."""

    name = "OAUTHBEARER"
    needs_password = False

    def start(self) -> bytes:
        user = self._username.replace("=", "=3D").replace(",", "=2C")
        return f"n,a={user},\x01auth=Bearer {self._secret('token')}\x01\x01".encode()

    def _respond(self, challenge: bytes) -> bytes:
        self.token_rejected = self.token_rejected or _invalid_token(challenge)
        return b"\x01"  # RFC 7628 section 3.2.3: acknowledge the error


# Strongest first. Token mechanisms come before password ones because a
# token is only given when the caller means to use it.
MECHANISMS: tuple[type[Mechanism], ...] = (
    ScramSHA256Plus, ScramSHA256, ScramSHA1Plus, ScramSHA1, DigestMD5, CramMD5,
    OAuthBearer, XOAuth2, Plain, Login,
)


def choose(offered: list[str], username: str, password: Credential, token: TokenArg,
           host: str, channel_binding: Optional[bytes],
           skipped: Optional[list[tuple[str, str]]] = None) -> list[Mechanism]:
    """The mechanisms to try, strongest first: offered by the server, usable
    with the credentials given (-PLUS only with channel binding data; SCRAM
    only with credentials SASLprep accepts). A mechanism left out for the
    credentials is added to ``skipped`` as ``(name, why)``. UsageError for
    credentials that cannot be sent at all. The token mechanisms share one
    TokenSource: a token callable is asked once, when the first of them
    starts."""
    token = token_source(token)
    offered_set = {m.upper() for m in offered}
    chosen: list[Mechanism] = []
    for cls in MECHANISMS:
        if cls.name not in offered_set:
            continue
        if cls.needs_password and password is None:
            continue
        if not cls.needs_password and token is None:
            continue
        if getattr(cls, "plus", False) and channel_binding is None:
            continue
        try:
            chosen.append(cls(username, password, token, host, channel_binding))
        except SASLFailure as exc:
            if skipped is not None:
                skipped.append((cls.name, str(exc)))
    return chosen


# ---------------------------------------------------------------- the exchange, for any protocol

R = TypeVar("R")     # what the protocol's final answer is (SMTP: a Reply; POP3: its text or its -ERR)
T = TypeVar("T")


@dataclass(frozen=True)
class Begin:
    """Send the AUTH command for ``mechanism``, with ``initial`` (the
    initial response, possibly empty) when it is not None. Answer: the
    server's Challenge or Final."""

    mechanism: str
    initial: Optional[bytes]


@dataclass(frozen=True)
class Respond:
    """Send ``data`` (a client response; the protocol base64-encodes it and
    never shows it). Answer: the server's Challenge or Final."""

    data: bytes


@dataclass(frozen=True)
class Cancel:
    """Cancel the exchange ("*", RFC 4954 section 4 / RFC 5034 section 4)
    and read the server's answer, which changes nothing."""


@dataclass(frozen=True)
class Note:
    """Something to note in the transcript (no secret in it)."""

    text: str


Step = Union[Begin, Respond, Cancel, Note]


@dataclass(frozen=True)
class Challenge:
    """The server's challenge, as sent (base64 text; decoded here)."""

    text: str


@dataclass(frozen=True)
class Final(Generic[R]):
    """The server's last word on the exchange: success or refusal, and the
    protocol's ``answer`` (the Reply, the +OK text or the -ERR)."""

    ok: bool
    answer: R


Exchange = Generator[Step, Any, T]


@dataclass
class Outcome(Generic[R]):
    """How a login ended: ``mechanism`` is the one that succeeded (None
    when none did) and ``answer`` the server's success; ``failures`` is
    ``(mechanism, refusal or SASLFailure)`` per exchange that failed, in
    order; ``untried`` the mechanisms not tried with the same credentials."""

    mechanism: Optional[str] = None
    answer: Optional[R] = None
    failures: list[tuple[str, Union[R, SASLFailure]]] = field(default_factory=list)
    untried: list[str] = field(default_factory=list)


def _decode(text: str) -> bytes:
    """A challenge's base64 (RFC 4954 section 4, RFC 5034 section 4);
    SASLFailure when it is not base64."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        pass
    raise SASLFailure("challenge is not base64")   # outside the handler: no __context__


def exchange(mech: Mechanism) -> Exchange[Union[Final[Any], SASLFailure]]:
    """One SASL exchange with ``mech``: the server's Final answer (ok or
    not), or the SASLFailure that ended it -- the exchange is then
    cancelled if the server was waiting for a response. TokenFailure (a
    token callable that failed) is raised before anything is sent."""
    answer = yield Begin(mech.name, mech.start())
    try:
        while isinstance(answer, Challenge):
            answer = yield Respond(mech.respond(_decode(answer.text)))
        final: Final[Any] = answer
        if final.ok:
            mech.finish()   # SCRAM, DIGEST-MD5: did the server prove itself?
        return final
    except SASLFailure as exc:
        if isinstance(answer, Challenge):
            yield Cancel()
        return exc


def authenticate(mechanisms: list[Mechanism], next_mechanism: Callable[[Union[R, SASLFailure]], bool],
                 outcome: Optional[Outcome[R]] = None) -> Exchange[Outcome[R]]:
    """Log in with the first of ``mechanisms`` (strongest first, see
    :func:`choose`) that succeeds. After a failed exchange the next one is
    tried only when ``next_mechanism(refusal or SASLFailure)`` -- the
    protocol's rule: a refusal of the credentials themselves (SMTP's 535,
    POP3's [AUTH]) ends the login, so that one wrong password is one failed
    login -- and never after a server that failed to prove it knows the
    password (ServerNotProven: it may be an impostor). When the server
    rejected an OAuth token as invalid and token= is a callable, the
    callable is asked once for a new token (``refresh=True``) and the same
    mechanism tried once more before it counts as failed. TokenFailure
    propagates (nothing of that mechanism was sent); ``outcome``, when
    given, is filled in as the login goes on, so that the failures before
    it are known then. Returns the outcome."""
    if outcome is None:
        outcome = Outcome()
    for index, mech in enumerate(mechanisms):
        result = yield from exchange(mech)
        if not (isinstance(result, Final) and result.ok) and mech.refreshable:
            outcome.failures.append((mech.name, result.answer if isinstance(result, Final) else result))
            yield Note(f"{mech.name}: the server rejected the token as invalid or expired; asking token= "
                       "for a new one")
            mech = mech.refreshed()
            result = yield from exchange(mech)
        if isinstance(result, Final) and result.ok:
            outcome.mechanism, outcome.answer = mech.name, result.answer
            return outcome
        failure = result.answer if isinstance(result, Final) else result
        outcome.failures.append((mech.name, failure))
        if isinstance(failure, ServerNotProven) or not next_mechanism(failure):
            outcome.untried = [m.name for m in mechanisms[index + 1:]]
            break
    return outcome


def run(steps: Exchange[T], perform: Callable[[Step], Any]) -> T:
    """Drive ``steps`` with a blocking ``perform(step) -> answer`` (POP3);
    the asynchronous and generator-based protocols (SMTP) drive it the
    same way with ``send()``. Returns what ``steps`` returns."""
    answer: Any = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration as stop:
            value: T = stop.value
            return value
        answer = perform(step)

"""DKIM signing: RFC 6376, with Ed25519 (RFC 8463) and the key rules of RFC 8301.

::

    signer = DKIMSigner(domain="example.com", selector="s2026", key="dkim.pem")
    signed = signer.sign(part)            # the message, DKIM-Signature first (CRLF bytes)
    value = signer.signature(part)        # the field value alone

Canonicalization and hashing are our own; ``cryptography`` supplies only the
RSA and Ed25519 signature primitives and is imported when a signer is made.
The body hash is computed in one streaming pass over the serialised message
(``Part.iterbytes()``), so a file attachment of any size signs in bounded
memory. What is signed is the message as it goes on the wire: line breaks
CRLF (a lone CR or LF is a line break, as the sender transmits it), and a
final CRLF when the message lacks one. (So a body with the ``binary``
transfer encoding is signed in its CRLF form: DKIM reads bodies as lines.)
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import re
import time
from itertools import chain
from typing import Any, Callable, Iterable, Iterator, NoReturn, Protocol, Union, cast

from ._errors import MimeError

__all__ = ["DKIMSigner"]


class Serialisable(Protocol):
    """What a Part offers to a signer: its serialised form as a stream."""

    def iterbytes(self) -> Iterator[bytes]: ...


Message = Union[Serialisable, bytes, bytearray, memoryview, Iterable[bytes]]
KeyArg = Union[bytes, str, "os.PathLike[str]", Any]
Expires = Union[int, datetime.timedelta, datetime.datetime, None]

EXTRA = "mimecompose-smtpsend[dkim]"
ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
CANONICALIZATIONS = ("relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple")
# RFC 6376 section 5.4.1: the fields that SHOULD be signed when present, then
# the ones that carry the message's identity and MIME structure, and
# List-Unsubscribe-Post, which RFC 8058 section 4 requires to be signed.
DEFAULT_HEADERS = (
    "from", "reply-to", "subject", "date", "to", "cc",
    "resent-date", "resent-from", "resent-sender", "resent-to", "resent-cc",
    "in-reply-to", "references",
    "list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
    "list-archive",
    "sender", "message-id", "mime-version", "content-type", "content-transfer-encoding",
    "list-unsubscribe-post",
)
# Oversigning an absent field forbids adding it later. Not for Date,
# Message-ID, MIME-Version and the Content- fields: relays legitimately add
# those to a message that lacks them, and a signature should survive that.
PROTECT_ABSENT = ("reply-to", "sender", "subject", "to", "cc", "in-reply-to", "references",
                  "list-unsubscribe", "list-unsubscribe-post")

_CRLF = b"\r\n"
_WSP = b" \t"
_WSP_RUN = re.compile(rb"[ \t]+")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+\Z")           # RFC 6376 3.5 d=: RFC 5321 Domain
_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")          # RFC 6376 3.1: sub-domain *("." sub-domain)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = re.compile(rf"(?:{_ATEXT}+(?:\.{_ATEXT}+)*)?\Z")     # RFC 5322 dot-atom-text, or empty
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")           # RFC 5322 3.6.8 ftext
_STEP = 1 << 20
_WIDTH = 78


def _crypto() -> Any:
    """Import the parts of ``cryptography`` we use, or raise ImportError
    naming the extra that installs it."""
    try:
        from cryptography import exceptions
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
    except ImportError as exc:
        raise ImportError(f"DKIM signing needs the 'cryptography' package: "
                          f"pip install '{EXTRA}'") from exc

    class Crypto:
        pass

    crypto = Crypto()
    for name, module in (("exceptions", exceptions), ("hashes", hashes), ("serialization", serialization),
                         ("ed25519", ed25519), ("padding", padding), ("rsa", rsa), ("utils", utils)):
        setattr(crypto, name, module)
    return crypto


# ---------------------------------------------------------------- the message as a stream

def _chunks(message: Message) -> Iterator[bytes]:
    """The message as a stream of byte chunks, not yet normalised."""
    if hasattr(message, "iterbytes"):     # a Part (or anything serialising like one)
        return cast(Serialisable, message).iterbytes()
    if isinstance(message, (bytes, bytearray, memoryview)):
        view = memoryview(message).cast("B")
        return (bytes(view[i:i + _STEP]) for i in range(0, len(view), _STEP))
    if isinstance(message, str) or not isinstance(message, Iterable):
        raise MimeError(f"cannot sign a {type(message).__name__}: give a Part, the message as bytes, "
                        "or an iterable of byte chunks")
    return _checked_chunks(message)


def _checked_chunks(chunks: Iterable[Any]) -> Iterator[bytes]:
    for chunk in chunks:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise MimeError(f"message chunks must be bytes, not {type(chunk).__name__}")
        yield bytes(chunk)


def _wire(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks`` as transmitted: every CR LF, lone CR and lone LF a CRLF
    (RFC 5322 section 2.3: CR and LF occur only together), and a final
    CRLF when the message does not end with one."""
    held = b""
    last = b"\n"
    for chunk in chunks:
        data = held + chunk
        held = b""
        if data.endswith(b"\r"):       # the LF may start the next chunk
            held, data = b"\r", data[:-1]
        if not data:
            continue
        crlf = data.count(_CRLF)
        if data.count(b"\r") != crlf or data.count(b"\n") != crlf:
            data = _LINE_BREAK.sub(_CRLF, data)
        last = data[-1:]
        yield data
    if held or last != b"\n":
        yield _CRLF


def _split(chunks: Iterator[bytes]) -> tuple[bytes, bool, Iterator[bytes]]:
    """The header block (each field with its CRLF, without the empty line),
    whether an empty line ends it, and the body chunks after it. ``chunks``
    are CRLF-normalised."""
    buf = bytearray()
    for chunk in chunks:
        start = max(0, len(buf) - 3)
        buf += chunk
        if buf.startswith(_CRLF):
            return b"", True, chain([bytes(buf[2:])], chunks)
        end = buf.find(b"\r\n\r\n", start)
        if end >= 0:
            return bytes(buf[:end + 2]), True, chain([bytes(buf[end + 4:])], chunks)
    return bytes(buf), False, iter(())


# ---------------------------------------------------------------- canonicalization (RFC 6376 3.4)

class _TrailingLines:
    """Drops the empty lines at the end of a CRLF body (RFC 6376 3.4.3 and
    3.4.4), holding back trailing CRLFs until more content follows."""

    def __init__(self, write: Callable[[bytes], Any], relaxed: bool) -> None:
        self._write = write
        self._relaxed = relaxed
        self._pending = 0      # CRLFs seen after the last content
        self._seen = False     # any content at all
        self._cr = b""

    def _flush_pending(self) -> None:
        while self._pending:
            n = min(self._pending, 32768)
            self._write(_CRLF * n)
            self._pending -= n

    def feed(self, data: bytes) -> None:
        data = self._cr + data
        self._cr = b""
        if data.endswith(b"\r"):
            self._cr, data = b"\r", data[:-1]
        content = data.rstrip(_CRLF)
        pairs = (len(data) - len(content)) // 2
        if content:
            self._flush_pending()
            self._write(content)
            self._seen = True
        self._pending += pairs

    def finish(self) -> None:
        if self._cr:
            self._flush_pending()
            self._write(self._cr)
            self._seen = True
        # simple: the body ends with exactly one CRLF, an empty body is one
        # CRLF; relaxed: an empty body stays empty (RFC 6376 3.4.3, 3.4.4)
        if self._seen or not self._relaxed:
            self._write(_CRLF)


class _SimpleBody:
    """RFC 6376 3.4.3: the body as it is, without empty lines at its end."""

    def __init__(self, write: Callable[[bytes], Any]) -> None:
        self._lines = _TrailingLines(write, relaxed=False)

    def feed(self, data: bytes) -> None:
        self._lines.feed(data)

    def finish(self) -> None:
        self._lines.finish()


class _RelaxedBody:
    """RFC 6376 3.4.4: white space at line ends removed, other runs of it
    one SP, empty lines at the end removed."""

    def __init__(self, write: Callable[[bytes], Any]) -> None:
        self._lines = _TrailingLines(write, relaxed=True)
        self._held = b""     # a trailing " " and/or "\r" that the next chunk decides

    def feed(self, data: bytes) -> None:
        data = self._held + data
        if b" " in data or b"\t" in data:
            data = _WSP_RUN.sub(b" ", data).replace(b" \r\n", _CRLF)
        cut = len(data)
        if data.endswith(b"\r"):
            cut -= 1
        if data[cut - 1:cut] == b" ":
            cut -= 1
        self._held = data[cut:]
        self._lines.feed(data[:cut])

    def finish(self) -> None:
        if self._held.endswith(b"\r"):
            self._lines.feed(self._held)
        self._held = b""      # a space at the very end is white space at a line end
        self._lines.finish()


def _fields(block: bytes) -> list[tuple[bytes | None, bytes]]:
    """Split a header block into fields: (lower-case name or None when the
    line has no colon, the field as written without its final CRLF)."""
    fields: list[tuple[bytes | None, list[bytes]]] = []
    lines = block.split(_CRLF)
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line)      # a continuation line (RFC 5322 2.2.3)
            continue
        name, colon, _ = line.partition(b":")
        fields.append((name.rstrip(_WSP).lower() if colon else None, [line]))
    return [(name, _CRLF.join(raw)) for name, raw in fields]


def _relaxed_field(raw: bytes) -> bytes:
    """RFC 6376 3.4.2: name lower-cased, value unfolded, runs of WSP one SP,
    no WSP around the colon or at the end; without the final CRLF."""
    name, _, value = raw.partition(b":")
    value = _WSP_RUN.sub(b" ", value.replace(_CRLF, b"")).strip(_WSP)
    return name.rstrip(_WSP).lower() + b":" + value


# ---------------------------------------------------------------- arguments

def _check_domain(value: Any, what: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str):
        raise MimeError(f"{what} must be a str, not {type(value).__name__}")
    if not value.isascii():
        raise MimeError(f"{what} {value!r} is not ASCII: give the A-label (xn--) form")
    if len(value) > 253 or not pattern.match(value):
        raise MimeError(f"{what} {value!r} is not a valid DNS name (RFC 6376 section 3.5: letters, "
                        "digits and inner hyphens in labels of 1 to 63 characters)")
    return value


def _check_identity(identity: Any, domain: str) -> str | None:
    """RFC 6376 3.5 i=: ``[local]@domain``, the domain d= or a subdomain of
    it. Returned in DKIM-Quoted-Printable (RFC 6376 2.11)."""
    if identity is None:
        return None
    if not isinstance(identity, str) or "@" not in identity:
        raise MimeError(f"identity must be a str 'local@domain' or '@domain', not {identity!r}")
    local, _, host = identity.rpartition("@")
    _check_domain(host, "identity domain", _SELECTOR)
    if host.lower() != domain.lower() and not host.lower().endswith("." + domain.lower()):
        raise MimeError(f"identity domain {host!r} must be {domain!r} or a subdomain of it "
                        "(RFC 6376 section 3.5)")
    if not _LOCAL.match(local):
        raise MimeError(f"identity local part {local!r} is not an RFC 5322 dot-atom")
    return local.replace("=", "=3D") + "@" + host


def _check_headers(headers: Any) -> tuple[str, ...] | None:
    if headers is None:
        return None
    if isinstance(headers, (str, bytes)) or not isinstance(headers, Iterable):
        raise MimeError("headers must be a list of field names, e.g. ['From', 'To', 'Subject']")
    names: list[str] = []
    for name in headers:
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise MimeError(f"{name!r} is not a header field name")
        if name.lower() not in names:
            names.append(name.lower())
    if "from" not in names:
        raise MimeError("the signed headers must include From (RFC 6376 section 5.4)")
    return tuple(names)


def _check_expires(expires: Any) -> Expires:
    if expires is None:
        return None
    if isinstance(expires, bool) or not isinstance(expires, (int, datetime.timedelta, datetime.datetime)):
        raise MimeError("expires must be seconds (int), a timedelta or an aware datetime")
    if isinstance(expires, datetime.datetime):
        if expires.utcoffset() is None:
            raise MimeError("expires must be an aware datetime (with a time zone)")
        return expires
    seconds = expires.total_seconds() if isinstance(expires, datetime.timedelta) else expires
    if seconds <= 0:
        raise MimeError("expires must be a positive duration")
    return expires


def _load_key(key: KeyArg, crypto: Any) -> Any:
    """A private key object from PEM bytes or text, a path to a PEM file,
    or a cryptography key object."""
    if isinstance(key, (crypto.rsa.RSAPrivateKey, crypto.ed25519.Ed25519PrivateKey)):
        return key
    if isinstance(key, str) and "-----BEGIN" in key:
        pem = key.encode("ascii", "replace")
    elif isinstance(key, (str, os.PathLike)):
        try:
            with open(key, "rb") as fh:
                pem = fh.read()
        except OSError as exc:
            raise MimeError(f"cannot read the key file: {exc.strerror}") from None
    elif isinstance(key, (bytes, bytearray)):
        pem = bytes(key)
    else:
        raise MimeError(f"key must be PEM bytes, a path or a private key object, "
                        f"not {type(key).__name__}")
    if b"-----BEGIN" not in pem:
        raise MimeError("the key is not in PEM form (no '-----BEGIN' line)")
    try:
        return crypto.serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise MimeError("the key is encrypted: give it unencrypted (or load it yourself and "
                        "pass the key object)") from None
    except (ValueError, crypto.exceptions.UnsupportedAlgorithm):
        # the error text of the PEM parser is dropped: it may quote key material
        raise MimeError("the key is not a PEM private key that can be read") from None


# ---------------------------------------------------------------- the signer

class DKIMSigner:
    """Signs messages with DKIM (RFC 6376) for ``domain``, with the key
    published at ``selector._domainkey.domain``.

    ``key``: the private key as PEM bytes, PEM text, a path to a PEM file,
    or a ``cryptography`` key object. ``algorithm``: ``"rsa-sha256"`` (an
    RSA key of at least 1024 bits, RFC 8301) or ``"ed25519-sha256"`` (an
    Ed25519 key, RFC 8463). ``headers``: the field names to sign (From
    required); by default those of RFC 6376 section 5.4.1 (and Sender,
    Message-ID, MIME-Version, Content-Type, Content-Transfer-Encoding,
    List-Unsubscribe-Post) that the message has. ``canonicalization``:
    ``"header/body"``, each ``relaxed`` or ``simple``. ``identity``: the
    ``i=`` tag, ``local@domain`` or ``@domain`` within ``domain``.
    ``expires``: seconds or a timedelta after signing, or an aware
    datetime (``x=``). ``oversign``: list every signed field once more than
    it occurs (and Reply-To, Sender, Subject, To, Cc, In-Reply-To,
    References, List-Unsubscribe, List-Unsubscribe-Post even when absent),
    so that none can be added later without breaking the signature.
    ``l=`` is never used.

    Raises ValueError (MimeError) for any bad argument, ImportError when
    ``cryptography`` is not installed.
    """

    def __init__(self, *, domain: str, selector: str, key: KeyArg, algorithm: str = "rsa-sha256",
                 headers: Iterable[str] | None = None, canonicalization: str = "relaxed/relaxed",
                 identity: str | None = None, expires: Expires = None, oversign: bool = True) -> None:
        self.domain = _check_domain(domain, "domain", _DOMAIN)
        self.selector = _check_domain(selector, "selector", _SELECTOR)
        if algorithm not in ALGORITHMS:
            hint = " (RFC 8301: rsa-sha1 must not be used)" if algorithm == "rsa-sha1" else ""
            raise MimeError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}{hint}")
        self.algorithm = algorithm
        if canonicalization not in CANONICALIZATIONS:
            raise MimeError(f"canonicalization must be one of {', '.join(CANONICALIZATIONS)}, "
                            f"not {canonicalization!r}")
        self.canonicalization = canonicalization
        self.headers = _check_headers(headers)
        self.identity = _check_identity(identity, domain)
        self.expires = _check_expires(expires)
        self.oversign = bool(oversign)
        crypto = _crypto()
        private = _load_key(key, crypto)
        if algorithm == "rsa-sha256":
            if not isinstance(private, crypto.rsa.RSAPrivateKey):
                raise MimeError("rsa-sha256 needs an RSA key" + (
                    "; this is an Ed25519 key: use algorithm='ed25519-sha256'"
                    if isinstance(private, crypto.ed25519.Ed25519PrivateKey) else ""))
            if private.key_size < 1024:
                raise MimeError(f"an RSA key of {private.key_size} bits is too short: RFC 8301 "
                                "section 3.2 requires at least 1024 (2048 recommended)")
        elif not isinstance(private, crypto.ed25519.Ed25519PrivateKey):
            raise MimeError("ed25519-sha256 needs an Ed25519 key" + (
                "; this is an RSA key: use algorithm='rsa-sha256'"
                if isinstance(private, crypto.rsa.RSAPrivateKey) else ""))
        self._key = private
        self._crypto = crypto

    def __repr__(self) -> str:
        return (f"DKIMSigner(domain={self.domain!r}, selector={self.selector!r}, "
                f"algorithm={self.algorithm!r}, canonicalization={self.canonicalization!r})")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a DKIMSigner holds a private key and cannot be pickled")

    # ------------------------------------------------------------ the DNS side

    @property
    def dns_name(self) -> str:
        """The DNS name of the key record: ``selector._domainkey.domain``."""
        return f"{self.selector}._domainkey.{self.domain}"

    def dns_record(self) -> str:
        """The TXT record to publish at :attr:`dns_name` (RFC 6376 3.6.1):
        ``v=DKIM1; k=rsa; p=...`` or ``k=ed25519`` (RFC 8463 section 4)."""
        ser = self._crypto.serialization
        public = self._key.public_key()
        if self.algorithm == "rsa-sha256":
            data = public.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
            kind = "rsa"
        else:
            data = public.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
            kind = "ed25519"
        return f"v=DKIM1; k={kind}; p={base64.b64encode(data).decode('ascii')}"

    # ------------------------------------------------------------ signing

    def signature(self, message: Message) -> str:
        """The DKIM-Signature field value for ``message`` (a Part, the
        message as bytes, or an iterable of byte chunks of it), folded with
        CRLF and a space: write ``b"DKIM-Signature: " + value + b"\\r\\n"``
        before the message, unchanged. The body is read in one streaming
        pass. Raises MimeError when the message has no From field."""
        header, _, body = _split(_wire(_chunks(message)))
        return self._sign(header, self._body_hash(body))

    def sign(self, message: Message) -> bytes:
        """The whole message with its DKIM-Signature field first, as CRLF
        bytes (what the sender transmits). Raises MimeError when the message
        has no From field."""
        header, separated, body = _split(_wire(_chunks(message)))
        kept: list[bytes] = []

        def keep(chunks: Iterator[bytes]) -> Iterator[bytes]:
            for chunk in chunks:
                kept.append(chunk)
                yield chunk

        value = self._sign(header, self._body_hash(keep(body)))
        parts = [b"DKIM-Signature: ", value.encode("ascii"), _CRLF, header]
        if separated:
            parts.append(_CRLF)
        return b"".join(parts + kept)

    def _body_hash(self, body: Iterator[bytes]) -> str:
        digest = hashlib.sha256()
        relaxed = self.canonicalization.endswith("/relaxed")
        canon = _RelaxedBody(digest.update) if relaxed else _SimpleBody(digest.update)
        for chunk in body:
            canon.feed(chunk)
        canon.finish()
        return base64.b64encode(digest.digest()).decode("ascii")

    def _names(self, fields: list[tuple[bytes | None, bytes]]) -> list[str]:
        """The h= list: each signed name as often as the message has it,
        once more when oversigning."""
        count: dict[str, int] = {}
        for field_name, _ in fields:
            if field_name is not None:
                key = field_name.decode("ascii", "replace")
                count[key] = count.get(key, 0) + 1
        if not count.get("from"):
            raise MimeError("the message has no From field: it cannot be DKIM signed "
                            "(RFC 6376 section 5.4)")
        extra = 1 if self.oversign else 0
        if self.headers is None:
            names = [n for n in DEFAULT_HEADERS if count.get(n)]
            protect = [n for n in PROTECT_ABSENT if not count.get(n)] if self.oversign else []
        else:
            names, protect = list(self.headers), []
        listed: list[str] = []
        for name in names:
            listed += [name] * (count.get(name, 0) + extra)
        return listed + protect

    def _sign(self, header: bytes, body_hash: str) -> str:
        fields = _fields(header)
        names = self._names(fields)
        now = int(time.time())
        tags = [("v", "1"), ("a", self.algorithm), ("c", self.canonicalization), ("d", self.domain),
                ("s", self.selector)]
        if self.identity is not None:
            tags.append(("i", self.identity))
        tags.append(("t", str(now)))
        if self.expires is not None:
            tags.append(("x", str(self._expiry(now))))
        tags.append(("h", ":".join(names)))
        tags.append(("bh", body_hash))
        unsigned = _fold(tags)
        relaxed = self.canonicalization.startswith("relaxed/")
        # RFC 6376 5.4.2: for each name in h=, the last instance not yet used
        positions: dict[bytes, list[int]] = {}
        for index, (field_name, _) in enumerate(fields):
            if field_name is not None:
                positions.setdefault(field_name, []).append(index)
        digest = hashlib.sha256()
        for name in names:
            stack = positions.get(name.encode("ascii"))
            if stack:    # a name with no instance left contributes nothing (oversigning)
                raw = fields[stack.pop()][1]
                digest.update((_relaxed_field(raw) if relaxed else raw) + _CRLF)
        # RFC 6376 3.7: the DKIM-Signature itself, b= empty, without its CRLF
        own = ("DKIM-Signature: " + unsigned).encode("ascii")
        digest.update(_relaxed_field(own) if relaxed else own)
        return unsigned + _fold_base64(self._primitive(digest.digest()))

    def _expiry(self, now: int) -> int:
        expires = self.expires
        if isinstance(expires, datetime.datetime):
            when = int(expires.timestamp())
        elif isinstance(expires, datetime.timedelta):
            when = now + max(1, int(expires.total_seconds()))
        else:
            assert isinstance(expires, int)
            when = now + expires
        if when <= now:
            # RFC 6376 3.5: x= must be greater than t=
            raise MimeError(f"expires ({when}) is not after the signing time ({now})")
        return when

    def _primitive(self, digest: bytes) -> bytes:
        crypto = self._crypto
        if self.algorithm == "ed25519-sha256":
            # RFC 8463 section 3: PureEdDSA over the SHA-256 hash of the headers
            signed: bytes = self._key.sign(digest)
        else:
            signed = self._key.sign(digest, crypto.padding.PKCS1v15(),
                                    crypto.utils.Prehashed(crypto.hashes.SHA256()))
        return signed


def _fold(tags: list[tuple[str, str]]) -> str:
    """The tag list up to ``b=``, folded (CRLF SP) at tag boundaries and
    between the names of h=; ``b=`` starts a line of its own."""
    out = ""
    width = len("DKIM-Signature: ")
    for name, value in tags:
        pieces = [f"{name}={value};"]
        if name == "h":
            first, *rest = value.split(":")
            pieces = [f"h={first}"] + [":" + n for n in rest]
            pieces[-1] += ";"
        for n, piece in enumerate(pieces):
            gap = "" if n or not out else " "
            if out and width + len(gap) + len(piece) > _WIDTH:
                out += "\r\n "
                width = 1
            elif gap:
                out += gap
                width += 1
            out += piece
            width += len(piece)
    return out + "\r\n b="


def _fold_base64(signed: bytes) -> str:
    text = base64.b64encode(signed).decode("ascii")
    lines = [text[:_WIDTH - 4]] + [text[i:i + _WIDTH - 2] for i in range(_WIDTH - 4, len(text), _WIDTH - 2)]
    return "\r\n  ".join(line for line in lines if line)

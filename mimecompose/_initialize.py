"""``initialize`` (tcllib ``mime::initialize``): a part built from its
content, or a message parsed into a part tree (through ``_parse``).

Building checks every argument and settles the charset of text; the
transfer encoding is chosen later, by the data model, when it is first
needed (``_part``).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from typing import Iterable

from .args import HeaderArg, header_fields, require_str
from ._codecs import encode_rfc2231, mime_charset, python_codec
from ._errors import MimeError
from ._headers import check_name, check_value
from ._parse import parse_bytes, parse_file
from ._part import RESERVED, PartData, Source, scan_content
from ._serialize import Part

__all__ = ["ENCODINGS", "initialize"]

ENCODINGS = ("7bit", "8bit", "binary", "quoted-printable", "base64")

# RFC 2046 section 5.1.1: bchars, 1 to 70 of them, not ending in a space
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def _new_boundary() -> str:
    # "=_" cannot occur in base64 or quoted-printable text (RFC 2045 section 6.7:
    # "=" is always followed by two hex digits or a line break), and 128 random
    # bits make a collision with 7bit/8bit content vanishingly unlikely.
    return "=_" + secrets.token_hex(16)


def initialize(canonical: str | None = None, *, string: str | bytes | None = None,
               file: str | os.PathLike[str] | None = None, parts: Iterable[Part] | None = None,
               params: dict[str, str] | None = None, encoding: str | None = None,
               header: HeaderArg = (), disposition: str | None = None,
               filename: str | None = None, strict: bool = False) -> Part:
    """Create a MIME part (tcllib ``mime::initialize``).

    With ``canonical`` (``"text/plain"``, ``"multipart/mixed"``...) a part is
    built from exactly one of ``string`` (str or bytes), ``file`` (a path,
    read only when the part is serialised) or ``parts`` (for ``multipart/*``
    and ``message/rfc822``). Without ``canonical`` the ``string`` or ``file``
    is parsed as a complete message; ``strict=True`` then raises ParseError
    on the first defect instead of recording it.

    ``params`` (a mapping, or ``(name, value)`` pairs; TypeError for a
    string) become Content-Type parameters (``charset`` defaults to UTF-8
    for text). ``encoding`` forces a Content-Transfer-Encoding, else the
    best one is chosen. ``header`` is a list of ``(name, value)`` pairs
    or a mapping (TypeError for anything else, a string included).
    ``disposition`` (``"attachment"``/``"inline"``) and ``filename`` write
    Content-Disposition (RFC 2231 for non-ASCII names) and the ``name``
    parameter of Content-Type (RFC 2047, for old readers).

    Raises MimeError (a ValueError) for every misuse: not exactly one
    content source, ``parts`` with a leaf type, ``encoding`` with ``parts``,
    Content-Type or Content-Transfer-Encoding in ``header``, an unknown
    encoding or charset, text the charset cannot encode, content that the
    forced encoding cannot carry; HeaderInjectionError for CR/LF/NUL.
    """
    fields = header_fields(header)   # pairs or a mapping; TypeError for other shapes
    sources = [s for s in (string, file, parts) if s is not None]
    if len(sources) != 1:
        raise MimeError("specify exactly one of file=, parts= or string=")
    if canonical is None:
        if parts is not None:
            raise MimeError("parts= needs canonical= (multipart/... or message/rfc822)")
        for arg, label in ((params, "params"), (encoding, "encoding"), (disposition, "disposition"),
                           (filename, "filename")):
            if arg:
                raise MimeError(f"{label}= needs canonical=; without it the input is parsed")
        if file is not None:
            parsed = parse_file(file, strict)
        else:
            assert string is not None   # exactly one source, and parts= was refused
            parsed = parse_bytes(string, strict)
        for name, value in fields:
            parsed.setheader(name, value, mode="append")
        return parsed

    content = require_str(canonical, "canonical=").strip().lower()
    if content.count("/") != 1 or not all(content.split("/")):
        raise MimeError(f"canonical must be type/subtype, not {canonical!r}")
    check_name(content.replace("/", ""))
    part = Part()
    part._content = content
    # a mapping, or (name, value) pairs as header= takes them (TypeError for a string)
    params = dict(params) if isinstance(params, Mapping) else dict(header_fields(params, "params="))
    for pname, pvalue in params.items():
        check_name(pname)
        check_value(pname, pvalue)
    if encoding is not None:
        encoding = require_str(encoding, "encoding=").lower()
        if encoding not in ENCODINGS:
            raise MimeError(f"unknown encoding {encoding!r}: one of {', '.join(ENCODINGS)}")
    container = content.startswith("multipart/") or content == "message/rfc822"

    if parts is not None:
        if not container:
            raise MimeError(f"{canonical} and parts= do not mix: parts need multipart/* or message/rfc822")
        if encoding is not None:
            raise MimeError("encoding= and parts= do not mix")
        if isinstance(parts, (PartData, str, bytes)):
            raise MimeError("parts= takes a list of Part objects (one part: parts=[part])")
        children: list[PartData] = list(parts)
        if not all(isinstance(p, Part) for p in children):
            raise MimeError("parts= takes Part objects")
        if content == "message/rfc822" and len(children) != 1:
            raise MimeError("message/rfc822 wraps exactly one message part")
        part._parts = children
        if content.startswith("multipart/"):
            if "boundary" in params and not _BOUNDARY_RE.fullmatch(params["boundary"]):
                raise MimeError(f"boundary {params['boundary']!r}: 1 to 70 of the characters RFC 2046 "
                                "section 5.1.1 allows (letters, digits, '()+_,-./:=? and space, not last)")
            params.setdefault("boundary", _new_boundary())
    elif content.startswith("multipart/"):
        raise MimeError(f"{canonical} needs parts=")
    elif content == "message/rfc822" and string is not None:
        part._parts = [parse_bytes(string, strict)]
    elif string is not None:
        part._source = Source(data=_content_bytes(content, string, params))
    else:
        assert file is not None   # exactly one source
        path = os.fspath(file)
        if not os.path.isfile(path):
            raise MimeError(f"file= {path!r} is not a readable file")
        part._source = Source(path=path)
        if content.startswith("text/"):
            params.setdefault("charset", "utf-8")

    if filename is not None or disposition is not None:
        if file is not None and filename is None:
            filename = os.path.basename(os.fspath(file))
        disposition = require_str(disposition or "attachment", "disposition=").lower()
        if disposition not in ("attachment", "inline"):
            raise MimeError(f"disposition must be attachment or inline, not {disposition!r}")
        value = disposition
        if filename is not None:
            check_value("filename", filename)
            for seg in encode_rfc2231("filename", filename, quote=True):
                value += "; " + seg
            params.setdefault("name", filename)
        part._headers.add("Content-Disposition", value)

    part._params = params
    for name, value in fields:
        check_name(name)
        if name.lower() in RESERVED:
            raise MimeError(f"header {name} is not allowed in header=: {RESERVED[name.lower()]}")
        part._headers.add(name, value)

    if encoding is not None:
        _check_forced(part, encoding)
        part._encoding = encoding
    elif container:
        part._encoding = None
    return part


def _content_bytes(content: str, string: str | bytes, params: dict[str, str]) -> bytes:
    """Turn string= into the bytes to send, settling the charset of text."""
    text = content.startswith("text/")
    if isinstance(string, str):
        if not text:
            return string.encode("utf-8")
        charset = params.setdefault("charset", "utf-8")
        codec = python_codec(charset)
        if codec is None:
            raise MimeError(f"unknown charset {charset!r}")
        mime_charset(charset)
        try:
            return string.encode(codec)
        except UnicodeEncodeError as exc:
            raise MimeError(f"the text cannot be encoded in {charset}: {exc.reason} at {exc.start}") from None
    if isinstance(string, (bytes, bytearray, memoryview)):
        data = bytes(string)
        if text and "charset" not in params:
            if data.isascii():
                params["charset"] = "us-ascii"
            else:
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError:
                    raise MimeError("text given as bytes that are not UTF-8 needs params={'charset': ...}") from None
                params["charset"] = "utf-8"
        return data
    raise MimeError(f"string= takes str or bytes, not {type(string).__name__}")


def _check_forced(part: Part, encoding: str) -> None:
    """Refuse a forced encoding that cannot carry the content."""
    if part._source is None or part._source.data is None or encoding not in ("7bit", "8bit"):
        return
    ascii_, nul, longest, _bare, _esc, _total = scan_content([part._source.data])
    if encoding == "7bit" and not ascii_:
        raise MimeError("encoding 7bit cannot carry non-ASCII content: use quoted-printable or base64")
    if nul:
        raise MimeError(f"encoding {encoding} cannot carry NUL octets: use base64")
    if longest > 999:
        raise MimeError(f"encoding {encoding} cannot carry lines over 998 octets (RFC 5322 2.1.1)")


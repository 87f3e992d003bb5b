"""The data model of the MIME part tree: :class:`PartData`, what a part's
bytes come from (:class:`Source`, :class:`ParsedBuffer`), and the choice of
a built leaf's transfer encoding.

A part is a leaf (its content comes from a string, bytes or a file) or a
container (``multipart/*`` with child parts, ``message/rfc822`` with the one
message it wraps). Parts built by the caller hold their content decoded and
are encoded when serialised; parts read from a message hold the raw bytes
and are decoded by :meth:`PartData.getbody`.

This module reads and changes parts; it neither parses nor writes them.
The public class ``Part`` (in ``_serialize``) is :class:`PartData` plus the
methods that write a part; ``_parse`` and ``_initialize`` build Parts.
"""

from __future__ import annotations

import os
import stat
from typing import IO, Any, Callable, Iterable, Iterator, Literal, TypeVar, overload

from ._codecs import decode_body, encode_rfc2231, encode_words, field_decode, python_codec, quote_value
from ._errors import Defect, MimeError
from ._headers import Field, Headers, check_name
from .args import require_str

__all__ = ["MESSAGES", "RESERVED", "ParsedBuffer", "PartData", "Source", "scan_content"]

# tcllib refuses these in -header and setheader: they follow from the content.
RESERVED = {
    "content-type": "use canonical= and params= instead of a Content-Type header",
    "content-transfer-encoding": "use encoding= instead of a Content-Transfer-Encoding header",
    "mime-version": "MIME-Version is written by the serialiser",
    "content-md5": "Content-MD5 is not supported (RFC 1864 is obsolete)",
}
_BLOCK = 65536
_MIME_FIELDS = ("content-type", "content-transfer-encoding")   # what _mime_fields() writes
MESSAGES = ("message/rfc822", "message/global")   # containers of one message (RFC 2046 5.2.1, RFC 6532 3.7)


class Source:
    """Where a leaf's bytes come from: memory (``data``), a file path
    (``path``), or the slice ``start:end`` of a parsed buffer (``buf``)."""

    __slots__ = ("data", "path", "buf", "start", "end")

    def __init__(self, data: bytes | None = None, path: str | None = None,
                 buf: "ParsedBuffer | None" = None, start: int = 0, end: int = 0) -> None:
        self.data = data
        self.path = path
        self.buf = buf
        self.start = start
        self.end = end

    def size(self) -> int:
        """The number of octets (a file's size as it is now)."""
        if self.data is not None:
            return len(self.data)
        if self.path is not None:
            return os.path.getsize(self.path)
        return self.end - self.start

    def _buffer(self) -> "ParsedBuffer":
        assert self.buf is not None   # neither data nor path: a slice of a parsed buffer
        return self.buf

    def chunks(self, blocksize: int = _BLOCK) -> Iterator[bytes]:
        """The octets in blocks; a file is opened and read as they are asked for.
        Raises what ParsedBuffer.read raises."""
        if self.data is not None:
            data = self.data
            for i in range(0, len(data), blocksize * 16):
                yield data[i:i + blocksize * 16]
        elif self.path is not None:
            with open(self.path, "rb") as fh:
                while True:
                    block = fh.read(blocksize)
                    if not block:
                        break
                    yield block
        else:
            buf = self._buffer()
            for i in range(self.start, self.end, blocksize * 16):
                yield buf.read(i, min(i + blocksize * 16, self.end))

    def read(self) -> bytes:
        """All the octets at once. Raises what ParsedBuffer.read raises."""
        if self.data is not None:
            return bytes(self.data)
        if self.path is not None:
            with open(self.path, "rb") as fh:
                return fh.read()
        return self._buffer().read(self.start, self.end)


def _file_stamp(fh: IO[bytes]) -> tuple[int, int, int, int]:
    st = os.fstat(fh.fileno())
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


class ParsedBuffer:
    """The bytes a tree was parsed from, shared by every part of that tree:
    held in memory, or (for a parsed file) read from the file again when a
    body is asked for.

    A file is never memory-mapped: a mapping of a file that another process
    truncates kills the interpreter with SIGBUS on the next access. Instead
    each read checks that the file is still the one that was parsed (size,
    modification time, inode) and raises MimeError when it is not.
    ``work`` counts the octets the parser examined (its linearity tests
    read it).
    """

    __slots__ = ("_data", "_file", "_stamp", "_closed", "crlf", "bare_cr", "work")

    def __init__(self, data: bytes, fileobj: IO[bytes] | None = None,
                 stamp: tuple[int, int, int, int] | None = None) -> None:
        self._data: bytes | None = data
        self._file = fileobj
        self._stamp = stamp
        self._closed = False
        # crlf: every line break is CRLF, so raw slices can go out unchanged;
        # bare_cr: some CR is not followed by LF. Counted in C: every CR
        # starts a CRLF and every LF ends one exactly when the three counts
        # agree (a regex scan takes several times longer); without any CR
        # (mail stored with LF line breaks), two memchr searches say it all.
        if b"\r" not in data:
            self.bare_cr = False
            self.crlf = b"\n" not in data
        else:
            pairs = data.count(b"\r\n")
            self.bare_cr = data.count(b"\r") != pairs
            self.crlf = not self.bare_cr and data.count(b"\n") == pairs
        self.work = len(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> tuple["ParsedBuffer", bytes]:
        """Open and read a message file: the buffer (holding the file) and
        its bytes. Raises MimeError when it cannot be read or changes while
        it is read."""
        try:
            fh = open(os.fspath(path), "rb")
        except OSError as exc:
            raise MimeError(f"cannot open {path!r}: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                # a pipe or device cannot be read twice: keep what it gave
                with fh:
                    data = fh.read()
                return cls(data), data
            stamp = _file_stamp(fh)
            data = fh.read()
            if _file_stamp(fh) != stamp or len(data) != stamp[0]:
                raise MimeError(f"{path!r} changed while it was read")
        except OSError as exc:
            fh.close()
            raise MimeError(f"cannot read {path!r}: {exc.strerror}") from None
        except BaseException:
            fh.close()
            raise
        return cls(data, fh, stamp), data

    def release(self) -> None:
        """Drop the in-memory copy of a file's bytes: reads go to the file."""
        if self._file is not None:
            self._data = None

    def read(self, start: int, end: int) -> bytes:
        """The octets ``start:end`` of the parsed message. Raises MimeError
        after close(), or when the parsed file changed since."""
        if self._closed:
            raise MimeError("the part was finalized; its content is no longer available")
        if self._data is not None:
            return self._data[start:end]
        fh = self._file
        assert fh is not None and self._stamp is not None
        try:
            if _file_stamp(fh) != self._stamp:
                raise MimeError(f"the file {fh.name!r} changed since it was parsed")
            if hasattr(os, "pread"):
                data = os.pread(fh.fileno(), end - start, start)
            else:
                fh.seek(start)
                data = fh.read(end - start)
        except OSError as exc:
            raise MimeError(f"cannot read {fh.name!r}: {exc.strerror}") from None
        if len(data) != end - start:
            raise MimeError(f"the file {fh.name!r} changed since it was parsed")
        return data

    def close(self) -> None:
        """Close the file; every read raises MimeError afterwards."""
        if self._file is not None:
            self._file.close()
        self._data = None
        self._file = None
        self._closed = True


_P = TypeVar("_P", bound="PartData")


def _same(text: str) -> str:
    return text


class PartData:
    """The data of one MIME part and the methods that read and change it.

    Only its subclass ``Part`` (``_serialize``), which adds the methods that
    write a part, is ever made: by ``_initialize`` and ``_parse``, which set
    the attributes below. ``defects`` lists what was wrong in a parsed part.
    """

    def __init__(self) -> None:
        self._headers = Headers()
        self._content = "text/plain"
        self._params: dict[str, str] = {}
        self._encoding: str | None = None
        self._source: Source | None = None
        self._encoded = False      # True: _source holds transfer-encoded bytes (parsed)
        self._parts: list[PartData] = []
        self._parsed: ParsedBuffer | None = None
        self._raw: tuple[int, int] | None = None   # whole part in the parsed buffer
        self._body_raw: tuple[int, int] | None = None
        self._dirty = False
        self._auto: str | None = None    # encoding chosen for a built leaf
        self.preamble: bytes | None = None
        self.epilogue: bytes | None = None
        self.unixfrom: bytes | None = None
        self.defects: list[Defect] = []
        self._finalized = False

    # ------------------------------------------------------------ reading

    def _is_leaf(self) -> bool:
        return self._source is not None or not (
            self._content.startswith("multipart/") or self._content in MESSAGES and self._parts)

    @property
    def parsed(self) -> bool:
        """True for a part read from a message, False for a built one.

        A parsed part's header is the fields it was read with: the
        serialiser writes them as they are and adds no Content-Type,
        Content-Transfer-Encoding or MIME-Version of its own.
        """
        return self._parsed is not None

    @overload
    def getheader(self, name: None = None, decode: bool = True) -> list[tuple[str, str]]: ...

    @overload
    def getheader(self, name: str, decode: bool = True) -> list[str]: ...

    def getheader(self, name: str | None = None, decode: bool = True) -> list[str] | list[tuple[str, str]]:
        """Return every value of header ``name`` (RFC 2047 decoded), ``[]``
        when there is none. Without ``name``: every ``(name, value)`` pair
        in order. Content-Type and Content-Transfer-Encoding are included.
        ``decode=False`` gives the values as written (unfolded), which is
        what to parse addresses from."""
        conv: Callable[[str], str] = field_decode if decode else _same
        if name is None:
            return [(f.name, conv(f.value)) for f in self._all_fields()]
        lname = require_str(name, "getheader()").lower()
        # a built part's Content-Type and Content-Transfer-Encoding are
        # worked out from its content only when one of them is asked for
        fields = self._all_fields() if lname in _MIME_FIELDS else self._headers.fields
        return [conv(f.value) for f in fields if f.lname == lname]

    def fields(self, decode: bool = True) -> list[tuple[str, str]]:
        """The header fields the part holds, as ``(name, value)`` pairs in order.

        For a parsed part, every field it was read with; for a built part,
        the ones it was given (``header=``, :meth:`setheader`,
        Content-Disposition) -- without the Content-Type,
        Content-Transfer-Encoding and MIME-Version that are written from its
        content, which :meth:`getheader` includes. Reading them never
        touches the content. Values are RFC 2047 decoded, or as written
        (unfolded) with ``decode=False``.
        """
        conv: Callable[[str], str] = field_decode if decode else _same
        return [(f.name, conv(f.value)) for f in self._headers.fields]

    def _all_fields(self) -> list[Field]:
        if self._parsed is not None:
            return self._headers.fields
        return self._headers.fields + self._mime_fields()

    def _mime_fields(self) -> list[Field]:
        """Content-Type and Content-Transfer-Encoding of a built part."""
        value = self._content
        for name, pvalue in self._params.items():
            if name == "name":
                # the legacy name= is for readers that know neither RFC 2231
                # continuations nor charsets: one quoted string, never split,
                # RFC 2047 encoded when not printable ASCII (as those readers expect)
                printable = pvalue.isascii() and all(" " <= c < "\x7f" for c in pvalue)
                legacy = pvalue if printable else encode_words(pvalue, 66)
                value += "; name=" + quote_value(legacy, True)
                continue
            for seg in encode_rfc2231(name, pvalue, quote=name == "boundary"):
                value += "; " + seg
        fields = [Field("Content-Type", value)]
        cte = self._effective_encoding()
        if cte != "7bit" or self._encoding == "7bit":
            fields.append(Field("Content-Transfer-Encoding", cte))
        return fields

    @overload
    def getproperty(self, name: None = None) -> dict[str, Any]: ...

    @overload
    def getproperty(self, name: str) -> Any: ...

    def getproperty(self, name: str | None = None) -> Any:
        """Return tcllib's properties: ``content`` (type/subtype), ``encoding``
        (the Content-Transfer-Encoding), ``params`` (dict), and ``size``
        (octets of the decoded body) for a leaf or ``parts`` (list of Part)
        for a container. With ``name``, that one; MimeError for an unknown
        name, ``parts`` of a leaf, or ``size`` of a container."""
        props: dict[str, Any] = {"content": self._content, "encoding": self._effective_encoding(),
                                 "params": dict(self._params)}
        if self._is_leaf():
            props["size"] = None
        else:
            props["parts"] = list(self._parts)
        if name is None:
            if "size" in props:
                props["size"] = self._size()
            return props
        if name == "size" and "size" in props:
            return self._size()
        if name not in props:
            if name == "parts":
                raise MimeError("MIME part is a leaf")
            if name == "size":
                raise MimeError("size is a property of leaf parts; this part has parts")
            raise MimeError(f"unknown property {name!r}: content, encoding, params, parts, size")
        return props[name]

    def _size(self) -> int:
        if self._source is None:
            return 0
        if not self._encoded:
            return self._source.size()
        return len(self.getbody())

    @overload
    def getbody(self, decode: Literal[False] = False) -> bytes: ...

    @overload
    def getbody(self, decode: bool) -> bytes | str: ...

    def getbody(self, decode: bool = False) -> bytes | str:
        """Return the content of a leaf as bytes, transfer encoding undone.

        With ``decode=True`` a ``text/*`` body is returned as str, decoded
        with its charset (undecodable bytes replaced). Raises MimeError for
        a part that has parts (``Part.getbody`` gives the bytes of the
        message a ``message/rfc822`` part wraps).
        """
        self._check_alive()
        if self._source is None:
            raise MimeError(f"{self._content} has parts, not a body: use getproperty('parts')")
        data = self._source.read()
        if self._encoded:
            data, problem = decode_body(data, self._encoding or "7bit")
            if problem and not any(d.kind == "body-decoding" for d in self.defects):
                self.defects.append(Defect("body-decoding", problem))
        if decode and self._content.startswith("text/"):
            codec = python_codec(self._params.get("charset", "us-ascii")) or "utf-8"
            if codec == "ascii":
                codec = "utf-8"  # undeclared 8-bit text is nearly always UTF-8 today
            return data.decode(codec, "replace")
        return data

    # ------------------------------------------------------------ changing

    def setheader(self, name: str, value: str = "", mode: str = "write") -> list[str]:
        """Set header ``name``; returns its previous values.

        ``mode="write"`` replaces every value by ``value``; ``"append"`` adds
        one more; ``"delete"`` removes them all. Raises HeaderInjectionError
        for CR, LF or NUL and MimeError for Content-Type,
        Content-Transfer-Encoding and MIME-Version (they follow from the
        content) or an unknown mode.
        """
        self._check_alive()
        check_name(name)
        lname = name.lower()
        if lname in RESERVED:
            raise MimeError(f"header {name} may not be set: {RESERVED[lname]}")
        previous = [field_decode(v) for v in self._headers.get_all(name)]
        if mode == "write":
            self._headers.set(name, value)
        elif mode == "append":
            self._headers.add(name, value)
        elif mode == "delete":
            self._headers.remove(name)
        else:
            raise MimeError(f"unknown mode {mode!r}: write, append or delete")
        self._dirty = True
        return previous

    # ------------------------------------------------------------ life time

    def finalize(self) -> None:
        """Release the file (or memory map) a parsed tree holds, for this
        part and all parts below it. The part cannot be used afterwards."""
        for part in self._parts:
            part.finalize()
        if self._parsed is not None:
            self._parsed.close()
        self._finalized = True

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finalize()

    def _check_alive(self) -> None:
        if self._finalized:
            raise MimeError("the part was finalized")

    def __repr__(self) -> str:
        if self._is_leaf():
            return f"<Part {self._content} leaf>"
        return f"<Part {self._content} with {len(self._parts)} parts>"

    # ------------------------------------------------------------ encodings

    def _effective_encoding(self) -> str:
        if self._encoding is not None:
            return self._encoding
        if self._source is None:
            found = {p._effective_encoding() for p in self._parts}
            if "binary" in found:
                return "binary"
            if "8bit" in found:
                return "8bit"
            return "7bit"
        if self._parsed is not None:
            return "7bit"
        if self._auto is None:
            self._auto = _choose_encoding(self)
        return self._auto


def scan_content(chunks: Iterable[bytes], text: bool = True) -> tuple[bool, bool, int, bool, int, int]:
    """Look through content once: (ascii, has NUL, longest line, has a bare
    CR or LF, octets QP must escape, total octets). With ``text=False`` it
    stops at the first non-ASCII octet (such content goes as base64)."""
    ascii_ = True
    nul = False
    longest = 0
    current = 0
    bare = False
    escapes = 0
    total = 0
    prev_cr = False
    for block in chunks:
        total += len(block)
        if ascii_ and not block.isascii():
            ascii_ = False
            if not text:
                break
        if not nul and b"\x00" in block:
            nul = True
        if block.isascii():
            escapes += block.count(b"=")
        else:
            escapes += len(block) - len(block.translate(None, _QP_ESCAPED))
        lines = block.split(b"\n")
        if len(lines) == 1:
            current += len(block)
        else:
            longest = max(longest, current + len(lines[0]), max(map(len, lines[1:-1]), default=0))
            current = len(lines[-1])
        if not bare:
            crlf = block.count(b"\r\n") + (1 if prev_cr and block[:1] == b"\n" else 0)
            if block.count(b"\n") != crlf or block.count(b"\r") - (1 if block.endswith(b"\r") else 0) \
                    != block.count(b"\r\n"):
                bare = True
        prev_cr = block.endswith(b"\r")
    if prev_cr:
        bare = True
    return ascii_, nul, max(longest, current), bare, escapes, total


_QP_ESCAPED = bytes(range(128, 256)) + b"="


def _choose_encoding(part: PartData) -> str:
    """Pick the Content-Transfer-Encoding of a built leaf (RFC 2045 section 6).

    text/*: 7bit when ASCII with lines of at most 998 octets (RFC 5322
    section 2.1.1), else the shorter of quoted-printable and base64. Other
    types: 7bit only when the content would reach the reader unchanged
    (ASCII, CRLF line breaks, short lines); else base64. Binary files are
    not scanned: they go as base64.
    """
    src = part._source
    assert src is not None   # a leaf
    is_text = part._content.startswith("text/")
    if src.path is not None and not is_text:
        return "base64"
    ascii_, nul, longest, bare, escapes, total = scan_content(src.chunks(), is_text)
    # line length is measured with the line break; 998 + CRLF = 1000
    if is_text:
        if ascii_ and not nul and longest <= 999:
            return "7bit"
        qp_size = total + 2 * escapes
        return "quoted-printable" if qp_size <= total * 4 // 3 and not nul else "base64"
    if ascii_ and not nul and not bare and longest <= 999:
        return "7bit"
    return "base64"

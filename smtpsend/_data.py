"""Message data on the wire: CRLF line breaks and dot-stuffing for DATA
(RFC 5321 section 4.5.2), in blocks, with the terminating "." written in
the same block as the end of the message."""

from __future__ import annotations

import zlib
from itertools import chain
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

from mimecompose import DKIMSigner, LineBreakNormalizer, MimeError, Part

from ._errors import UsageError

__all__ = ["DKIM", "DotStuffer", "MessageChanged", "MessageData", "bdat_blocks", "data_blocks", "dkim_signers",
           "unstuff", "xtext"]

# dkim= as given: one signer, several (each signs in turn), or None
DKIM = Union[DKIMSigner, Sequence[DKIMSigner], None]

BLOCK = 65536
HEAD = 65536      # octets of the start of a message kept for monitors
_KEEP = 4 << 20   # messages up to this size are serialised once and kept


def _only_crlf(data: bytes) -> bool:
    """True when every CR and every LF in ``data`` is part of a CRLF."""
    if b"\r" not in data:
        return b"\n" not in data
    crs = data.count(b"\r")
    return crs == data.count(b"\n") == data.count(b"\r\n")


class DotStuffer:
    """CRLF-normalise and dot-stuff a stream, across chunk boundaries.

    Every line break becomes CRLF -- a bare CR or LF never reaches the wire,
    which closes the SMTP smuggling class of CVE-2023-51764 -- and a line
    that starts with "." gets a second one.

    With ``normalised`` the stream is known to be CRLF already (what a
    non-binary MessageData yields: it normalised it), so only the dots are
    looked at: one ``bytes.replace`` per chunk, plus a "." that starts a
    chunk after one that ended a line (or the very first line).
    """

    def __init__(self, normalised: bool = False) -> None:
        self._lines: Optional[LineBreakNormalizer] = None if normalised else LineBreakNormalizer(b"\r\n")
        self._at_line_start = True

    def feed(self, data: bytes) -> bytes:
        if self._lines is not None:
            data = self._lines.feed(data)
        return self._stuff(data)

    def _stuff(self, data: bytes) -> bytes:
        if not data:
            return data
        if b"\n." in data:
            data = data.replace(b"\n.", b"\n..")
        if self._at_line_start and data[:1] == b".":
            data = b"." + data
        self._at_line_start = data[-1:] == b"\n"
        return data

    def finish(self) -> bytes:
        """The rest, a final CRLF if the message lacks one, and ".\\r\\n"."""
        tail = self._stuff(self._lines.flush()) if self._lines is not None else b""
        if not self._at_line_start:
            tail += b"\r\n"
        return tail + b".\r\n"


def xtext(text: str) -> str:
    """RFC 3461 section 4 xtext: "+" followed by two hex digits for every
    octet outside "!".."~", and for "+" and "=" themselves."""
    return "".join(chr(b) if 33 <= b <= 126 and b not in (43, 61) else f"+{b:02X}"
                   for b in text.encode("utf-8"))


def unstuff(line: bytes) -> bytes:
    """Undo dot-stuffing on one received line (RFC 5321 section 4.5.2,
    RFC 1939 section 3): the inverse of DotStuffer, used by the POP3 client."""
    return line[1:] if line.startswith(b".") else line


class CRLFChunks(Iterator[bytes]):
    """The chunks of a non-binary MessageData: every line break in them is
    CRLF already (MessageData made it so), which data_blocks relies on to
    dot-stuff them without normalising them a second time."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def __next__(self) -> bytes:
        return next(self._chunks)


def data_blocks(chunks: Iterable[bytes], trailer: bytes = b"") -> Iterator[bytes]:
    """Yield the DATA stream in blocks of about BLOCK octets; the last one
    carries the terminator and ``trailer`` (a pipelined QUIT), so the end of
    the message never goes out as a tiny write of its own. Line breaks are
    made CRLF unless ``chunks`` is a CRLFChunks (MessageData.chunks() of a
    non-binary message), whose line breaks are CRLF already."""
    stuffer = DotStuffer(normalised=isinstance(chunks, CRLFChunks))
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        out = stuffer.feed(chunk)
        if out:
            pending.append(out)
            size += len(out)
        if size >= BLOCK:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(stuffer.finish() + trailer)
    yield b"".join(pending)


def dkim_signers(dkim: Any) -> tuple[DKIMSigner, ...]:
    """``dkim=`` checked: None is no signature, a DKIMSigner one, a list or
    tuple of them one each, in that order. TypeError naming ``dkim=`` for
    anything else (a str, a dict, a signer's settings)."""
    if dkim is None:
        return ()
    if isinstance(dkim, DKIMSigner):
        return (dkim,)
    if isinstance(dkim, (list, tuple)) and all(isinstance(s, DKIMSigner) for s in dkim):
        return tuple(dkim)
    raise TypeError(f"dkim= must be a mimecompose.DKIMSigner, a list of them, or None, "
                    f"not {type(dkim).__name__}")


class MessageChanged(UsageError):
    """The message's bytes changed between measuring it and sending it (a
    ``file=`` attachment written to or truncated meanwhile). Raised before
    the last of the data goes out, so the server never holds a complete
    message that differs from the one announced (SIZE=, BDAT): the
    transaction is unfinished and the connection must be dropped."""


class MessageData:
    """The serialised message: its size, whether it has 8-bit octets or
    binary parts, measured once; the chunks can be produced again for
    another server.

    Up to 4 MiB it is kept in memory; above that it is serialised again on
    each use, so memory stays bounded -- and checked against what was
    measured (size and CRC-32) as it goes: every chunk is released only
    once the next one exists, the last only once the whole matched, and a
    difference raises MessageChanged. So the octets sent are always the
    octets announced (RFC 3030 section 2: the server reads exactly the
    BDAT size, and whatever follows as commands).

    Line breaks are made CRLF here, and a message that does not end in one
    gets one, so ``size`` is exactly what BDAT announces and DATA and BDAT
    carry the same bytes -- except in a message with binary parts, whose
    octets go out as they are (only ever by BDAT with BODY=BINARYMIME).

    With ``dkim`` signers, each signs this form of the message in turn
    (one streaming pass each, over the very octets measured: a change
    meanwhile is MessageChanged) and its DKIM-Signature field goes before
    the fields already there (RFC 6376 section 5.6), so the last signer's
    comes first; ``size``, ``head`` and ``chunks()`` include the fields.
    The 7-bit form is signed on its own, when it is first asked for.
    Raises UsageError for a binary message with signers (DKIM reads the
    body as lines: sign the 7-bit form), and what the signers raise.
    """

    def __init__(self, produce: Callable[[], Iterable[bytes]], binary: bool = False,
                 seven_bit: Optional[Callable[[], "MessageData"]] = None,
                 dkim: Sequence[DKIMSigner] = (), crlf: bool = False) -> None:
        if dkim and binary:
            raise UsageError("a message with binary parts cannot be DKIM signed as it is: "
                             "DKIM reads the body as lines (send its 7-bit form)")
        self.binary = binary
        # produce() yields CRLF line breaks only (a Part that _scan() found
        # safe): not normalised again, only given its final CRLF
        self._crlf = crlf
        self._source = produce
        self._seven_bit_factory = seven_bit
        self._seven_bit: Optional[MessageData] = None
        kept: list[bytes] = []
        size = 0
        crc = 0
        stream = self._stream()
        for chunk in stream:   # up to _KEEP: kept, and looked at once they are all in
            kept.append(chunk)
            size += len(chunk)
            if size > _KEEP:
                break
        if size <= HEAD and len(kept) > 1:
            kept = [b"".join(kept)]   # a small message: one chunk, one write
        if len(kept) == 1:   # a small message, or one large chunk: the loops below in one step
            eightbit = not kept[0].isascii()
            head = kept[0][:HEAD]
        else:
            eightbit = not all(chunk.isascii() for chunk in kept)
            head = b""
            for chunk in kept:
                head += chunk[:HEAD - len(head)]
                if len(head) >= HEAD:
                    break
        if size > _KEEP:   # too large to keep: measured (size, CRC-32), serialised again to be sent
            for chunk in kept:
                crc = zlib.crc32(chunk, crc)
            kept.clear()   # memory stays bounded by _KEEP
            for chunk in stream:
                size += len(chunk)
                if not eightbit and not chunk.isascii():
                    eightbit = True
                crc = zlib.crc32(chunk, crc)
        self._kept: Optional[list[bytes]] = kept if size <= _KEEP else None
        self._crc = crc
        self._measured = size
        self.eightbit = eightbit
        # head is part of what eightbit looked at: ASCII there, ASCII here
        end = head.find(b"\r\n\r\n") if eightbit else -1
        self.header_utf8 = eightbit and not (head if end == -1 else head[:end]).isascii()
        #: the DKIM-Signature fields (empty without signers)
        self.signature = self._sign(dkim) if dkim else b""
        #: the octets sent: the signature fields and the message
        self.size = len(self.signature) + size
        #: the first HEAD octets: what a monitor shows of the header
        self.head = (self.signature + head)[:HEAD] if self.signature else head

    def _sign(self, signers: Sequence[DKIMSigner]) -> bytes:
        """The DKIM-Signature fields, each signer's over the message with
        the fields before it (later ones prepended: RFC 6376 section 5.6).
        Each value is written exactly as the signer folded it (CRLF SP),
        which is the form its own header hash covered."""
        fields = b""
        for signer in signers:
            value = signer.signature(chain([fields], self._message()))
            fields = b"DKIM-Signature: " + value.encode("ascii") + b"\r\n" + fields
        if not _only_crlf(fields):   # chunks() promises CRLF only (CRLFChunks)
            raise UsageError("a DKIM signer folded its DKIM-Signature field with a bare CR or LF")
        return fields

    def _stream(self) -> Iterator[bytes]:
        """The message as it goes out, in non-empty chunks: CRLF line
        breaks and a final CRLF, or (binary) the octets as they are."""
        if self.binary:
            for chunk in self._source():
                if chunk:
                    yield chunk
            return
        if self._crlf:
            last = b""
            for chunk in self._source():
                if chunk:
                    last = chunk
                    yield chunk
            if last and not last.endswith(b"\n"):
                yield b"\r\n"   # RFC 5321 section 4.1.1.4, as below
            return
        lines = LineBreakNormalizer(b"\r\n")
        ends_in_crlf = True
        for chunk in self._source():
            out = lines.feed(chunk)
            if out:
                ends_in_crlf = out.endswith(b"\n")   # every LF out of the normaliser is a CRLF
                yield out
        tail = lines.flush()
        if tail:
            yield tail
        elif not ends_in_crlf:
            # RFC 5321 section 4.1.1.4: the data ends with a line break; DATA
            # would add it, so BDAT gets it too (one message, one set of bytes)
            yield b"\r\n"

    @classmethod
    def from_part(cls, part: Part, add: Iterable[tuple[str, str]] = (),
                  omit: Iterable[str] = frozenset(), dkim: Sequence[DKIMSigner] = ()) -> "MessageData":
        """The transmitted form of a mimecompose Part (``add``/``omit`` as
        for ``Part.iterbytes``), with its 7-bit variant available on demand.
        Only the transfer-encoding labels are read to find binary parts: no
        body is decoded to be sent. With ``dkim`` signers each form is
        signed as it is sent, the 7-bit one when first asked for; a
        message with binary parts is then sent in its 7-bit form only
        (base64), since DKIM cannot cover raw binary octets. Raises what
        ``Part.iterbytes`` and the signers raise."""
        fields = list(add)
        names = frozenset(omit)
        signers = tuple(dkim)
        binary, crlf = _scan(part)

        def seven_bit() -> "MessageData":
            return cls(lambda: part.iterbytes(add=fields, omit=names, seven_bit=True), dkim=signers,
                       crlf=crlf)

        if signers and binary:
            return seven_bit()
        return cls(lambda: part.iterbytes(add=fields, omit=names), binary=binary, seven_bit=seven_bit,
                   dkim=signers, crlf=crlf)

    def seven_bit(self) -> "MessageData":
        """The same message with 8bit and binary parts re-encoded (QP or
        base64), for a server without 8BITMIME (RFC 6152) or BINARYMIME.
        Without a way to re-encode, the message itself (``binary`` still
        set: the caller must not send it by DATA)."""
        if self._seven_bit_factory is None:
            return self
        if self._seven_bit is None:
            self._seven_bit = self._seven_bit_factory()
        return self._seven_bit

    def chunks(self) -> Iterator[bytes]:
        """The octets to send, exactly ``size`` of them: the signature
        fields, then the message. Raises MessageChanged, before the last
        chunk, when they are no longer the ones measured."""
        chunks = chain([self.signature], self._message()) if self.signature else self._message()
        return chunks if self.binary else CRLFChunks(chunks)

    def _message(self) -> Iterator[bytes]:
        """The message without the signature fields, as measured."""
        if self._kept is not None:
            return iter(self._kept)
        return self._checked()

    def _checked(self) -> Iterator[bytes]:
        size = 0
        crc = 0
        held: Optional[bytes] = None
        for chunk in self._stream():
            size += len(chunk)
            if size > self._measured:
                raise MessageChanged(f"the message grew while it was being sent (more than the "
                                     f"{self._measured} octets measured): was a file attachment written to?")
            crc = zlib.crc32(chunk, crc)
            if held is not None:
                yield held
            held = chunk
        if size != self._measured or crc != self._crc:
            raise MessageChanged(f"the message changed while it was being sent ({size} octets, "
                                 f"{self._measured} measured): was a file attachment written to?")
        if held is not None:
            yield held


def _has_binary(part: Part) -> bool:
    """True when ``part`` or a part inside it is labelled binary (RFC 3030)."""
    return _scan(part)[0]


def _scan(part: Part) -> tuple[bool, bool]:
    """(binary, crlf) for ``part``: whether it or a part inside it is
    labelled binary (RFC 3030), and whether ``part.iterbytes()`` is sure to
    yield CRLF line breaks only, so MessageData need not normalise them.

    Sure only for a built message (every part made with
    ``mimecompose.initialize``, none parsed): its bodies come out of the
    encoders (line breaks made CRLF in text and in any 7bit or 8bit body,
    base64, quoted-printable), its preambles and epilogues are written with
    CRLF, and its fields come out of the field formatter. A binary body is
    carried as it is (and sent with BDAT or in base64). A parsed part -- which raw bytes and email.message
    objects become -- is always normalised: its octets are re-read from
    the buffer (or the file it was parsed from) as they were, so no bare
    CR or LF can reach the wire whatever happened to them since
    (RFC 5321 section 2.3.8). tests/test_data.py checks the claim over
    many kinds of part.

    Reads the labels only, through public Part methods: the ``content``
    and ``encoding`` properties, never ``size`` (which decodes the body).
    """
    binary = False
    crlf = True
    stack = [part]
    while stack:
        node = stack.pop()
        encoding = node.getproperty("encoding")
        if encoding == "binary":
            binary = True
        if node.parsed:
            crlf = False
        try:
            stack.extend(node.getproperty("parts"))
        except MimeError:   # a leaf
            pass
    return binary, crlf


def bdat_blocks(prefix: bytes, chunks: Iterable[bytes], trailer: bytes = b"") -> Iterator[bytes]:
    """BDAT data (RFC 3030): no dot-stuffing, no terminator; ``prefix``
    (the commands before it) and ``trailer`` (commands after it) share the
    first and last blocks, so a whole pipelined transaction can be one write."""
    pending = [prefix]
    size = len(prefix)
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= BLOCK:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(trailer)
    yield b"".join(pending)

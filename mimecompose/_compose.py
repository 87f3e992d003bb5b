"""``compose``: the common message shapes in one call, built on ``initialize``.

::

    mixed                          (only with attachments)
    ├── alternative                (only with both text and html)
    │   ├── text/plain
    │   └── related                (only with inline images)
    │       ├── text/html
    │       └── image/png  Content-ID: <logo>
    └── application/pdf  attachment
"""

from __future__ import annotations

import mimetypes
import os
from typing import Iterable, Mapping, Union, cast

from .args import HeaderArg, header_fields, one_or_many
from ._errors import MimeError
from ._initialize import initialize
from ._serialize import Part

__all__ = ["compose"]

Content = Union[str, "os.PathLike[str]", Part,
                tuple[str, Union[str, bytes]], tuple[str, Union[str, bytes], str]]


def _guess(filename: str) -> str:
    ctype, encoding = mimetypes.guess_type(filename)
    if ctype is None or encoding is not None:
        return "application/octet-stream"
    return ctype


def _file_part(item: Content, disposition: str, cid: str | None = None) -> Part:
    """A leaf from a path, a Part, or a ``(filename, bytes[, content_type])`` tuple."""
    header = [("Content-ID", f"<{cid}>")] if cid else []
    if isinstance(item, Part):
        if cid:
            item.setheader("Content-ID", f"<{cid}>")
        return item
    if isinstance(item, tuple):
        if len(item) not in (2, 3):
            raise MimeError("an attachment tuple is (filename, bytes) or (filename, bytes, content_type)")
        filename, data = item[0], item[1]
        ctype = item[2] if len(item) == 3 else _guess(filename)
        return initialize(ctype, string=data, disposition=disposition, filename=filename, header=header)
    path = os.fspath(item)
    return initialize(_guess(path), file=path, disposition=disposition,
                      filename=os.path.basename(path), header=header)


def compose(text: str | None = None, html: str | None = None, *,
            attachments: Content | Iterable[Content] = (), inline: Mapping[str, Content] | None = None,
            header: HeaderArg = ()) -> Part:
    """Build the usual message tree from its pieces.

    ``text`` and ``html`` are the bodies (both: multipart/alternative).
    ``inline`` maps Content-IDs to images the HTML shows as ``cid:<id>``
    (multipart/related). ``attachments`` are paths, Parts, or
    ``(filename, bytes[, content_type])`` tuples (multipart/mixed); a
    single path or Part may be given alone (``attachments="report.pdf"``
    is one file). Types are guessed from file names. ``header`` (pairs or
    a mapping) goes on the top part.
    Raises MimeError when there is no body at all or ``inline`` comes
    without ``html``; TypeError for arguments of the wrong shape (bytes
    for ``attachments``: give ``(filename, data)``).
    """
    header = header_fields(header)
    if isinstance(attachments, tuple) and len(attachments) in (2, 3) \
            and isinstance(attachments[1], (bytes, bytearray)):
        attachments = [cast(Content, attachments)]   # one (filename, data[, type]) given alone
    attachments = one_or_many(attachments, "attachments=", single=(str, os.PathLike, Part),
                              hint=": give content as a (filename, data) pair")
    if text is None and html is None and not attachments:
        raise MimeError("compose needs text=, html= or attachments=")
    if inline and html is None:
        raise MimeError("inline= images need html= that refers to them as cid:")
    body: Part | None = None
    if html is not None:
        body = initialize("text/html", string=html)
        if inline:
            images = [_file_part(item, "inline", cid) for cid, item in inline.items()]
            body = initialize("multipart/related", parts=[body, *images],
                              params={"type": "text/html"})
    if text is not None:
        plain = initialize("text/plain", string=text)
        body = plain if body is None else initialize("multipart/alternative", parts=[plain, body])
    if attachments:
        files = [_file_part(item, "attachment") for item in attachments]
        body = initialize("multipart/mixed", parts=([body] if body is not None else []) + files)
    assert body is not None   # one of text, html, attachments was checked above
    for name, value in header:
        body.setheader(name, value, mode="append")
    return body

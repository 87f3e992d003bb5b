"""Errors and defects of mimecompose.

::

    ValueError
     └── MimeError                 bad input from the caller
          ├── HeaderInjectionError  CR, LF or NUL in a header name or value
          └── ParseError            a malformed message, raised only with strict=True

Lenient parsing never raises: what is wrong with the input is recorded as a
:class:`Defect` on the part where it was found (``part.defects``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Defect", "HeaderInjectionError", "MimeError", "ParseError"]


class MimeError(ValueError):
    """The caller asked for something that cannot be built or is not allowed."""


class HeaderInjectionError(MimeError):
    """A header name or value carries CR, LF or NUL (a header injection attempt)."""


class ParseError(MimeError):
    """A message is malformed and the caller asked for strict parsing.

    ``defect`` is the first :class:`Defect` found.
    """

    def __init__(self, defect: "Defect") -> None:
        super().__init__(f"{defect.kind}: {defect.detail}")
        self.defect = defect


@dataclass(frozen=True)
class Defect:
    """Something wrong with a parsed message, recorded instead of raised.

    ``kind`` is a short stable name (``"missing-boundary-end"``); ``detail``
    says what was found.
    """

    kind: str
    detail: str

"""mimecompose: build, parse and serialise MIME messages (tcllib ``mime`` style).

::

    import mimecompose
    part = mimecompose.initialize(canonical="text/plain", string="Hello",
                                  header=[("Subject", "Hi")])
    part.setheader("To", "Bob <bob@example.com>")
    data = part.buildmessage()               # CRLF bytes
    again = mimecompose.initialize(string=data)  # parse
"""

from ._address import Address, formataddress, iter_addresses, parseaddress
from ._codecs import LineBreakNormalizer, field_decode, word_decode, word_encode
from ._compose import compose
from ._date import formatdate, parsedatetime
from ._dkim import DKIMSigner
from ._errors import Defect, HeaderInjectionError, MimeError, ParseError
from ._headers import checkheader
from ._initialize import initialize
from ._serialize import Part
from . import smime  # S/MIME; imports cryptography only when called

__all__ = [
    "Address",
    "DKIMSigner",
    "Defect",
    "HeaderInjectionError",
    "LineBreakNormalizer",
    "MimeError",
    "ParseError",
    "Part",
    "checkheader",
    "compose",
    "field_decode",
    "formataddress",
    "formatdate",
    "initialize",
    "iter_addresses",
    "parseaddress",
    "parsedatetime",
    "word_decode",
    "word_encode",
]

__version__ = "0.1.0"

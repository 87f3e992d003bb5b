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
from ._codecs import field_decode, word_decode, word_encode
from ._compose import compose
from ._date import formatdate, parsedatetime
from ._errors import Defect, HeaderInjectionError, MimeError, ParseError
from ._part import Part, initialize

__all__ = [
    "Address",
    "Defect",
    "HeaderInjectionError",
    "MimeError",
    "ParseError",
    "Part",
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

"""A password or token that never shows itself.

::

    secret = Secret("hunter2")
    repr(secret), str(secret)      # "Secret('***')", "***"
    secret.reveal()                # "hunter2": only where it is put on the wire
    pickle.dumps(secret)           # TypeError: never written anywhere

The value is kept masked with a random pad, so that a debugger or an
error tracker that walks ``vars()`` and ``__slots__`` of the objects that
hold it finds no copy of the text (this is not encryption: the process can
always read it back); it cannot be pickled, and copying returns the same
object. The API is deliberately tiny: ``Secret(value)``,
``reveal()``, and :func:`wrap` for optional arguments.
"""

from __future__ import annotations

import secrets
from typing import NoReturn, Optional, Union

__all__ = ["Secret", "wrap"]


class Secret:
    """A string that ``repr``, ``str``, ``vars`` and ``pickle`` never show."""

    __slots__ = ("_masked", "_pad")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a str, not {type(value).__name__}")
        # surrogatepass: any str can be held; whether it can be sent is
        # checked by whoever sends it (smtpsend checks before connecting)
        data = value.encode("utf-8", "surrogatepass")
        pad = secrets.token_bytes(len(data))
        self._masked = bytes(a ^ b for a, b in zip(data, pad))
        self._pad = pad

    def reveal(self) -> str:
        """The secret itself."""
        data = bytes(a ^ b for a, b in zip(self._masked, self._pad))
        return data.decode("utf-8", "surrogatepass")

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Secret cannot be pickled: it would write the secret out")

    def __copy__(self) -> "Secret":
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> "Secret":
        return self


def wrap(value: Union[str, Secret, None]) -> Optional[Secret]:
    """``value`` as a Secret (None stays None, a Secret stays itself).
    Raises TypeError for anything but a str, a Secret or None."""
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)

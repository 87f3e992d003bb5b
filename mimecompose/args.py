"""The shapes of the arguments every entry point takes, normalised in one place
(public: libraries built on mimecompose, smtpsend among them, take the same shapes).

``header=`` (on initialize, compose, envelope, transmitted, sendmessage,
Client.sendmessage) is a sequence of ``(name, value)`` pairs or a mapping;
``attachments=``, ``recipients=``, ``servers=`` and ``ports=`` are a list,
or a single item where a single item is natural. A string is never taken
apart into its characters (``{"To": "o"}`` iterated by key would give the
field ``T: o``; ``"report.pdf"`` iterated would be ten attachments).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Union

__all__ = ["HeaderArg", "header_fields", "one_or_many", "require_str"]

HeaderArg = Union[Mapping[str, str], Iterable[tuple[str, str]], None]


def header_fields(header: HeaderArg, what: str = "header=") -> list[tuple[str, str]]:
    """``header`` as a list of ``(name, value)`` pairs of str, in order.

    A mapping gives its items; ``None`` nothing. Raises TypeError for a
    string or bytes, for an item that is not a pair, and for a name or value
    that is not a str (nothing is converted silently).
    """
    if header is None or (type(header) in (tuple, list) and not header):   # the usual: none given
        return []
    if isinstance(header, (str, bytes, bytearray)):
        raise TypeError(f"{what} takes (name, value) pairs or a mapping, not a {type(header).__name__}")
    items: Iterable[Any] = header.items() if isinstance(header, Mapping) else header
    try:
        iterator = iter(items)
    except TypeError:
        raise TypeError(f"{what} takes (name, value) pairs or a mapping, not a "
                        f"{type(header).__name__}") from None
    fields = []
    for item in iterator:
        if isinstance(item, (str, bytes, bytearray)) or not isinstance(item, (tuple, list)) \
                or len(item) != 2:
            raise TypeError(f"{what} items are (name, value) pairs, not {item!r}")
        name, value = item
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"{what} names and values are str, not {type(name).__name__} and "
                            f"{type(value).__name__} in {item!r}")
        fields.append((name, value))
    return fields


def one_or_many(value: Any, what: str, single: tuple[type, ...] = (str,), hint: str = "") -> list[Any]:
    """``value`` as a list: an instance of ``single`` (str by default) is one
    item, ``None`` no items, any other iterable its items.

    Raises TypeError for bytes, alone or as an item (iterating them would
    give numbers), and for a value that is neither a single item nor
    iterable; ``hint`` is added to the message.
    """
    if value is None:
        return []
    if isinstance(value, single):
        return [value]
    if isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{what} does not take bytes{hint}")
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{what} takes one item or a list of them, not a {type(value).__name__}") from None
    if any(isinstance(item, (bytes, bytearray)) for item in items):
        raise TypeError(f"{what} does not take bytes{hint}")
    return items


def require_str(value: Any, what: str) -> str:
    """``value``, which must be a str: TypeError naming ``what`` otherwise
    (a caller's bytes, number or None is never converted silently)."""
    if not isinstance(value, str):
        kind = type(value).__name__
        raise TypeError(f"{what} takes a str, not {'an' if kind[:1] in 'aeiou' else 'a'} {kind}")
    return value

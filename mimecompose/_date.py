"""RFC 5322 dates: ``parsedatetime`` reads them (obsolete forms too),
``formatdate`` writes them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["formatdate", "parsedatetime"]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name.lower(): i for i, name in enumerate(_MONTHS, 1)}
_MONTH_NUMBER.update({"june": 6, "july": 7, "sept": 9})

# RFC 5322 section 4.3 obs-zone. Military letters are ambiguous in the wild
# (RFC 1123 got their sign backwards), so the RFC says to treat them as -0000.
_ZONES = {
    "ut": 0, "utc": 0, "gmt": 0, "z": 0,
    "edt": -4, "est": -5, "cdt": -5, "cst": -6,
    "mdt": -6, "mst": -7, "pdt": -7, "pst": -8,
}

_DATE_RE = re.compile(
    r"""^\s*
    (?:(?P<wday>[A-Za-z]+)\s*,?\s*)?           # day of week, comma optional (obs)
    (?P<day>\d{1,2})\s*[-\s]\s*
    (?P<month>[A-Za-z]+)\s*[-\s]\s*
    (?P<year>\d{2,4})\s+
    (?P<hour>\d{1,2})\s*:\s*(?P<minute>\d{2})
    (?:\s*:\s*(?P<second>\d{2}))?
    (?:\.\d+)?                                  # fractional seconds, seen in the wild
    \s*(?P<zone>[+-]\d{4}|[+-]\d{2}:?\d{2}|[A-Za-z]+)?
    \s*$""",
    re.VERBOSE,
)
_COMMENT_RE = re.compile(r"\((?:[^()\\]|\\.)*\)")


def parsedatetime(text: str) -> datetime:
    """Parse an RFC 5322 date-time into an aware :class:`datetime`.

    Accepts numeric zones (``+0200``), the obsolete names (``EST``, ``GMT``,
    military letters, which RFC 5322 section 4.3 says to read as ``-0000``),
    two- and three-digit years (section 4.3: ``< 50`` is 20xx, else 19xx;
    three digits add 1900), comments, and a missing day of week. A missing
    zone is read as UTC. Raises ValueError for text that is not a date.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a date: {text!r}")
    cleaned = text
    while "(" in cleaned:
        new = _COMMENT_RE.sub(" ", cleaned)
        if new == cleaned:
            break
        cleaned = new
    m = _DATE_RE.match(cleaned)
    if not m:
        raise ValueError(f"not an RFC 5322 date: {text!r}")
    month = _MONTH_NUMBER.get(m.group("month").lower()[:4]) or _MONTH_NUMBER.get(
        m.group("month").lower()[:3])
    if month is None:
        raise ValueError(f"unknown month in date: {text!r}")
    year = int(m.group("year"))
    if len(m.group("year")) == 2:
        year += 2000 if year < 50 else 1900
    elif len(m.group("year")) == 3:
        year += 1900
    zone = m.group("zone")
    if zone is None:
        offset = 0
    elif zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if minutes > 59:
            raise ValueError(f"bad zone in date: {text!r}")
        offset = (hours * 60 + minutes) * (-1 if zone[0] == "-" else 1)
    else:
        name = zone.lower()
        if name in _ZONES:
            offset = _ZONES[name] * 60
        elif len(name) == 1 and name != "j":
            offset = 0
        else:
            raise ValueError(f"unknown zone in date: {text!r}")
    second = int(m.group("second") or 0)
    leap = second == 60  # RFC 5322 section 3.3 allows a leap second
    try:
        value = datetime(year, month, int(m.group("day")), int(m.group("hour")),
                         int(m.group("minute")), 59 if leap else second,
                         tzinfo=timezone(timedelta(minutes=offset)))
    except ValueError as exc:
        raise ValueError(f"impossible date {text!r}: {exc}") from None
    return value + timedelta(seconds=1) if leap else value


def formatdate(dt: datetime | None = None) -> str:
    """Format ``dt`` as an RFC 5322 date (``Mon, 23 Nov 2026 04:10:05 +0000``).

    An aware ``dt`` keeps its zone; a naive one is taken as local time;
    ``None`` means now, in local time.
    """
    if dt is None:
        dt = datetime.now().astimezone()
    elif dt.tzinfo is None or dt.utcoffset() is None:
        dt = dt.astimezone()
    offset = dt.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year:04d} "
            f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}")

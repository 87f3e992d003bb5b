"""RFC 5322 dates: ``parsedatetime`` reads them (obsolete and common
non-RFC forms too), ``formatdate`` writes them.

The reader is linear in its input: comments are removed in one pass, the
rest is cut into at most ``_MAX_TOKENS`` words, numbers and punctuation by a
regular expression without nested quantifiers, and a small hand-written
grammar reads those tokens.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from itertools import islice

__all__ = ["formatdate", "parsedatetime"]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FULL_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
                "september", "october", "november", "december")
_MONTH_NUMBER = {name.lower(): i for i, name in enumerate(_MONTHS, 1)}
_MONTH_NUMBER.update({name: i for i, name in enumerate(_FULL_MONTHS, 1)})
_MONTH_NUMBER["sept"] = 9
_WEEKDAYS = {d.lower() for d in _DAYS} | {"monday", "tuesday", "wednesday", "thursday", "friday",
                                          "saturday", "sunday"}

#: The zone of a date whose zone is unknown: RFC 5322 section 3.3 writes it
#: ``-0000`` ("no information about the local time zone"), and section 4.3
#: says to read unknown zone names and the military letters that way. It is
#: UTC (offset zero, equal to ``timezone.utc``); ``dt.tzname() == "-0000"``
#: tells it apart, and ``formatdate`` writes it back as ``-0000``.
UNKNOWN_ZONE = timezone(timedelta(0), "-0000")

# RFC 5322 section 4.3 obs-zone names with a known meaning (hours from UTC).
# The military letters are not here: RFC 822 got their signs backwards, so
# 4.3 says to read them, like any other unknown name, as -0000.
_ZONES = {
    "ut": 0, "utc": 0, "gmt": 0,
    "edt": -4, "est": -5, "cdt": -5, "cst": -6,
    "mdt": -6, "mst": -7, "pdt": -7, "pst": -8,
}

# Words (letters and digits), or any single other visible character. No
# nested quantifiers, so matching is linear; white space (CR and LF too) only
# separates tokens.
_TOKEN_RE = re.compile(r"[^\W_]+|\S")
_PAREN_RE = re.compile(r"[()\\]")
_MAX_TOKENS = 40  # a date has about 20; more is not a date (and bounds the work)
_MAX_ZONE_WORDS = 5  # "W. Europe Daylight Time"


def _strip_comments(text: str) -> str:
    """Replace each (nested) comment by a space, in one pass (RFC 5322 3.2.2).

    An unterminated comment runs to the end of the text; a stray ``)`` is
    left for the grammar to refuse.
    """
    if "(" not in text:
        return text
    pieces: list[str] = []
    depth = 0
    start = 0  # where the text outside comments resumes
    i = 0
    while True:
        m = _PAREN_RE.search(text, i)
        if m is None:
            break
        j = m.start()
        c = text[j]
        if c == "\\":
            i = j + (2 if depth else 1)  # a quoted-pair, inside comments only
            continue
        if c == "(":
            if depth == 0:
                pieces.append(text[start:j])
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                pieces.append(" ")
                start = j + 1
        i = j + 1
    pieces.append(text[start:] if depth == 0 else " ")
    return "".join(pieces)


class _Tokens:
    """The date's tokens and a read position."""

    def __init__(self, text: str) -> None:
        self.items = [m.group() for m in islice(_TOKEN_RE.finditer(text), _MAX_TOKENS + 1)]
        if len(self.items) > _MAX_TOKENS:
            raise ValueError(f"more than {_MAX_TOKENS} words")
        self.pos = 0

    def peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.items[i] if i < len(self.items) else ""

    def take(self) -> str:
        tok = self.peek()
        self.pos += 1
        return tok

    def skip(self, tok: str) -> bool:
        if self.peek() == tok:
            self.pos += 1
            return True
        return False

    def done(self) -> bool:
        return self.pos >= len(self.items)


def _shown(tok: str) -> str:
    """A token for an error message, cut short."""
    return repr(tok if len(tok) <= 20 else tok[:20] + "...")


def _is_num(tok: str, lo: int = 1, hi: int = 99) -> bool:
    return tok.isascii() and tok.isdigit() and lo <= len(tok) <= hi


def _is_word(tok: str) -> bool:
    return tok[:1].isalpha()


def _number(toks: _Tokens, lo: int, hi: int, what: str) -> str:
    tok = toks.take()
    if not _is_num(tok, lo, hi):
        raise ValueError(f"expected the {what}, found {_shown(tok)}")
    return tok


def _month(toks: _Tokens) -> int:
    tok = toks.take()
    month = _MONTH_NUMBER.get(tok.lower())
    if month is None:
        raise ValueError(f"unknown month {_shown(tok)}")
    return month


def _year(digits: str) -> int:
    # RFC 5322 section 4.3: two digits below 50 are 20xx, else 19xx; three add 1900
    year = int(digits)
    if len(digits) == 2:
        return year + (2000 if year < 50 else 1900)
    if len(digits) == 3:
        return year + 1900
    return year


def _time(toks: _Tokens) -> tuple[int, int, int]:
    """hour ":" minute [":" second [fraction]] [AM/PM]; ``.`` as separator too."""
    hour = int(_number(toks, 1, 2, "hour"))
    sep = toks.take()
    if sep not in (":", "."):
        raise ValueError(f"expected ':' after the hour, found {_shown(sep)}")
    minute = int(_number(toks, 2, 2, "minute"))
    second = 0
    if toks.peek() == sep and _is_num(toks.peek(1), 2, 2):
        toks.pos += 1
        second = int(toks.take())
        if sep == ":" and toks.peek() == "." and _is_num(toks.peek(1)):
            toks.pos += 2  # fractional seconds, seen in the wild
    meridiem = toks.peek().lower()
    if meridiem in ("am", "pm"):  # "4:12:06 PM", not RFC 5322 but written by real clients
        toks.pos += 1
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} with {meridiem.upper()}")
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    return hour, minute, second


def _offset(hours: str, minutes: str, sign: int) -> timezone:
    h, m = int(hours), int(minutes)
    if m > 59:
        raise ValueError(f"zone minutes {m} out of range")
    if h == m == 0 and sign < 0:
        return UNKNOWN_ZONE  # RFC 5322 section 3.3: -0000 says nothing about the local zone
    try:
        return timezone(timedelta(minutes=sign * (h * 60 + m)))
    except ValueError:
        raise ValueError(f"zone offset {hours}{minutes} out of range") from None


def _numeric_zone(toks: _Tokens, sign: int) -> timezone:
    """The digits of a numeric zone: hhmm, hmm ("-600"), hh[:mm] or hh-mm ("+05-30")."""
    digits = toks.take()
    if _is_num(digits, 4, 4):
        return _offset(digits[:2], digits[2:], sign)
    if _is_num(digits, 3, 3):
        return _offset(digits[:1], digits[1:], sign)
    if _is_num(digits, 1, 2):
        if toks.peek() in (":", "-") and _is_num(toks.peek(1), 2, 2):
            toks.pos += 1
            return _offset(digits, toks.take(), sign)
        return _offset(digits, "0", sign)
    raise ValueError(f"bad zone digits {_shown(digits)}")


def _zone(toks: _Tokens, before_year: bool = False) -> timezone:
    """Read a zone if one comes next; no zone is -0000 (nothing known about it).

    ``before_year``: in the asctime form the year follows, so an unsigned
    number is the year, not a zone.
    """
    tok = toks.peek()
    if not tok:
        return UNKNOWN_ZONE
    if tok in ("+", "-"):
        toks.pos += 1
        zone = _numeric_zone(toks, -1 if tok == "-" else 1)
    elif _is_num(tok, 3, 4) and not before_year:
        zone = _numeric_zone(toks, 1)  # "0530": a numeric zone without its sign
    elif _is_word(tok):
        toks.pos += 1
        name = tok.lower()
        if name in ("ut", "utc", "gmt") and toks.peek() in ("+", "-") and _is_num(toks.peek(1)):
            sign = toks.take()
            return _numeric_zone(toks, -1 if sign == "-" else 1)  # "GMT+0200"
        if name in _ZONES and (before_year or toks.done()):
            return timezone(timedelta(hours=_ZONES[name]))
        # RFC 5322 section 4.3: a zone name whose meaning is not known
        # ("JST", "Eastern Daylight Time", "H0500") and the military letters
        # are read as -0000
        words = 1
        while (toks.peek() == "." or _is_word(toks.peek())) and not before_year:
            toks.pos += 1
            words += 1
        if words > _MAX_ZONE_WORDS:
            raise ValueError("too many words after the time")
        return UNKNOWN_ZONE
    else:
        return UNKNOWN_ZONE if before_year else _fail(f"unexpected {_shown(tok)} after the time")
    # a name after a numeric zone ("+0200 CEST") says the same thing: skip it
    words = 0
    while _is_word(toks.peek()) and not before_year:
        toks.pos += 1
        words += 1
    if words > _MAX_ZONE_WORDS:
        raise ValueError("too many words after the zone")
    return zone


def _fail(message: str) -> timezone:
    raise ValueError(message)


def _read(toks: _Tokens) -> datetime:
    if toks.peek().lower() in _WEEKDAYS:
        toks.pos += 1
        # RFC 5322 section 3.3 requires the comma; read leniently without it
        toks.skip(",")
    if _is_num(toks.peek()):
        # day month year time [zone] (RFC 5322); "19-Nov-82" too (RFC 850)
        day = int(_number(toks, 1, 2, "day"))
        toks.skip("-")
        month = _month(toks)
        toks.skip("-")
        year = _year(_number(toks, 2, 4, "year"))
        hour, minute, second = _time(toks)
        zone = _zone(toks)
    elif _is_word(toks.peek()):
        # month day ... : "Jan 2 15:04:05 2006" (asctime), "February 5, 2003 13:47:26 -0800"
        month = _month(toks)
        day = int(_number(toks, 1, 2, "day"))
        toks.skip(",")
        if toks.peek(1) in (":", "."):
            hour, minute, second = _time(toks)
            zone = _zone(toks, before_year=True)
            year = _year(_number(toks, 2, 4, "year"))
            if zone is UNKNOWN_ZONE:
                zone = _zone(toks)
        else:
            year = _year(_number(toks, 2, 4, "year"))
            hour, minute, second = _time(toks)
            zone = _zone(toks)
    else:
        raise ValueError(f"expected a day or a month, found {_shown(toks.peek())}")
    if not toks.done():
        raise ValueError(f"unexpected {_shown(toks.peek())} after the date")
    leap = second == 60  # RFC 5322 section 3.3 allows a leap second
    value = datetime(year, month, day, hour, minute, 59 if leap else second, tzinfo=zone)
    return value + timedelta(seconds=1) if leap else value


def parsedatetime(text: str) -> datetime:
    """Parse an RFC 5322 date-time into an aware :class:`datetime`.

    Reads RFC 5322 dates with their obsolete forms (section 4.3: two- and
    three-digit years, zone names, comments, a missing day of week) and the
    readable forms real mail has: the asctime form (``Mon Jan  2 15:04:05
    2006``), a month before the day (``February 5, 2003 ...``), dots in the
    time, ``AM``/``PM``, numeric zones without a sign or with three digits
    (``0530``, ``-600``) or a separator (``+05-30``), a day of week without its
    comma, and CR or LF anywhere white space may be.

    A zone that says nothing about local time is returned as
    :data:`UNKNOWN_ZONE` (UTC, ``tzname() == "-0000"``): ``-0000`` itself, a
    missing zone, and, as section 4.3 says, unknown zone names (``JST``,
    ``Eastern Daylight Time``) and the military letters.

    Raises ValueError for text with no date in it, an impossible date or a
    malformed numeric zone. Linear in ``len(text)``.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a date: a {type(text).__name__}, not a str")
    try:
        return _read(_Tokens(_strip_comments(text)))
    except (ValueError, OverflowError) as exc:  # OverflowError: a leap second at 9999-12-31
        shown = text if len(text) <= 80 else text[:80] + "..."
        raise ValueError(f"not an RFC 5322 date ({exc}): {shown!r}") from None


def formatdate(dt: datetime | None = None) -> str:
    """Format ``dt`` as an RFC 5322 date (``Mon, 23 Nov 2026 04:10:05 +0000``).

    An aware ``dt`` keeps its zone (:data:`UNKNOWN_ZONE` is written
    ``-0000``); a naive one is taken as local time; ``None`` means now, in
    local time. TypeError for anything but a datetime.
    """
    if dt is None:
        return _now() if _CACHE_NOW else _format(datetime.now().astimezone())
    if not isinstance(dt, datetime):
        raise TypeError(f"formatdate() takes a datetime, not a {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        dt = dt.astimezone()
    return _format(dt)


def _format(dt: datetime) -> str:
    """``dt`` (aware) as RFC 5322 text."""
    offset = dt.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 or (minutes == 0 and dt.tzname() == "-0000") else "+"
    minutes = abs(minutes)
    return (f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year:04d} "
            f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}")


# formatdate() of "now", per whole second. The text depends only on the
# second (microseconds are not written) and on the local zone's rules: it
# is made exactly as datetime.now().astimezone() makes it (fromtimestamp of
# the same system clock, floored to the second, local time with its fold,
# then the zone's offset at that instant), so a DST change -- which happens
# on a whole second -- is a new key. time.tzset(), the one way Python
# changes the zone rules, makes a new time.tzname tuple: its identity is in
# the key. One tuple, replaced whole: safe across threads without a lock.
_CACHE_NOW = True   # tests force the uncached path with False
_now_cache: tuple[int, object, str] = (-1, None, "")


def _now() -> str:
    global _now_cache
    second = time.time_ns() // 1_000_000_000
    zone = time.tzname
    cached_second, cached_zone, text = _now_cache
    if cached_second == second and cached_zone is zone:
        return text
    text = _format(datetime.fromtimestamp(second).astimezone())
    _now_cache = (second, zone, text)
    return text

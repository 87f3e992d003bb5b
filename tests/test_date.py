"""parsedatetime / formatdate (RFC 5322 section 3.3 and 4.3)."""

from datetime import datetime, timedelta, timezone
from typing import Callable

import email.utils
import pytest
from hypothesis import given, strategies as st

from mimecompose import formatdate, parsedatetime
from mimecompose._date import UNKNOWN_ZONE


def tz(minutes):
    return timezone(timedelta(minutes=minutes))


@pytest.mark.parametrize("text,expected", [
    ("Mon, 23 Nov 2026 04:10:05 +0000", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(0))),
    ("Mon, 23 Nov 2026 04:10:05 +0200", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(120))),
    ("23 Nov 2026 04:10 -0930", datetime(2026, 11, 23, 4, 10, tzinfo=tz(-570))),
    ("Mon, 23 Nov 26 04:10:05 EST", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(-300))),
    ("Mon, 23 Nov 99 04:10:05 GMT", datetime(1999, 11, 23, 4, 10, 5, tzinfo=tz(0))),
    ("Mon, 23 Nov 126 04:10:05 PDT", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(-420))),
    ("Mon, 23 Nov 2026 04:10:05 Z", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(0))),
    ("Mon, 23 Nov 2026 04:10:05 A", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(0))),  # military: -0000
    ("Mon (Monday), 23 Nov 2026 04:10:05 +0100 (CET)", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(60))),
    ("Mon,23 Nov 2026 04 : 10 : 05 +0000", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(0))),
    ("Tue, 1 Jul 2003 10:52:37 +0200", datetime(2003, 7, 1, 10, 52, 37, tzinfo=tz(120))),
    ("Mon, 23 Nov 2026 04:10:05", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(0))),
])
def test_parse(text, expected):
    got = parsedatetime(text)
    assert got == expected and got.utcoffset() == expected.utcoffset()


def test_leap_second():
    assert parsedatetime("Wed, 31 Dec 2008 23:59:60 +0000") == datetime(2009, 1, 1, tzinfo=tz(0))


@pytest.mark.parametrize("text", ["", "   ", "garbage", "32 Nov 2026 04:10:05 +0000",
                                  "23 Foo 2026 04:10:05 +0000", "23 Nov 2026 25:10:05 +0000",
                                  "23 Nov 2026 04:10:05 +0099", "23 Nov 2026 04:10:05 +2400",
                                  "Mon, 23 Nov 2026", "Sunday we meet at noon", "Sat, 9 May cats ran",
                                  "23 Nov 2026 04:10:05 +0000 )", "23 Nov 2026 13:10:05 PM",
                                  "23 Nov 2026 04:10:05 one two three four five six",
                                  "1" + " " * 50 + "Jan" + " " * 50 + "x"])
def test_garbage_raises_value_error(text):
    with pytest.raises(ValueError):
        parsedatetime(text)


# RFC 5322 section 4.3: an unknown zone name, a military letter, "-0000" and
# (for us) a missing zone all say nothing about local time: UNKNOWN_ZONE
@pytest.mark.parametrize("text", [
    "Mon, 23 Nov 2026 04:10:05 JST",
    "Mon, 23 Nov 2026 04:10:05 Eastern Daylight Time",
    "Mon, 23 Nov 2026 04:10:05 H0500",
    "Mon, 23 Nov 2026 04:10:05 XYZ",
    "Mon, 23 Nov 2026 04:10:05 J",
    "Mon, 23 Nov 2026 04:10:05 Z",
    "Mon, 23 Nov 2026 04:10:05 -0000",
    "Mon, 23 Nov 2026 04:10:05",
])
def test_unknown_zone_reads_as_minus_zero(text: str) -> None:
    got = parsedatetime(text)
    assert got == datetime(2026, 11, 23, 4, 10, 5, tzinfo=timezone.utc)
    assert got.tzinfo is UNKNOWN_ZONE and got.tzname() == "-0000"
    assert formatdate(got) == "Mon, 23 Nov 2026 04:10:05 -0000"


def test_plus_zero_is_not_unknown() -> None:
    got = parsedatetime("Mon, 23 Nov 2026 04:10:05 +0000")
    assert got.tzname() != "-0000" and formatdate(got).endswith(" +0000")


@pytest.mark.parametrize("text,expected", [
    ("Mon, 23 Nov 2026 04:10:05 +05-30", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(330))),
    ("Mon, 23 Nov 2026 04:10:05 +05:30", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(330))),
    ("Mon, 23 Nov 2026 04:10:05 0530", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(330))),
    ("Mon, 23 Nov 2026 04:10:05 -600", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(-360))),
    ("Mon, 23 Nov 2026 04:10:05 GMT+0200", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(120))),
    ("Mon, 23 Nov 2026 04:10:05 +0100 CET", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(60))),
    ("Mon Nov 23 04:10:05 2026", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(0))),
    ("Mon Nov  3 04:10:05 EST 2026", datetime(2026, 11, 3, 4, 10, 5, tzinfo=tz(-300))),
    ("Mon Nov 23 04:10:05 -0700 2026", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(-420))),
    ("November 23, 2026 04:10:05 +0100", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(60))),
    ("23 Nov 2026 4:12:06 PM +0000", datetime(2026, 11, 23, 16, 12, 6, tzinfo=tz(0))),
    ("23 Nov 2026 12:12:06 AM +0000", datetime(2026, 11, 23, 0, 12, 6, tzinfo=tz(0))),
    ("23 Nov 2026 12:12 pm +0000", datetime(2026, 11, 23, 12, 12, tzinfo=tz(0))),
    ("23 Nov 2026 04.10.05 +0000", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(0))),
    ("23 Nov 2026 04:10:05.123 +0000", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(0))),
    ("Monday, 23-Nov-26 04:10:05 GMT", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(0))),
    # accepted leniently (there is no defect list for a date): a day of week
    # without its comma (RFC 5322 3.3 wants one), CR or LF inside the date
    ("Mon 23 Nov 2026 04:10:05 +0100", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(60))),
    ("Mon, 23 Nov 2026\r04:10:05\n+0100", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(60))),
    ("Mon, 23 Nov 2026 04:10:05 +0100 (CET (nested \\) comment)",
     datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(60))),
    ("Mon, 23 Nov 2026 04:10:05 +0100 (unterminated", datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(60))),
])
def test_readable_non_rfc_dates(text: str, expected: datetime) -> None:
    got = parsedatetime(text)
    assert got == expected and got.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("shape", [
    lambda n: "1" + " " * n + "Jan" + " " * n + "x",            # was cubic
    lambda n: "1" + " " * n + "Jan" + " " * n + "2026 04:10 +0000",
    lambda n: "Mon, 23 Nov 2026 04:10:05 +0000 " + "(" * n + ")" * n,  # was quadratic
    lambda n: "Mon, 23 Nov 2026 04:10:05" + " " * n + "+0000",
    lambda n: "Mon, 23 Nov 2026 04:10:05" + " " * n + "x",
    lambda n: "Mon, 23 Nov 2026 04:10:05 " + "(\\" * n,
    lambda n: "a " * n,
    lambda n: "1" * n,
])
def test_one_megabyte_date_finishes(shape: Callable[[int], str]) -> None:
    # linear work: a quadratic parser would take hours on this, a cubic one years
    text = shape(500_000)
    assert len(text) >= 500_000
    try:
        got = parsedatetime(text)
    except ValueError as exc:
        assert len(str(exc)) < 300  # the message does not repeat the megabyte
    else:
        assert got.year == 2026


def test_formatdate_keeps_zone():
    dt = datetime(2026, 11, 23, 4, 10, 5, tzinfo=tz(-210))
    assert formatdate(dt) == "Mon, 23 Nov 2026 04:10:05 -0330"


def test_formatdate_naive_is_local_and_none_is_now():
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert parsedatetime(formatdate(naive)) == naive.astimezone()
    before = datetime.now(timezone.utc).replace(microsecond=0)
    now = parsedatetime(formatdate())
    assert before - timedelta(seconds=1) <= now <= datetime.now(timezone.utc) + timedelta(seconds=1)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 1, 1),
                    timezones=st.builds(tz, st.integers(-23 * 60 - 59, 23 * 60 + 59))))
def test_round_trip(dt):
    dt = dt.replace(microsecond=0)
    text = formatdate(dt)
    back = parsedatetime(text)
    assert back == dt and back.utcoffset() == dt.utcoffset()
    assert email.utils.parsedate_to_datetime(text) == dt


@given(st.text(max_size=60))
def test_only_value_error_escapes(text):
    try:
        parsedatetime(text)
    except ValueError:
        pass

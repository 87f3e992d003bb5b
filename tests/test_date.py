"""parsedatetime / formatdate (RFC 5322 section 3.3 and 4.3)."""

from datetime import datetime, timedelta, timezone

import email.utils
import pytest
from hypothesis import given, strategies as st

from mimecompose import formatdate, parsedatetime


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


@pytest.mark.parametrize("text", ["", "garbage", "32 Nov 2026 04:10:05 +0000",
                                  "23 Foo 2026 04:10:05 +0000", "23 Nov 2026 25:10:05 +0000",
                                  "23 Nov 2026 04:10:05 +0099", "23 Nov 2026 04:10:05 XYZ"])
def test_garbage_raises_value_error(text):
    with pytest.raises(ValueError):
        parsedatetime(text)


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

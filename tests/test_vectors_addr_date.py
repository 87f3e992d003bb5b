"""The shared header test vectors of kind date, address, addr_spec and
format_address, checked against parsedatetime / parseaddress / formataddress.

The vectors come from other projects' test suites (see the README next to
them). Where a source and RFC 5322 agree, we must agree too; where we follow
the RFC (or our documented policy) against a source, the vector's input is
listed below in a *_DIFFERENCES table with the reason. A listed input that
we agree with after all is an error too, so the tables cannot go stale.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

import pytest

from mimecompose import Address, formataddress, parseaddress, parsedatetime

import vectors

Vector = dict[str, Any]


def _load(kinds: tuple[str, ...]) -> list[Vector]:
    if not vectors.present():
        pytest.skip(vectors.ABSENT)
    return vectors.load(kinds)


def _key(text: str) -> str:
    """A vector's input as listed in the tables below (long ones shortened)."""
    return text if len(text) <= 200 else f"{text[:60]}...[{len(text)} characters]...{text[-30:]}"


_text = vectors.text   # a vector's string (invalid UTF-8 as surrogate escapes)


# --- dates ---------------------------------------------------------------

def check_date(v: Vector) -> str | None:
    """None when parsedatetime gives what the vector expects, else what differs."""
    exp = v["expect"]
    try:
        got = parsedatetime(_text(v["input"]))
    except ValueError as exc:
        return None if not exp["valid"] else f"ValueError: {exc}"
    if not exp["valid"]:
        return f"accepted as {got.isoformat()}"
    wall = (got.year, got.month, got.day, got.hour, got.minute, got.second)
    offset = got.utcoffset()
    assert offset is not None
    if "iso" in exp:
        want = datetime.fromisoformat(exp["iso"].replace("Z", "+00:00"))
        if want.tzinfo is None:  # CPython's naive datetime: the zone was -0000
            if wall != (want.year, want.month, want.day, want.hour, want.minute, want.second):
                return f"got {got.isoformat()}"
            return None if got.tzname() == "-0000" else f"zone {got.tzname()} is not -0000"
        if got != want or offset != want.utcoffset():
            return f"got {got.isoformat()}"
    if "fields" in exp and list(wall) != exp["fields"][:6]:
        return f"got {got.isoformat()}"
    if "offset_s" in exp and offset != timedelta(seconds=exp["offset_s"]):
        return f"got offset {offset}"
    return None


_MILITARY = "RFC 5322 4.3: military zone letters are read as -0000 (RFC 822 had their signs wrong)"
_UNKNOWN_ZONE = "RFC 5322 4.3: a zone name of unknown meaning is read as -0000; we do not guess"
_NO_TIME = "RFC 5322 3.3: the time of day is required; we do not invent midnight"
_BAD_TIME = "RFC 5322 3.3: hour 00-23, minute 00-59, second 00-60; an impossible time is a ValueError"
_BAD_ZONE = "a malformed numeric zone leaves the time unknown by hours: ValueError, not a guess"

DATE_DIFFERENCES: dict[str, str] = {
    "Fri 21 Nov 1997 09:55:06 -0600":
        "RFC 5322 3.3 wants the comma after the day of week; read leniently, as mail readers do (documented)",
    "Fri, 21 Nov 1997 \r 09:55:06 -0600    \r\n (thisisa(valid)cfws)   \t ":
        "a bare CR is not FWS (RFC 5322 3.2.2); read leniently as white space (documented)",
    "Fri, 21 Nov 199\r\n7  09:55:06 -0600    \r\n (thisisa(valid)cfws)   \t ":
        "RFC 5322 2.2.3: a CRLF not followed by WSP is not folding, so '199' and '7' are not one year",
    "Fri, 21 Nov () 1997 09:55:06 -0600    \r\n (thisisa(valid)cfws)   \t ":
        "RFC 5322 4.3 obs-year allows CFWS (a comment) before the year",
    "Fri, 21 OCT 1997 09:55:06 CST": "RFC 5234 2.3: quoted strings (month names) are case-insensitive",
    "Tue, 26 May 2020 14:04:40 XT": _UNKNOWN_ZONE,
    "Thu, 21 May 2020 14:04:40 XT": _UNKNOWN_ZONE,
    "Tue, 9 Jun 92 03:45:24 JST": _UNKNOWN_ZONE,
    "Fri, 28 Feb 2025 09:00:00 JST": _UNKNOWN_ZONE,
    "Fri, 28 Feb 2025 09:00:00 KST": _UNKNOWN_ZONE,
    "17-6-2008 17:10:08": "RFC 5322 3.3: the month is a name; a numeric month is ambiguous (D-M or M-D)",
    "Wed, 6 Aug 2014 01:53:48 -2200": "RFC 5322 3.3: any four-digit zone is read as written, not dropped",
    "Fri, 8 May 2015": _NO_TIME,
    "Fri, 8 May 2015 12": _NO_TIME,
    "Sat, 9 May 2015 24:00:00 -0400": _BAD_TIME,
    "Sat, 9 May 2015 25:00:00 -0400": _BAD_TIME,
    "May 9 2015 25:00:00 -0400": _BAD_TIME,
    "2015 May 9 25:00:00 -0400": "no date form puts the year first, and hour 25 is impossible (RFC 5322 3.3)",
    "2015 May 9 25:99:78 -0400": "no date form puts the year first, and 25:99:78 is impossible (RFC 5322 3.3)",
    "Fri, 28 Feb 2025 23:59:61 -0500": _BAD_TIME,
    "Fri, 28 Feb 2025 23:60:59 -0500": _BAD_TIME,
    "Fri, 28 Feb 2025 23:59:60 -0500":
        "RFC 5322 3.3 allows second 60 (a leap second): read as the next second, not clamped to :59",
    "Fri, 28 Feb 2025 22:59:60 -0500":
        "RFC 5322 3.3 allows second 60 anywhere: read as the next second, not as midnight",
    "Sat, 10 Sep 2022 12:59:19 -1234567890123456789": _BAD_ZONE,
    "Sat, 10 Sep 2022 12:59:19 1234567890123456789": _BAD_ZONE,
    "Sat, 10 Sep 2022 12:59:19 04+00": _BAD_ZONE,
    **{f"Fri, 28 Feb 2025 09:00:00 {letter}": _MILITARY for letter in "ABCDEFGHIKLMNOPQRSTUVWXY"},
}


# --- addresses -------------------------------------------------------------

def _name(a: Address) -> str:
    """The display name as a reader shows it: only a phrase is a name (RFC 5322 3.4).

    An empty quoted phrase (``""``) is an empty name; ``friendly`` then falls
    back to the local part, as DESIGN says.
    """
    return a.friendly if a.phrase.strip('" ') else ""


def _unquote_local(local: str) -> str:
    if len(local) >= 2 and local[0] == local[-1] == '"':
        out, escaped = [], False
        for c in local[1:-1]:
            if escaped or c != "\\":
                out.append(c)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return local


def _same_mailbox(a: Address, want: dict[str, str]) -> str | None:
    if "name" in want and _name(a) != want["name"]:
        return f"name {_name(a)!r} != {want['name']!r}"
    if "address" in want:
        forms = {a.address, f"{_unquote_local(a.local)}@{a.domain}"}
        if want["address"] not in forms:
            return f"address {a.address!r} != {want['address']!r}"
    if "local" in want and want["local"] not in (a.local, _unquote_local(a.local)):
        return f"local {a.local!r} != {want['local']!r}"
    if "domain" in want and want["domain"] != a.domain:
        return f"domain {a.domain!r} != {want['domain']!r}"
    if "group" in want and want["group"] != a.group:
        return f"group {a.group!r} != {want['group']!r}"
    return None


def check_address(v: Vector) -> str | None:
    """None when parseaddress agrees with the vector's verdict and mailboxes."""
    exp = v["expect"]
    got = parseaddress(_text(v["input"]))
    problems = [f"{a.proper!r}: {a.error}" for a in got if a.error]
    if not got and exp.get("mailboxes") != []:
        problems.append("no address")
    if exp.get("single") and not (len(got) == 1 and got[0].address):
        problems.append(f"{len(got)} records, not one mailbox")
    if exp.get("no_group") and any(a.group for a in got):
        problems.append("a group")
    if exp.get("group_required") and not (got and len({a.group for a in got}) == 1 and got[0].group):
        problems.append("not one group")
    if not exp["valid"]:
        return None if problems else "accepted: " + ", ".join(repr(a.address) for a in got)
    if problems:
        return "rejected: " + "; ".join(problems)
    if "mailboxes" in exp:
        wanted = [m for m in exp["mailboxes"] if m.get("address", m.get("local"))]
        mine = [a for a in got if a.address]
        if len(wanted) != len(mine):
            return f"{len(mine)} mailboxes, not {len(wanted)}: {[a.address for a in mine]}"
        for a, want in zip(mine, wanted):
            diff = _same_mailbox(a, want)
            if diff:
                return diff
    return None


_COMMENT_NAME = "RFC 5322 3.4: a comment is not a display name (friendly falls back to it; the name is empty)"
_COMMENT_IN_PHRASE = "RFC 5322 3.2.2: a comment inside a display name is not part of the name"
_EMPTY_GROUP = "DESIGN: an empty group is one record with address '' and group set (RFC 5322 3.4 allows it)"
_OPEN_GROUP = "documented: a group missing its closing ';' is accepted, as mail readers do"
_NULL_PATH = "documented: '<>' is the null reverse-path (RFC 5321 4.5.5), a record with address ''"
_LENIENT_LOCAL = "RFC 5322 3.4.1: a local part is a dot-atom or a quoted string; the source guesses one"
_UTF8 = "RFC 6532 3.2: UTF-8 is allowed in atoms, local parts included"
_QUOTED_EW = "RFC 2047 5(3): an encoded word inside a quoted string is plain text, kept as is; not an error"
_EMPTY_QUOTED_LOCAL = "RFC 5322 3.2.4: a quoted string may be empty, so \"\"@domain is an addr-spec"
_OBS_QTEXT = "RFC 5322 4.1 obs-qtext allows the control characters other than NUL, CR and LF"
_CASE = "RFC 5321 2.4: domains are case-insensitive; we keep them as written, not lower-cased"
_OBS_DOMAIN = "RFC 5322 4.4 obs-domain allows CFWS around the dots"
_EMPTY_ELEMENTS = "RFC 5322 4.4 obs-addr-list allows empty list elements"
_LENGTH = "RFC 5322 sets no length limit; the RFC 5321 4.5.3.1 limits are for SMTP servers"
_OBS_LOCAL = "RFC 5322 4.4 obs-local-part: words (atoms or quoted strings) joined by dots"
_OBS_DTEXT = "RFC 5322 4.4 obs-dtext allows a quoted-pair in a domain literal"
_CFWS_AT = "RFC 5322 4.4 obs-local-part and obs-domain allow CFWS around the '@'"
_DNS = "RFC 5322 3.4.1 domains are dot-atoms; hostname rules (hyphens, IDNA) are not RFC 5322's"
_CHARSET = "RFC 2047: the charset is one Python knows, so the word is decoded"
_PHRASE_SPECIALS = "RFC 5322 3.2.5: a display name holds words only; an error, the address salvaged"
_QUOTED_CTL = "obs-qp allows a quoted CR, LF or NUL, but they never reach an Address field: an error"
_QP_UTF8 = "RFC 6532 3.2 adds UTF-8 to VCHAR, so a quoted-pair may quote a non-ASCII character"
_UNFOLD_FIRST = "RFC 5322 2.2.3: unfolding comes first, and leaves a valid quoted-pair"
_INCOMPLETE = "RFC 5322 3.4.1: an addr-spec is local-part '@' domain, both required"
_TRAILING_DOT = "RFC 5322 3.4.1: a domain does not end with a dot"
_RECOVERS = "outside RFC 5322 3.4, the source guesses; we report an error (and salvage what a reader shows)"
_UNTERMINATED = "RFC 5322 3.2, 3.4: an unterminated quoted string, comment, literal or angle-addr is an error"
_FWS_DLITERAL = "RFC 5322 3.4.1: FWS inside a domain literal is kept (unfolded), not removed"
_ROUTE_DOMAIN = "RFC 5322 4.4: a route element is '@' domain, and a domain holds no '@'"
_UNQUOTED_COMMA = "RFC 5322 3.4: an unquoted ',' separates addresses ('Name, Jr. <a@b>' is two elements)"
_NESTED_GROUP = "RFC 5322 3.4: groups do not nest (a group-list holds mailboxes only)"
_CRLF_SEP = "RFC 5322 2.2.3: a CR or LF not followed by WSP is no folding and no separator: an error"
_SEMICOLON = "RFC 5322 3.4: ',' separates addresses; ';' only ends a group"

ADDRESS_DIFFERENCES: dict[str, str] = {
    'bill@ABCDEFGHIJKLMNOPQRSTUVWXYZ': _CASE,
    '"foo"(yay)@(hoopla)[1.2.3.4]': _CFWS_AT,
    '=?iso-8859-2?Q?Bogl=E1rka_Tak=E1cs?= <unknown@gmail.com>': _CHARSET,
    'User ((nested comment)) <foo@bar.com>': _COMMENT_IN_PHRASE,
    'Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>': _COMMENT_IN_PHRASE,
    'John Doe <jdoe@machine(comment).  example>': _COMMENT_IN_PHRASE,
    'John (middle) Doe <jdoe@machine.example>': _COMMENT_IN_PHRASE,
    'aperson@dom.ain (Al Person), Bud Person <bperson@dom.ain>': _COMMENT_NAME,
    '"Bud, Person" <bperson@dom.ain>, aperson@dom.ain (Al Person), "Mariusz Felisiak" <to@example.com>': _COMMENT_NAME,
    'alice@example.org (Alice)': _COMMENT_NAME,
    'john@example.com (John Doe)': _COMMENT_NAME,
    'john@example.com(John Doe)': _COMMENT_NAME,
    'asjo@example.com (Adam =?utf-8?Q?Sj=C3=B8gren?=)': _COMMENT_NAME,
    'asjo@example.com (Adam\t=?utf-8?Q?Sj=C3=B8gren?=)': _COMMENT_NAME,
    'asjo@example.com (Adam =?utf-8?Q?Sj=C3=B8gren?= (Debian))': _COMMENT_NAME,
    'fejj@helixcode.com (Jeffrey Stedfast)': _COMMENT_NAME,
    'andris@tr.ee (andris)': _COMMENT_NAME,
    '(comment)user@example.com': _COMMENT_NAME,
    'user@example.com(comment)': _COMMENT_NAME,
    'user@example.com (outer (nested) comment)': _COMMENT_NAME,
    '(comment1)user@example.com(comment2)': _COMMENT_NAME,
    'user@example.com (comment with @#$%)': _COMMENT_NAME,
    'user@example.com\nother@example.com': _CRLF_SEP,
    'user@example.com\r\nother@example.com': _CRLF_SEP,
    'test@xn--example.com': _DNS,
    'test@-iana.org': _DNS,
    'test@iana-.com': _DNS,
    'test@iana.org-': _DNS,
    'first.last@-xample.com': _DNS,
    'first.last@exampl-.com': _DNS,
    'a@-b.com': _DNS,
    'a@b-.com': _DNS,
    'invalid@about.museum-': _DNS,
    'bill@microsoft.com,': _EMPTY_ELEMENTS,
    'bill@microsoft.com, ': _EMPTY_ELEMENTS,
    'bill@microsoft.com , ': _EMPTY_ELEMENTS,
    'bill@microsoft.com,,': _EMPTY_ELEMENTS,
    ', steve@apple.com': _EMPTY_ELEMENTS,
    'foo: ;': _EMPTY_GROUP,
    'Undisclosed recipients:;': _EMPTY_GROUP,
    '<""@example.com>': _EMPTY_QUOTED_LOCAL,
    '<""@0>': _EMPTY_QUOTED_LOCAL,
    '<user@[domain.com\r\n <img src=x onerror=alert()>]>': _FWS_DLITERAL,
    'fejj': _INCOMPLETE,
    'Local recipients: phil, joe, alex, bob': _INCOMPLETE,
    'jeff': _INCOMPLETE,
    'jeff (Jeffrey Stedfast)': _INCOMPLETE,
    'andris': _INCOMPLETE,
    "O'Neill": _INCOMPLETE,
    'John Doe': _INCOMPLETE,
    'user@': _INCOMPLETE,
    '@example.com': _INCOMPLETE,
    'Group:not-an-email, another-invalid;': _INCOMPLETE,
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...[1027 characters]...aaaaaaaaaaaaaaaaaaaaaaaaaaaa@b': _LENGTH,
    '012345678901234567890123456789012345678901234567890123456789...[1037 characters]...789012345678901234@example.com': _LENGTH,
    '""example" example"@example.com': _LENIENT_LOCAL,
    '"\\\\"example\\\\" example"@example.com': _LENIENT_LOCAL,
    'merwok wok@xample.com': _LENIENT_LOCAL,
    'merwok  wok@xample.com': _LENIENT_LOCAL,
    ' merwok  wok  @xample.com': _LENIENT_LOCAL,
    'merwok"wok"  wok@xample.com': _LENIENT_LOCAL,
    'group0: group1: group2: milbox@host.com;;;': _NESTED_GROUP,
    'Group1:a@b.com, Group2:c@d.com;;': _NESTED_GROUP,
    'Outer:Inner:deep@example.com;;': _NESTED_GROUP,
    'Main:Sub1:a@b.com;, Sub2:c@d.com;;': _NESTED_GROUP,
    'Group:x@y.com, Nested:a@b.com;, z@w.com;': _NESTED_GROUP,
    'g0: g1: g2: g3: g4: g5: g6: g7: g8: g9: user@example.com;': _NESTED_GROUP,
    'g0: g1: g2: g3: g4: g5: g6: g7: g8: g9: g10: g11: g12: g13: ...[257 characters]...7: g48: g49: user@example.com;': _NESTED_GROUP,
    'g0: g1: g2: g3: g4: g5: g6: g7: g8: g9: g10: g11: g12: g13: ...[507 characters]...7: g98: g99: user@example.com;': _NESTED_GROUP,
    'g0: g1: g2: g3: g4: g5: g6: g7: g8: g9: g10: g11: g12: g13: ...[19907 characters]...2998: g2999: user@example.com;': _NESTED_GROUP,
    'g0: g1: g2: g3: g4: g5: g6: g7: g8: g9: g10: g11: g12: g13: ...[68907 characters]...9998: g9999: user@example.com;': _NESTED_GROUP,
    'g0: g1: g2: g3: g4: g5: g6: g7: g8: g9: g10: g11: g12: g13: ...[1016 characters]...7: g98: g99: user@example.com;': _NESTED_GROUP,
    'normal@example.com, g0: g1: g2: g3: g4: g5: g6: g7: g8: g9: ...[1145 characters]...example.com;, another@test.com': _NESTED_GROUP,
    'Outer: Inner: deep@example.com; ;': _NESTED_GROUP,
    '<>': _NULL_PATH,
    'foo: <>;': _NULL_PATH,
    'bill@micro. soft.com': _OBS_DOMAIN,
    'bill@micro .soft.com': _OBS_DOMAIN,
    'foo@[\\1.2.3.4]': _OBS_DTEXT,
    'partially."quoted"@sld.com': _OBS_LOCAL,
    'first."".last@iana.org': _OBS_LOCAL,
    '"\x01" <a@b>': _OBS_QTEXT,
    '"\x02" <a@b>': _OBS_QTEXT,
    '"\x03" <a@b>': _OBS_QTEXT,
    '"\x04" <a@b>': _OBS_QTEXT,
    '"\x05" <a@b>': _OBS_QTEXT,
    '"\x06" <a@b>': _OBS_QTEXT,
    '"\x07" <a@b>': _OBS_QTEXT,
    '"\x08" <a@b>': _OBS_QTEXT,
    '"\x0e" <a@b>': _OBS_QTEXT,
    '"\x0f" <a@b>': _OBS_QTEXT,
    '"\x10" <a@b>': _OBS_QTEXT,
    '"\x11" <a@b>': _OBS_QTEXT,
    '"\x12" <a@b>': _OBS_QTEXT,
    '"\x13" <a@b>': _OBS_QTEXT,
    '"\x14" <a@b>': _OBS_QTEXT,
    '"\x15" <a@b>': _OBS_QTEXT,
    '"\x16" <a@b>': _OBS_QTEXT,
    '"\x17" <a@b>': _OBS_QTEXT,
    '"\x18" <a@b>': _OBS_QTEXT,
    '"\x19" <a@b>': _OBS_QTEXT,
    '"\x1a" <a@b>': _OBS_QTEXT,
    '"\x1b" <a@b>': _OBS_QTEXT,
    '"\x7f" <a@b>': _OBS_QTEXT,
    '(Empty list)(start)Undisclosed recipients  :(nobody(I know))': _OPEN_GROUP,
    'Monty Python:"Fred A. Bear" <dinsdale@example.com>,eric@where.test,John <jdoe@test>': _OPEN_GROUP,
    'group not closed: null@example.com': _OPEN_GROUP,
    'Agents of Shield:': _OPEN_GROUP,
    'John !@M@! Doe <jdoe@machine.example>': _PHRASE_SPECIALS,
    'user@example.com <user@example.com>': _PHRASE_SPECIALS,
    '[Invalid Sender] <sender@tk2-201-10422.vs.sakura.ne.jp>': _PHRASE_SPECIALS,
    'Tom Doe [Cörp Öne] <tom.doe@corpone.com>': _PHRASE_SPECIALS,
    '"test\\©"@iana.org': _QP_UTF8,
    '"test\\\x00"@iana.org': _QUOTED_CTL,
    '"\\\n"@iana.org': _QUOTED_CTL,
    '"test\\\rblah"@iana.org': _QUOTED_CTL,
    '"Unicode NULL \\\x00"@char.com': _QUOTED_CTL,
    '"=?utf-8?q?=C3=89ric?=" <foo@example.com>': _QUOTED_EW,
    'foo: "=?utf-8?q?=C3=89ric?=" <foo@example.com>;': _QUOTED_EW,
    '<<<user2@example.org>>>': _RECOVERS,
    'second@example.org>': _RECOVERS,
    '<third@example.net, fourth@example.net>': _RECOVERS,
    'Testing) <sam@example.com>': _RECOVERS,
    'jeff>': _RECOVERS,
    'andris andris@tr.ee': _RECOVERS,
    'Test User <test.user@mail.ee>, Disclosed:andris@tr.ee, andris@example.com;,,,, Undisclosed:; bob@example.com BOB;': _RECOVERS,
    'andris@tr.ee (reinman) andris': _RECOVERS,
    'FirstName Surname-WithADash :: Company <firstname@company.com>': _RECOVERS,
    'name@address.com@address2.com': _RECOVERS,
    'reinman > andris < test <andris@tr.ee>': _RECOVERS,
    '"Firstname \\" \\\\\\, Lastname \\(Test\\)" test@example.com': _RECOVERS,
    '"quoted" unquoted@example.com': _RECOVERS,
    '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@': _RECOVERS,
    'user@@example.com': _RECOVERS,
    'Name <<user@example.com>>': _RECOVERS,
    'user@example.com\t\tother@example.com': _RECOVERS,
    'User Name <@route,@伊昭傑@郵件.商務:user@domain.com>': _ROUTE_DOMAIN,
    'bill@microsoft.com  ,,;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com  ,;,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com  ,;;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com  ;,,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com  ;,;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com  ;;,,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com , ,;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com , ;,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com , ;;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,, ;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,,; ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,,;; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,; ,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,; ;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,;, ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,;,; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,;; ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,;;, steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ; ,,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ; ,;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ; ;,,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;, ,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;, ;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;,, ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;,,; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;,; ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;,;, steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;; ,,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;;, ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;;,, steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,  ,;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,  ;,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,  ;;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com, , ;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com, ,; ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com, ,;; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com, ; ,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com, ; ;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com, ;, ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com, ;,; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com, ;; ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com, ;;, steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,,  ;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,, ; ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,, ;; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,,;  ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,,; ; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,,;;  steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,;  ,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,;  ;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,; , ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,; ,; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,; ; ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,; ;, steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,;,  ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,;, ; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,;,;  steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,;;  ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,;; , steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,;;,  steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;  ,,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;  ,;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;  ;,,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com; , ,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com; , ;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com; ,, ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com; ,,; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com; ,; ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com; ,;, steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com; ; ,,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com; ;, ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com; ;,, steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;,  ,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;,  ;,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;, , ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;, ,; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;, ; ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;, ;, steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;,,  ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;,, ; steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;,,;  steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;,;  ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;,; , steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;,;,  steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;;  ,,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;; , ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;; ,, steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;;,  ,steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;;, , steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;;,,  steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com  ;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com  ,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com  ;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com,,;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com  ,,;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com  ,;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'bill@microsoft.com ,,;;steve@apple.com, torvalds@kernel.org': _SEMICOLON,
    'andris@tr.ee; andris@example.com;': _SEMICOLON,
    'Test User <test.user@mail.ee>; Disclosed:andris@tr.ee, andris@example.com;,,,, Undisclosed:; bob@example.com;': _SEMICOLON,
    'fejj@helixcode.com.': _TRAILING_DOT,
    'Jeffrey Stedfast <fejj@helixcode.com.>': _TRAILING_DOT,
    '"test\\\r\n blah"@iana.org': _UNFOLD_FIRST,
    'Warren Worthington, Jr. <warren@worthington.com>': _UNQUOTED_COMMA,
    'Worthington, Warren <warren@worthington.com>': _UNQUOTED_COMMA,
    'Joe Foo, PhD <joe@example.com>': _UNQUOTED_COMMA,
    'A, B, C <d@e.com>': _UNQUOTED_COMMA,
    'Joe, PhD <j@e.com>, Jane, MD <jane@e.com>': _UNQUOTED_COMMA,
    'a@b.com, Foo, Bar <c@d.com>, e@f.com': _UNQUOTED_COMMA,
    'SomeName, joe@example.com': _UNQUOTED_COMMA,
    'Title, Group: a@b.com;': _UNQUOTED_COMMA,
    '<another@example.net': _UNTERMINATED,
    '(Testing <fran@example.com>': _UNTERMINATED,
    '"Joe <joe@example.com>': _UNTERMINATED,
    '"Joe <joe@example.com>, Bob <bob@example.com>': _UNTERMINATED,
    'alice@example.com, bob[@example.com, carol@example.com': _UNTERMINATED,
    'a@[b, c@d': _UNTERMINATED,
    '"unclosed@example.com': _UNTERMINATED,
    'Name <user@example.com': _UNTERMINATED,
    'user@example.com (comment': _UNTERMINATED,
    'wők@example.com': _UTF8,
}


# --- formataddress ---------------------------------------------------------

def check_format(v: Vector) -> str | None:
    """formataddress, then parseaddress: exactly the one mailbox given, or a refusal."""
    name, address = _text(v["input"]["name"]), _text(v["input"]["address"])
    try:
        text = formataddress(name, address)
    except ValueError as exc:
        return None if not v["expect"]["roundtrip"] else f"refused: {exc}"
    got = parseaddress(text)
    same = (len(got) == 1 and got[0].error is None and _same_mailbox(
        got[0], {"name": name, "address": address}) is None)
    if not same:
        return f"{text!r} parses back as {got!r}"
    return None if v["expect"]["roundtrip"] else f"accepted as {text!r}"


_STRICT_FORMAT = "DESIGN: a malformed address from the caller raises ValueError; we do not guess the quoting"

FORMAT_DIFFERENCES: dict[str, str] = {
    "('', 'my@idiot@address@example.com')": _STRICT_FORMAT,
    "('', ' @example.com')": _STRICT_FORMAT,
    "('\\udced\\udca0\\udc80', 'invalid-utf8@example.net')":
        "a name that is not valid Unicode is refused (RFC 6532 wants UTF-8), not written as garbage",
}


# --- the tests ---------------------------------------------------------------

def _run(kinds: tuple[str, ...], check: Callable[[Vector], str | None],
         differences: dict[str, str], key: Callable[[Vector], str]) -> tuple[int, int]:
    vectors = _load(kinds)
    assert vectors, f"no vectors of kind {kinds}"
    wrong: list[str] = []
    listed_and_differing: set[str] = set()
    agree = 0
    for v in vectors:
        diff = check(v)
        k = key(v)
        if diff is None:
            agree += 1
        elif k in differences:
            listed_and_differing.add(k)
        else:
            wrong.append(f"{v['id']} {k!r}: {diff}")
    stale = sorted(set(differences) - listed_and_differing)
    assert not wrong, f"{len(wrong)} vectors disagree:\n" + "\n".join(wrong)
    assert not stale, "listed as deliberate differences but agreeing (or absent):\n" + "\n".join(map(repr, stale))
    return agree, len(vectors)


def test_date_vectors() -> None:
    _run(("date",), check_date, DATE_DIFFERENCES, lambda v: _key(_text(v["input"])))


def test_address_vectors() -> None:
    _run(("address", "addr_spec"), check_address, ADDRESS_DIFFERENCES, lambda v: _key(_text(v["input"])))


def test_format_address_vectors() -> None:
    _run(("format_address",), check_format, FORMAT_DIFFERENCES,
         lambda v: repr((_text(v["input"]["name"]), _text(v["input"]["address"]))))


def test_every_difference_has_a_reason() -> None:
    for table in (DATE_DIFFERENCES, ADDRESS_DIFFERENCES, FORMAT_DIFFERENCES):
        assert all(reason.strip() and "\n" not in reason for reason in table.values())

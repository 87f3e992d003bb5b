"""The service extensions a server announces in its EHLO reply (RFC 5321
section 4.1.1.1): keyword -> parameters."""

from __future__ import annotations

from ._reply import Reply

__all__ = ["Extensions"]


class Extensions:
    """The keywords of an EHLO reply, upper-cased, with their parameters.

    ``"PIPELINING" in ext``; ``ext.params("SIZE")``; ``ext.size`` (None when
    no limit is announced); ``ext.auth`` (the SASL mechanisms offered).
    Unknown keywords are kept but mean nothing to us; malformed lines are
    skipped.
    """

    def __init__(self, keywords: dict[str, list[str]] | None = None, domain: str = "") -> None:
        self._keywords = dict(keywords or {})
        self.domain = domain

    @classmethod
    def from_reply(cls, reply: Reply) -> "Extensions":
        """The extensions of a 250 reply to EHLO (linear in its size)."""
        keywords: dict[str, list[str]] = {}
        # the AUTH mechanisms of every AUTH line, merged without repeats and in
        # order: a dict keeps both in linear time (a list "not in" check made
        # a hostile 450 KB EHLO quadratic)
        mechanisms: dict[str, None] = {}
        for line in reply.lines[1:]:
            words = line.split()
            if not words:
                continue
            keyword = words[0].upper()
            params = words[1:]
            if keyword.startswith("AUTH="):
                # some old servers announce "AUTH=LOGIN PLAIN" (pre-RFC 4954 form)
                params = [keyword[5:]] + params
                keyword = "AUTH"
            if not keyword.replace("-", "").isalnum():
                continue
            if keyword == "AUTH":
                mechanisms.update(dict.fromkeys(p.upper() for p in params if p))
                keywords["AUTH"] = []
            else:
                keywords[keyword] = params
        if "AUTH" in keywords:
            keywords["AUTH"] = list(mechanisms)
        first = reply.lines[0].split() if reply.lines else []
        return cls(keywords, first[0] if first else "")

    def __contains__(self, keyword: str) -> bool:
        return keyword.upper() in self._keywords

    def params(self, keyword: str) -> list[str]:
        return list(self._keywords.get(keyword.upper(), []))

    @property
    def size(self) -> int | None:
        """The SIZE limit (RFC 1870), or None when absent or 0 (no limit)."""
        params = self._keywords.get("SIZE")
        if not params:
            return None
        try:
            limit = int(params[0])
        except ValueError:
            return None
        return limit or None

    @property
    def auth(self) -> list[str]:
        return list(self._keywords.get("AUTH", []))

    def __repr__(self) -> str:
        return f"Extensions({sorted(self._keywords)})"

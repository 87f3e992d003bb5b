"""Connection setup: the greeting, EHLO/HELO (LHLO for LMTP, RFC 2033),
STARTTLS and its policy, AUTH -- everything before the first transaction.

:class:`Setup` holds how to set the connection up (client name, TLS
settings, credentials as Secret, timeouts) and what it established:
``extensions`` (forgotten and asked again after STARTTLS, RFC 3207
section 4.2) and ``tls`` (the TLSInfo once encrypted). Its generators
yield the actions of smtpsend._driver through a Channel; what each reply
means is smtpsend._verdicts'.

The TLS policy (``tlspolicy``): None goes on in plaintext when TLS cannot
be had; "secure" refuses to; "insecure" also allows credentials in
plaintext; a callable ``policy(code, text)`` answers "secure" or
"insecure" at each point TLS is missing. A failed handshake is never
downgraded, whatever the policy answers. Credentials never travel without
TLS unless the policy said "insecure".
"""

from __future__ import annotations

import base64
from typing import Callable, Optional, Union

from . import _verdicts as verdict
from ._channel import Channel
from ._driver import Dialogue, StartTLS, Timeouts, TLSInfo
from ._errors import AuthenticationError, NotSupported, Timeout, TLSError, TLSRequired, TransportError, UsageError
from ._extensions import Extensions
from ._reply import Reply
from ._sasl import (Begin, Cancel, Challenge, Exchange, Final, Outcome, Respond, TokenArg, TokenFailure,
                    authenticate, choose, token_source)
from ._secret import Secret, wrap

__all__ = ["GREETING_QUIET", "Policy", "Setup"]

Policy = Union[None, str, Callable[[int, str], str]]

# Seconds of silence before the greeting after which the client says NOOP,
# to find out whether the port speaks TLS from the first byte (see greeting()).
GREETING_QUIET = 10.0


class Setup:
    """Greeting, EHLO, TLS and AUTH on one connection (see the module
    docstring). ``port`` (when known) lets the greeting wait probe for a
    TLS port; ``host`` is the name SASL mechanisms that bind to it use."""

    def __init__(self, channel: Channel, *, client: str, usetls: bool = True, implicit_tls: bool = False,
                 tlspolicy: Policy = None, username: Optional[str] = None,
                 password: Union[str, Secret, None] = None, token: TokenArg = None,
                 port: Optional[int] = None, host: str = "localhost", queue: bool = False,
                 mechanisms: Optional[list[str]] = None, timeouts: Timeouts = Timeouts(),
                 protocol: str = "smtp") -> None:
        self.channel = channel
        self.client = client
        self.usetls = usetls
        self.implicit_tls = implicit_tls
        self.tlspolicy = tlspolicy
        self.username = username
        self._password = wrap(password)
        self._token = token_source(token)   # this connection's: a callable is asked once per connection
        self.port = port
        self.host = host
        self.queue = queue
        self.mechanisms = [m.upper() for m in mechanisms] if mechanisms is not None else None
        self.timeouts = timeouts
        self.lmtp = protocol == "lmtp"   # RFC 2033: LHLO, and one reply per recipient after the data
        self.extensions = Extensions()
        self.tls: Optional[TLSInfo] = None
        self._cleartext_allowed = False   # the caller said "insecure" for this connection

    # ------------------------------------------------------------ the whole setup

    def open(self) -> Dialogue[None]:
        """Greeting, EHLO, TLS, AUTH (and QUED): ready for a transaction."""
        ch = self.channel
        if self.implicit_tls:
            ch.stage = "starttls"
            try:
                tls: TLSInfo = yield StartTLS(self.timeouts.connect)
            except TLSError as exc:
                if exc.reason == "plaintext":
                    exc.reason = "not-implicit-tls"   # it greeted in plaintext: hint tlsimport=False
                raise
            self._secured(tls)
        ch.stage = "greeting"
        greeting, probed = yield from self.greeting()
        verdict.greeting(greeting)
        ch.event("greeting", reply=greeting)
        if probed:
            [noop] = yield from ch.read(1, self.timeouts.command)   # the probe's reply
            verdict.closing(noop, "NOOP")
        yield from self.hello()
        yield from self.negotiate_tls()
        if self.username is not None:
            yield from self.authenticate()
        elif self._password is not None or self._token is not None:
            raise UsageError("password= or token= needs username=")
        if self.queue and "XQUE" in self.extensions:
            reply = yield from ch.command("QUED", self.timeouts.command)
            if not verdict.queued(reply):
                ch.note(f"QUED refused ({reply.code}); sending without queueing")

    def greeting(self) -> Dialogue[tuple[Reply, bool]]:
        """Wait for the greeting (RFC 5321 section 3.1); returns it and
        whether a NOOP probe was sent (its reply then follows).

        An implicit-TLS server (RFC 8314 section 3.3, port 465 and others)
        says nothing until the client's TLS handshake, so a plaintext
        client would wait the whole greeting timeout (300 s). On a port
        other than 25 (where MX servers may delay the greeting on purpose),
        after GREETING_QUIET seconds of silence (or half the timeout) the
        client sends NOOP: an SMTP server answers it after its greeting; a
        TLS server drops the connection or answers with a TLS alert, which
        the drivers recognise (RemoteProtocolError). Either way the error
        says to pass tlsimport=True (reason "implicit-tls"). A greeting
        that never comes is a Timeout with reason "no-greeting".
        """
        ch = self.channel
        total = self.timeouts.greeting
        quiet = min(GREETING_QUIET, total / 2)
        try:
            if self.implicit_tls or self.port in (None, 25):
                [greeting] = yield from ch.read(1, total)
                return greeting, False
            try:
                [greeting] = yield from ch.read(1, quiet)
                return greeting, False
            except Timeout:
                pass
            ch.note(f"no greeting within {quiet:g} s: sending NOOP to learn whether the port "
                    "expects TLS from the first byte", warn=False)
            try:
                yield from ch.send(["NOOP"], self.timeouts.command)
                [greeting] = yield from ch.read(1, total - quiet)
            except Timeout:
                raise
            except TransportError as exc:
                raise verdict.closed_after_probe(exc, quiet) from exc
            return greeting, True
        except Timeout as exc:
            raise verdict.no_greeting(exc)

    def hello(self) -> Dialogue[Extensions]:
        """EHLO (HELO when EHLO is refused with 5xx); returns the extensions.
        LMTP: LHLO, with no HELO to fall back to (RFC 2033 section 4.1)."""
        ch = self.channel
        ch.stage = "ehlo"
        if self.lmtp:
            reply = yield from ch.command(f"LHLO {self.client}", self.timeouts.command)
            verdict.lhlo_accepted(reply)
            self.extensions = Extensions.from_reply(reply)
            ch.event("extensions", extensions=self.extensions)
            return self.extensions
        reply = yield from ch.command(f"EHLO {self.client}", self.timeouts.command)
        if verdict.ehlo_accepted(reply):
            self.extensions = Extensions.from_reply(reply)
            ch.event("extensions", extensions=self.extensions)
            return self.extensions
        # RFC 5321 section 3.2: a server that does not know EHLO answers 5xx; try HELO
        reply = yield from ch.command(f"HELO {self.client}", self.timeouts.command)
        verdict.helo(reply)
        self.extensions = Extensions()
        return self.extensions

    # ------------------------------------------------------------ TLS (RFC 3207)

    def _secured(self, tls: TLSInfo) -> None:
        self.tls = tls
        self.channel.event("tls", version=tls.version, cipher=tls.cipher, peer_certificate=tls.peer_certificate)

    def _policy(self, code: int, text: str) -> str:
        """Ask the TLS policy; returns "secure" or "insecure" and notes
        whether the caller explicitly allowed cleartext."""
        policy = self.tlspolicy
        if policy is None:
            return "insecure"
        answer = policy(code, text) if callable(policy) else policy
        answer = "insecure" if answer == "insecure" else "secure"
        self._cleartext_allowed = answer == "insecure"
        return answer

    def negotiate_tls(self) -> Dialogue[None]:
        """STARTTLS when the server offers it and ``usetls``; otherwise the
        policy decides (TLSRequired when it says "secure"). After the
        handshake the extensions are asked again (RFC 3207 section 4.2)."""
        ch = self.channel
        if self.tls is not None:
            return
        if not self.usetls:
            self._policy_without_tls()
            return
        if "STARTTLS" not in self.extensions:
            if self._policy(250, "STARTTLS not offered") == "secure":
                raise TLSRequired("TLS required but the server does not offer STARTTLS")
            self._check_credentials_in_clear()
            return
        ch.stage = "starttls"
        reply = yield from ch.command("STARTTLS", self.timeouts.command)
        if not verdict.tls_started(reply):
            if self._policy(reply.code, reply.text) == "secure":
                raise TLSRequired(f"STARTTLS refused: {reply}")
            self._check_credentials_in_clear()
            ch.stage = "ehlo"
            return
        try:
            tls: TLSInfo = yield StartTLS(self.timeouts.command)
        except TLSError as exc:
            # never downgraded, whatever the policy answers (it is told, though)
            if callable(self.tlspolicy):
                self.tlspolicy(reply.code, str(exc))
            raise
        self._secured(tls)
        # RFC 3207 section 4.2: forget what we knew and ask again
        self.extensions = Extensions()
        yield from self.hello()

    def require_tls(self) -> Dialogue[None]:
        """STARTTLS now (if not encrypted yet), failing rather than going
        on in plaintext: TLSRequired when the server lacks or refuses it."""
        self.usetls, policy = True, self.tlspolicy
        self.tlspolicy = "secure"
        try:
            yield from self.negotiate_tls()
        finally:
            self.tlspolicy = policy

    def _policy_without_tls(self) -> None:
        if self.tlspolicy == "insecure":
            self._cleartext_allowed = True
        elif callable(self.tlspolicy) and self.username is not None:
            self._policy(0, "TLS not used (usetls=False)")
        self._check_credentials_in_clear()

    def _check_credentials_in_clear(self) -> None:
        if self.username is not None and self.tls is None and not self._cleartext_allowed:
            raise TLSRequired("credentials are never sent without TLS unless tlspolicy says "
                              "'insecure'")

    # ------------------------------------------------------------ AUTH (RFC 4954)

    def login(self, username: str, password: Optional[Secret], token: TokenArg) -> Dialogue[None]:
        """AUTH now with these credentials (already checked; the password as
        Secret, the token as Secret or a token callable)."""
        self.username, self._password, self._token = username, password, token_source(token)
        yield from self.authenticate()

    def authenticate(self) -> Dialogue[None]:
        """AUTH (RFC 4954) with the strongest usable mechanism offered: the
        shared login loop of smtpsend._sasl, driven with SMTP's framing.

        The next mechanism is tried only when the mechanism failed (see
        smtpsend._verdicts.next_mechanism); credentials refused (535,
        5.7.8) or any other refusal end AUTH with AuthenticationError, and
        a server that fails to prove it knows the password (SCRAM,
        DIGEST-MD5) with RemoteProtocolError: no weaker mechanism is then
        offered the same credentials. A token the server rejects as invalid
        is asked for again once when token= is a callable; a token callable
        that fails is an AuthenticationError (its exception the cause).
        NotSupported when no mechanism is usable (none offered, or the
        credentials do not suit them).
        """
        ch = self.channel
        ch.stage = "auth"
        self._check_credentials_in_clear()
        offered = self.extensions.auth
        if not offered:
            raise NotSupported("the server offers no AUTH, but credentials were given")
        if self.mechanisms is not None:
            offered = [m for m in offered if m in self.mechanisms]
        binding = self.tls.channel_binding if self.tls else None
        skipped: list[tuple[str, str]] = []
        mechanisms = choose(offered, self.username or "", self._password, self._token, self.host, binding,
                            skipped)
        for name, why in skipped:
            ch.note(f"{name} not used: {why}")
        if not mechanisms:
            detail = "".join(f"; {why}" for _, why in skipped)
            raise NotSupported(f"no usable SASL mechanism among {' '.join(offered) or 'none'}{detail}")
        outcome: Outcome[Reply] = Outcome()   # filled in as the login goes on
        try:
            yield from self._drive(authenticate(mechanisms, verdict.next_mechanism, outcome))
        except TokenFailure as exc:
            replies = [(name, r) for name, r in outcome.failures if isinstance(r, Reply)]
            raise AuthenticationError(str(exc), replies) from exc.__cause__   # the callable's own error
        if outcome.mechanism is not None:
            ch.note(f"authenticated with {outcome.mechanism}", warn=False)
            ch.event("auth", mechanism=outcome.mechanism)
            return
        raise verdict.auth_failure(outcome.failures, outcome.untried)

    def _drive(self, steps: Exchange[Outcome[Reply]]) -> Dialogue[Outcome[Reply]]:
        """Drive the SASL steps over SMTP (RFC 4954 section 4): ``AUTH
        <mechanism> [initial response]`` ("=" for an empty one), each
        response a base64 line, "*" to cancel; a 334 is a challenge, any
        other reply the end of the exchange. The trace shows AUTH data as
        ``***``; an error (a 421) carries ``AUTH <mechanism> ***`` as its
        command."""
        ch = self.channel
        t = self.timeouts.command
        redacted = "AUTH ***"
        answer: Union[None, Challenge, Final[Reply]] = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration as stop:
                done: Outcome[Reply] = stop.value
                return done
            answer = None
            if isinstance(step, Begin):
                redacted = f"AUTH {step.mechanism} ***"
                line = f"AUTH {step.mechanism}"
                if step.initial is not None:
                    line += " " + (base64.b64encode(step.initial).decode() or "=")   # "=": empty
                reply = yield from ch.command(line, t, secret=redacted if step.initial else None)
                answer = _answer(reply)
            elif isinstance(step, Respond):
                reply = yield from ch.command(base64.b64encode(step.data).decode(), t, secret="***",
                                              command=redacted)
                answer = _answer(reply)
            elif isinstance(step, Cancel):
                yield from ch.command("*", t)   # the reply (501) changes nothing
            else:
                ch.note(step.text)


def _answer(reply: Reply) -> Union[Challenge, Final[Reply]]:
    """An SMTP reply as the SASL exchange sees it: 334 a challenge, 235
    success, anything else a refusal (smtpsend._verdicts decides)."""
    if verdict.challenge(reply):
        return Challenge(reply.lines[0])
    return Final(verdict.authenticated(reply), reply)

"""Secrets are held so that repr, str, vars() and pickling of the objects
that hold them never show them (issue 11, item 7a)."""

import copy
import pickle

import pytest

import smtpsend
from smtpsend._sasl import MECHANISMS, choose
from smtpsend._secret import Secret, wrap
from smtpsend._session import Session
from smtpsend.testing import CaptureServer

from conftest import SENTINEL


def reachable(obj, depth=6, seen=None):
    """Every object reachable from ``obj`` through vars(), __slots__,
    containers and exception links: what a debugger or an error tracker
    that captures locals walks."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth < 0:
        return
    seen.add(id(obj))
    yield obj
    children = []
    if isinstance(obj, dict):
        children = list(obj.keys()) + list(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif not isinstance(obj, (str, bytes, int, float, type(None))):
        children = list(getattr(obj, "__dict__", {}).values())
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if hasattr(obj, slot):
                    children.append(getattr(obj, slot))
        if isinstance(obj, BaseException):
            children += [obj.__cause__, obj.__context__, *obj.args]
    for child in children:
        yield from reachable(child, depth - 1, seen)


def shows_secret(obj) -> list:
    found = []
    for item in reachable(obj):
        if isinstance(item, (str, bytes)):
            text = item if isinstance(item, str) else item.decode("latin-1")
            if SENTINEL in text:
                found.append(text[:60])
        elif SENTINEL in repr(item) or SENTINEL in str(item):
            found.append(type(item).__name__)
    return found


def test_a_secret_shows_nothing():
    secret = Secret(SENTINEL)
    assert secret.reveal() == SENTINEL
    assert SENTINEL not in repr(secret) and SENTINEL not in str(secret) and SENTINEL not in f"{secret}"
    assert not shows_secret(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert copy.copy(secret) is secret and copy.deepcopy(secret) is secret
    assert wrap(None) is None and wrap(secret) is secret and wrap("x").reveal() == "x"
    with pytest.raises(TypeError):
        Secret(b"bytes")


def test_a_secret_holds_any_text():
    for text in ("", "pässwörd", "\U0001F511", "pw\udcff"):
        assert Secret(text).reveal() == text


def test_mechanisms_hold_no_readable_secret():
    for cls in MECHANISMS:
        mech = cls("user", SENTINEL, SENTINEL, "mx.example", b"\1" * 12)
        assert not shows_secret(mech), cls.name
        with pytest.raises(TypeError):
            pickle.dumps(mech)
    for mech in choose([m.name for m in MECHANISMS], "user", SENTINEL, SENTINEL, "h", b"\1" * 12):
        mech.start()
        assert not shows_secret(mech), mech.name


def test_a_session_holds_no_readable_secret():
    session = Session(client="c.example", username="user", password=SENTINEL, token=SENTINEL)
    assert not shows_secret(session)
    with pytest.raises(TypeError):
        pickle.dumps(session)


def test_the_object_connect_returns_holds_no_readable_secret(server_tls, client_tls):
    with CaptureServer(tls_context=server_tls, users={"user": SENTINEL}) as server:
        with smtpsend.connect("localhost", port=server.port, ssl_context=client_tls, username="user",
                              password=SENTINEL) as smtp:
            assert smtp.session is not None
            assert not shows_secret(smtp), shows_secret(smtp)
            assert not shows_secret(vars(smtp))
            assert SENTINEL not in repr(vars(smtp)) and SENTINEL not in repr(vars(smtp.session))
            smtp.login("user", SENTINEL)        # again, on the same connection: still nothing readable
            assert not shows_secret(smtp)
        assert server.messages == []


def test_errors_of_a_failed_login_hold_no_readable_secret(server_tls, client_tls):
    with CaptureServer(tls_context=server_tls, users={"user": "another"}) as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(b"From: a@example.com\r\nTo: b@example.com\r\n\r\nx\r\n", servers=["localhost"],
                                 ports=[server.port], ssl_context=client_tls, username="user", password=SENTINEL)
    assert not shows_secret(info.value)


def test_the_send_plan_holds_no_readable_secret():
    import inspect
    from smtpsend._failover import plan as _plan
    bound = inspect.signature(smtpsend.sendmessage).bind(b"From: a@x.org\r\nTo: b@y.org\r\n\r\nx\r\n",
                                                         username="user", password=SENTINEL, token=SENTINEL)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("ssl_context")
    plan = _plan(**arguments)
    assert SENTINEL not in repr(plan) and not shows_secret(plan)

"""Fixtures and checks every test gets: hypothesis profiles; the secret
sentinel check (the smtpsend log, every exception of ours a test made,
the public objects it made); the used-up check of transcript Scripts; the
throwaway CA; the Postfix/Dovecot rig."""

from __future__ import annotations

import base64
import functools
import importlib
import logging
import os
import ssl
import sys
import types
from collections import deque
from typing import Any, Callable, Generator

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])


def _flag(name: str) -> bool:
    """An environment variable set to something other than "", 0, false, no."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


settings.load_profile("ci" if _flag("CI") else "default")

# A password used by the security tests: no log record, no exception and no
# object of WATCHED_CLASSES made during any test may show it (no_secret_in_logs).
SENTINEL = "Sentinel-Pa55word-7c1e"


# ---------------------------------------------------------------- finding the secret

def secret_forms(secret: str = SENTINEL) -> list[str]:
    """The secret as text and as base64 at each of the three offsets it can
    have inside a longer base64 string (AUTH PLAIN, LOGIN and XOAUTH2
    responses are base64): a leak in either form is found."""
    data = secret.encode()
    forms = [secret]
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode()
        forms.append(encoded[4 if offset else 0:-4])    # the characters only the secret decides
    return forms


def _shows(text: str, forms: list[str]) -> bool:
    return any(form in text for form in forms)


def _our_class(cls: type) -> bool:
    """A class of smtpsend or mimecompose."""
    return (getattr(cls, "__module__", "") or "").split(".")[0] in ("smtpsend", "mimecompose")


def _ours(value: object) -> bool:
    """An object of our packages (whose vars() a walk looks into)."""
    return _our_class(type(value))


_ATOMS = (int, float, complex, bool, type(None), type(Ellipsis))
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
           types.FrameType, types.TracebackType, types.CodeType, types.GeneratorType, types.CoroutineType)


def find_secret(obj: object, secret: str = SENTINEL, *, limit: int = 50_000) -> list[str]:
    """Where ``secret`` (or its base64, see secret_forms) shows in ``obj``:
    a list of paths such as ``error.__cause__.attempts[0].error.command``.

    Walks str and bytes values; lists, tuples, sets and dicts (keys and
    values); exceptions (args, __cause__, __context__, vars(), their str()
    and repr()); and vars() and __slots__ of ``obj`` itself and of every
    object of smtpsend or mimecompose reached (and their repr). Frames,
    tracebacks, functions and classes are not entered. A cycle is walked
    once; at most ``limit`` objects are looked at.
    """
    forms = secret_forms(secret)
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[str, object, bool]] = [("obj", obj, True)]
    while stack and len(seen) < limit:
        path, value, top = stack.pop()
        if isinstance(value, _ATOMS) or isinstance(value, _OPAQUE):
            continue
        if isinstance(value, str):
            if _shows(value, forms):
                found.append(f"{path} = {value[:80]!r}")
            continue
        if isinstance(value, (bytes, bytearray, memoryview)):
            if _shows(bytes(value).decode("latin-1"), forms):
                found.append(f"{path} = {bytes(value)[:80]!r}")
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        children: list[tuple[str, object]] = []
        if isinstance(value, dict):
            for key, item in value.items():
                children += [(f"{path}.keys()", key), (f"{path}[{key!r}]", item)]
        elif isinstance(value, (list, tuple, set, frozenset, deque)):
            children += [(f"{path}[{i}]", item) for i, item in enumerate(value)]
        else:
            exception = isinstance(value, BaseException)
            if not (top or exception or _ours(value)):
                continue
            if isinstance(value, BaseException):
                children += [(f"{path}.args", value.args), (f"{path}.__cause__", value.__cause__),
                             (f"{path}.__context__", value.__context__)]
            for text, how in ((_safe(repr, value), "repr"), (_safe(str, value) if exception else "", "str")):
                if _shows(text, forms):
                    found.append(f"{how}({path}) = {text[:80]!r}")
            children += [(f"{path}.{name}", item) for name, item in _attributes(value)]
        stack.extend((p, v, False) for p, v in reversed(children))
    return found


def _safe(function: Callable[[object], str], value: object) -> str:
    try:
        return function(value)
    except Exception:   # noqa: BLE001 - a repr that fails shows nothing
        return ""


def _attributes(value: object) -> list[tuple[str, object]]:
    """vars() and __slots__ of ``value``."""
    out = list(getattr(value, "__dict__", {}).items())
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(value, name):
                out.append((name, getattr(value, name)))
    return out


def assert_no_secret(obj: object, secret: str = SENTINEL, what: str = "") -> None:
    """AssertionError naming every place ``secret`` shows in ``obj`` (see find_secret)."""
    found = find_secret(obj, secret)
    assert not found, f"the secret shows in {what or type(obj).__name__}: " + "; ".join(found[:5])


# ---------------------------------------------------------------- what each test made

# Every exception of our packages made during a test, and every object of
# the classes below: each is walked by find_secret when the test ends -- the
# exceptions a test catches included, with whatever was attached to them
# after they were raised (server, stage, attempts).
WATCHED_CLASSES = ("Client", "POP3", "Session", "Event", "Attempt", "Plan", "Transport", "AsyncTransport")
_MADE: list[object] = []
_MADE_LIMIT = 5_000
_PATCHED: set[type] = set()


def made_on_purpose(*objects: object) -> None:
    """Leave ``objects`` out of the end-of-test walk: a test of the walker
    gives them the secret on purpose."""
    _MADE[:] = [made for made in _MADE if not any(made is obj for obj in objects)]


def _watch(cls: type[Any]) -> None:
    """Make ``cls`` record each instance it initialises in _MADE."""
    original = cls.__dict__.get("__init__")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if original is not None:
            original(self, *args, **kwargs)
        else:
            super(cls, self).__init__(*args, **kwargs)
        if len(_MADE) < _MADE_LIMIT and not any(made is self for made in _MADE[-4:]):
            _MADE.append(self)
    if original is not None:
        functools.update_wrapper(__init__, original)
    cls.__init__ = __init__
    _PATCHED.add(cls)


def _watch_our_classes() -> None:
    """Watch the exception classes and WATCHED_CLASSES of every module of
    smtpsend and mimecompose imported so far."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("smtpsend", "mimecompose") or module is None:
            continue
        for value in list(vars(module).values()):
            if (isinstance(value, type) and value not in _PATCHED and value.__module__ == name
                    and (issubclass(value, BaseException) or value.__name__ in WATCHED_CLASSES)
                    and ("__init__" in vars(value) or not any(_our_class(base) for base in value.__mro__[1:]))):
                _watch(value)   # its own __init__, or the first of ours in its line: subclasses inherit it


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Keep each phase's report on the item (the fixture below asks whether
    the test itself passed); name the secret if the error a test failed
    with carries it."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
    if call.excinfo is not None and report.failed:
        found = find_secret(call.excinfo.value)
        if found:
            report.sections.append(("secret sentinel", "the error this test failed with shows the secret:\n"
                                    + "\n".join(found[:10])))


@pytest.fixture(autouse=True)
def no_secret_in_logs(request: pytest.FixtureRequest) -> Generator[_Recorder, None, None]:
    """Every test: nothing logged through the smtpsend logger, no exception
    of ours made during the test (raised, caught or kept) and no object of
    WATCHED_CLASSES shows SENTINEL (or its base64); and every transcript
    Script the test made was used up (tests/transcript.py)."""
    _watch_our_classes()
    _MADE.clear()
    script_module = sys.modules.get("transcript")
    if script_module is not None:
        script_module.clear()
    logger = logging.getLogger("smtpsend")
    recorder = _Recorder()
    logger.addHandler(recorder)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    yield recorder
    logger.removeHandler(recorder)
    logger.setLevel(old_level)
    _watch_our_classes()          # modules the test imported
    made, _MADE[:] = list(_MADE), []
    forms = secret_forms()
    leaked = [m for m in recorder.messages if _shows(m, forms)]
    assert not leaked, f"secret in the smtpsend log: {leaked[:3]}"
    for obj in made:
        assert_no_secret(obj, what=f"a {type(obj).__name__} made during the test")
    call = getattr(request.node, "report_call", None)
    script_module = sys.modules.get("transcript")
    if script_module is not None and call is not None and call.passed:
        left = script_module.unfinished()
        assert not left, "; ".join(left)


@pytest.fixture(scope="session")
def ca() -> Any:
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: Any) -> ssl.SSLContext:
    """A server-side context with a certificate for localhost and 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: Any) -> ssl.SSLContext:
    """A client context that trusts only the throwaway CA (verification on)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def rig_opt_in() -> tuple[bool, str]:
    """Whether this run may install and start Postfix and Dovecot: only in
    CI (CI=true) or when asked for (SMTPSEND_RIG=1), never just because the
    suite runs as root. Returns (allowed, why not)."""
    if _flag("CI") or _flag("SMTPSEND_RIG"):
        return True, ""
    return False, ("the real-server tests install and start Postfix and Dovecot: set SMTPSEND_RIG=1 "
                   "to let them (as root), or start a rig with 'python tests/rig/rig.py start' and "
                   "set MAILRIG_STATE to its directory")


@pytest.fixture(scope="session")
def rig() -> Generator[Any, None, None]:
    """The Postfix + Dovecot rig (tests/rig/rig.py), started once per session.

    Started only under CI=true or SMTPSEND_RIG=1 (skipped with the reason
    otherwise); skipped with a reason when it cannot run here (not root,
    packages missing); in CI it is mandatory and a failure fails the run.
    Set MAILRIG_STATE to the state directory of a rig already running to
    reuse it. A rig started here is stopped and its state directory
    removed at the end of the session.
    """
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "rig"))
    rigmod: Any = importlib.import_module("rig")

    class Rig:
        ports = rigmod.PORTS
        users = rigmod.USERS

    state = os.environ.get("MAILRIG_STATE")
    started = False
    if not state:
        allowed, why = rig_opt_in()
        if not allowed:
            pytest.skip(why)
        ok, why = rigmod.available()
        if not ok:
            if _flag("CI"):
                pytest.fail(f"the Postfix/Dovecot rig is mandatory in CI: {why}")
            pytest.skip(f"real-server tests need the rig ({why}); run as root, or start it with "
                        "'python tests/rig/rig.py start' and set MAILRIG_STATE")
        try:
            state = rigmod.start()
        except Exception as exc:   # noqa: BLE001 - any failure to start is reported the same way
            if _flag("CI"):
                pytest.fail(f"the Postfix/Dovecot rig did not start: {exc}")
            pytest.skip(f"the Postfix/Dovecot rig did not start: {exc}")
        started = True
    r: Any = Rig()
    r.state = state
    r.ca = os.path.join(state, "tls", "ca.pem")
    r.context = ssl.create_default_context(cafile=r.ca)
    r.queue_empty = lambda timeout=20: rigmod.queue_empty(state, timeout)
    r.purge_deferred = lambda: rigmod.purge_deferred(state)
    r.log = lambda name="postfix": open(os.path.join(state, "log", f"{name}.log"), encoding="utf-8",
                                        errors="replace").read()
    try:
        yield r
    finally:
        if started:
            rigmod.remove(state)


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    """The DKIM tests' signing keys: a fresh RSA and Ed25519 key per test
    module, by algorithm name (tests/dkimverify.py has ``pem`` for them)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    return {"rsa-sha256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ed25519-sha256": ed25519.Ed25519PrivateKey.generate()}

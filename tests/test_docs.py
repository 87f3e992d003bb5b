"""Every ```python block in docs/ (and the package-index description) runs
as written, each page in one namespace.

- A block whose first line is ``# not run: ...`` is only compiled.
- A block whose first line is ``# dry run: ...`` needs a real service: it
  runs with ``smtpsend.sendmessage`` replaced by the real argument checking
  and message preparation (``_plan``) and no network; it must call it at
  least once, and any name lookup other than the loopback fails the test.
- A block whose first line is ``# test_NAME.py: a pytest test module`` is
  run by pytest: every test in it must pass, and every test must fail when
  ``smtpsend.sendmessage`` sends nothing -- a test of code that sends mail
  that passes without mail tests nothing.
- In every block, a ``try`` with ``except`` clauses and no ``else`` shows an
  error case: it fails the example when no exception is raised (the except
  clause's asserts would otherwise never run).
"""

import ast

import contextlib
import inspect
import io
import pathlib
import re
import socket

import pytest

import mimecompose
import smtpsend
from smtpsend import _failover

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = sorted(p for p in [*DOCS.glob("*.md"), ROOT / "DESCRIPTION.md"]
               if p.exists() and BLOCK.search(p.read_text(encoding="utf-8")))
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
PYTEST_MODULE = re.compile(r"# (test_\w+\.py): a pytest test module")


class _ExpectTheError(ast.NodeTransformer):
    """``try: ... except E: ...`` without ``else`` gets ``else: raise
    AssertionError``: an example showing an error fails when there is none."""

    def visit_Try(self, node: ast.Try) -> ast.Try:
        self.generic_visit(node)
        if node.handlers and not node.orelse:
            message = f"line {node.lineno}: the example expects an exception here, and none was raised"
            node.orelse = [ast.Raise(exc=ast.Call(func=ast.Name("AssertionError", ast.Load()),
                                                  args=[ast.Constant(message)], keywords=[]), cause=None)]
        return node


def _compile(code: str, name: str):
    tree = _ExpectTheError().visit(ast.parse(code, name))
    return compile(ast.fix_missing_locations(tree), name, "exec")


def _first_line(code: str) -> str:
    return code.splitlines()[0] if code else ""


class DryRun:
    """Stands in for smtpsend.sendmessage: checks the arguments as the real
    one does (binding its signature, then _plan) and records the plans."""

    def __init__(self) -> None:
        self.signature = inspect.signature(smtpsend.sendmessage)
        self.plans: list = []

    def __call__(self, *args, **kwargs):
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop("ssl_context")
        self.plans.append(_failover.plan(**arguments))
        return []


def _guard(monkeypatch) -> None:
    """No name but the loopback resolves, and no connection leaves it."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK:
            raise AssertionError(f"a docs example tried to reach {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def create_connection(address, *args, **kwargs):
        if address[0] not in LOOPBACK:
            raise AssertionError(f"a docs example tried to connect to {address[0]!r}")
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    assert blocks
    namespace = {"__name__": "docs_example"}
    for n, code in enumerate(blocks):
        name = f"{page.name}[{n}]"
        compiled = _compile(code, name)
        first = _first_line(code)
        if "# not run" in first or PYTEST_MODULE.match(first):
            continue
        with contextlib.ExitStack() as stack:
            dry = None
            if first.startswith("# dry run"):
                patch = stack.enter_context(pytest.MonkeyPatch.context())
                dry = DryRun()
                patch.setattr(smtpsend, "sendmessage", dry)
                _guard(patch)
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compiled, namespace)
            if dry is not None:
                assert dry.plans, f"{name} is marked dry run but never calls smtpsend.sendmessage"


def test_dry_run_checks_what_the_real_call_checks(monkeypatch):
    """The dry-run mechanism is not a blank stub: the mistakes a recipe
    could make fail it, and a real host is never looked up."""
    part = mimecompose.compose("x", header={"From": "a@example.com", "To": "b@example.com"})
    dry = DryRun()
    with pytest.raises(TypeError):
        dry(part, servers=["mail.example.com"], port=587)            # misspelt option
    with pytest.raises(smtpsend.UsageError):
        dry(part, servers=["mail.example.com"], tlsimport=True, usetls=False)
    with pytest.raises(smtpsend.UsageError):
        dry(part, servers=["mail.example.com"], header=[("X-A", "a\r\nBcc: evil@example.com")])
    assert dry(part, servers=["mail.example.com", "backup.example.com:2525"], ports=[465]) == []
    [plan] = dry.plans
    assert [(target.host, target.port) for target in plan.targets] == [("mail.example.com", 465),
                                                                        ("backup.example.com", 2525)]
    assert plan.prepared.envelope == smtpsend.Envelope("a@example.com", ["b@example.com"])
    with monkeypatch.context() as patch:
        _guard(patch)
        with pytest.raises(AssertionError, match="tried to reach"):
            socket.getaddrinfo("mail.example.com", 25)


def test_recipes_page_is_linked_and_covers_the_services():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert "(recipes.md)" in index
    recipes = (DOCS / "recipes.md").read_text(encoding="utf-8")
    for service in ("Port 587", "Port 465", "Gmail", "Microsoft 365", "Amazon SES", "Postfix",
                    "private CA", "--cafile"):
        assert service in recipes, service
    dry = [b for b in BLOCK.findall(recipes) if _first_line(b).startswith("# dry run")]
    assert len(dry) >= 6


@pytest.mark.parametrize("module", [mimecompose, smtpsend], ids=lambda m: m.__name__)
def test_every_exported_name_is_in_the_reference(module):
    """Each name of __all__ is documented in docs/reference-<package>.md, as
    code (`name` or `name(`), not merely mentioned in passing."""
    reference = (DOCS / f"reference-{module.__name__}.md").read_text(encoding="utf-8")
    missing = [name for name in module.__all__
               if not re.search(rf"`(?:async )?{re.escape(name)}[`(]", reference)]
    assert missing == []


@pytest.mark.parametrize("function", [smtpsend.sendmessage, smtpsend.connect, smtpsend.Client.sendmessage,
                                      smtpsend.envelope, smtpsend.transmitted, mimecompose.initialize,
                                      mimecompose.compose], ids=lambda f: f.__qualname__)
def test_every_parameter_is_in_the_reference(function):
    package = function.__module__.split(".")[0]
    reference = (DOCS / f"reference-{package}.md").read_text(encoding="utf-8")
    names = [n for n, p in inspect.signature(function).parameters.items()
             if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    assert [n for n in names if not re.search(rf"\b{n}\b", reference)] == []


def _pytest_modules():
    for page in PAGES:
        for code in BLOCK.findall(page.read_text(encoding="utf-8")):
            match = PYTEST_MODULE.match(_first_line(code))
            if match:
                yield pytest.param(match.group(1), code, id=f"{page.name}:{match.group(1)}")


NOTHING_SENT = """
import pytest, smtpsend

@pytest.fixture(autouse=True)
def nothing_is_sent(monkeypatch):
    monkeypatch.setattr(smtpsend, "sendmessage", lambda *args, **kwargs: [])
"""


@pytest.mark.parametrize("filename,code", list(_pytest_modules()))
def test_pytest_module_examples_pass_and_test_something(pytester, filename, code):
    from test_plugin import _plugin_args
    pytester.makepyfile(**{filename[:-3]: code})
    passed = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider")
    count = passed.parseoutcomes().get("passed", 0)
    assert count and passed.ret == 0, passed.stdout.str()
    pytester.makeconftest(NOTHING_SENT)
    mutant = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider")
    mutant.assert_outcomes(failed=count)      # each test notices that no mail went out


def test_an_example_expecting_an_error_fails_without_it():
    code = "try:\n    x = 1\nexcept ValueError as exc:\n    assert 'bad' in str(exc)\n"
    with pytest.raises(AssertionError, match="expects an exception"):
        exec(_compile(code, "example"), {})
    exec(_compile(code.replace("x = 1", "raise ValueError('bad')"), "example"), {})
    exec(_compile(code + "else:\n    pass\n", "example"), {})     # an explicit else is the example's own

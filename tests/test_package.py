"""Packaging: the source distribution carries what its test suite needs, the
metadata reads well on a package index, and the real-server rig starts only
when asked for (issue 13)."""

from __future__ import annotations

import configparser
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SKIP_IN_COPY = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "*.egg-info", "build", "dist",
                                      ".hypothesis", ".pytest_cache", ".benchmarks", "*.tar.gz")


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> pathlib.Path:
    """An sdist built from a copy of the tree (the tree itself is left alone)."""
    pytest.importorskip("setuptools")
    work = tmp_path_factory.mktemp("sdist")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=SKIP_IN_COPY)
    result = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(work / "dist")],
                            cwd=source, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    [archive] = (work / "dist").glob("*.tar.gz")
    return archive


def test_sdist_carries_tests_corpus_docs_and_license(sdist):
    with tarfile.open(sdist) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    corpus = sorted(p.name for p in (ROOT / "tests" / "corpus").glob("*.eml"))
    assert corpus
    for name in corpus:
        assert f"tests/corpus/{name}" in names, name
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*")
                   if p.is_file() and p.suffix != ".pyc"
                   and not {"__pycache__", ".hypothesis", ".pytest_cache", ".benchmarks"} & set(p.parts))
    assert [t for t in tests if t not in names] == []      # every test module and data file
    for name in ("LICENSE", "CHANGELOG.md", "README.md", "DESCRIPTION.md", "setup.cfg", "setup.py",
                 "docs/index.md", "docs/recipes.md", "mimecompose/py.typed", "smtpsend/py.typed",
                 "tests/rig/rig.py"):
        assert name in names, name
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_tests_run_from_the_sdist(sdist, tmp_path):
    """The tests that read the corpus and the docs, run from the unpacked
    sdist against its own packages: what they need is all there."""
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path)
    [tree] = [p for p in tmp_path.iterdir() if p.is_dir()]
    env = {k: v for k, v in os.environ.items() if k not in ("SMTPSEND_RIG", "MAILRIG_STATE")}
    env["PYTHONPATH"] = str(tree)
    check = subprocess.run([sys.executable, "-c", "import mimecompose; print(mimecompose.__file__)"],
                           cwd=tree, env=env, capture_output=True, text=True)
    assert check.stdout.strip().startswith(str(tree)), check.stdout + check.stderr
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_parse.py", "tests/test_docs.py", "-k", "corpus or reference", "-x"],
                            cwd=tree, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout)


def test_license_and_metadata():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "the mimecompose-smtpsend authors" in text
    metadata = _setup_cfg()["metadata"]
    assert metadata["license"] == "MIT"
    assert metadata["license_files"].strip() == "LICENSE"
    assert metadata["version"].strip() == "attr: mimecompose.__version__"
    assert "Typing :: Typed" in metadata["classifiers"]
    data = _setup_cfg()["options.package_data"]
    assert data["mimecompose"].strip() == "py.typed" and data["smtpsend"].strip() == "py.typed"


def test_package_index_description_has_no_relative_links():
    """The index shows long_description without the repository around it: a
    relative link there leads nowhere."""
    metadata = _setup_cfg()["metadata"]
    assert metadata["long_description"].strip() == "file: DESCRIPTION.md"
    assert metadata["long_description_content_type"].strip() == "text/markdown"
    text = (ROOT / "DESCRIPTION.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)]*)\)", text) + re.findall(r"""(?:href|src)=["']([^"']*)""", text)
    assert [link for link in links if not re.match(r"https://", link)] == []
    assert "pip install" in text and "python -m venv" in text.replace("python3 -m venv", "python -m venv")


def test_changelog_follows_keep_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog")
    assert re.search(r"^## \[Unreleased\]$", text, re.M)
    headings = re.findall(r"^### (\w+)$", text, re.M)
    assert headings and set(headings) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


# ---------------------------------------------------------------- the rig's opt-in

FAKE_RIG = '''
import os, tempfile
PORTS = {"smtp": 1}
USERS = {}
def available():
    return True, ""
def start():
    state = tempfile.mkdtemp(prefix="fake-rig-")
    os.makedirs(os.path.join(state, "tls"))
    import trustme
    trustme.CA().cert_pem.write_to_path(os.path.join(state, "tls", "ca.pem"))
    with open(os.environ["RIG_RECORD"], "a") as fh:
        fh.write("start " + state + "\\n")
    return state
def remove(state):
    import shutil
    shutil.rmtree(state)
    with open(os.environ["RIG_RECORD"], "a") as fh:
        fh.write("remove " + state + "\\n")
def install():
    raise AssertionError("install must not run from the test suite")
'''

USES_RIG = '''
def test_uses_rig(rig):
    assert rig.state
'''


@pytest.fixture
def rig_sandbox(pytester, monkeypatch, tmp_path):
    """Our conftest with a stand-in rig module that records what it is asked to do."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    (pytester.path / "rig").mkdir()
    (pytester.path / "rig" / "rig.py").write_text(FAKE_RIG)
    pytester.makepyfile(test_uses=USES_RIG)
    record = tmp_path / "record.txt"
    record.write_text("")
    monkeypatch.setenv("RIG_RECORD", str(record))
    for name in ("CI", "SMTPSEND_RIG", "MAILRIG_STATE"):
        monkeypatch.delenv(name, raising=False)
    return record


def test_rig_is_not_started_without_opt_in(rig_sandbox, pytester):
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SMTPSEND_RIG=1*"])
    assert rig_sandbox.read_text() == ""


@pytest.mark.parametrize("variable", ["CI", "SMTPSEND_RIG"])
def test_rig_started_on_opt_in_and_its_state_removed(rig_sandbox, pytester, monkeypatch, variable):
    monkeypatch.setenv(variable, "true" if variable == "CI" else "1")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    (started, state), (removed, again) = [line.split(" ", 1) for line in rig_sandbox.read_text().splitlines()]
    assert (started, removed) == ("start", "remove") and state == again
    assert not os.path.exists(state)


def test_ci_false_is_not_an_opt_in(rig_sandbox, pytester, monkeypatch):
    monkeypatch.setenv("CI", "false")
    monkeypatch.setenv("SMTPSEND_RIG", "0")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    assert rig_sandbox.read_text() == ""


def test_rig_remove_deletes_a_state_directory(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "rig"))
    try:
        import rig as rigmod
    finally:
        sys.path.remove(str(ROOT / "tests" / "rig"))
    state = tmp_path / "mailrig-test"
    (state / "log").mkdir(parents=True)
    (state / "log" / "postfix.log").write_text("x")
    rigmod.remove(str(state))          # no daemons ran there: nothing to stop, the tree goes
    assert not state.exists()
    rigmod.remove(str(state))          # and again: nothing to do

"""Both packages, and the public API as the docs use it, type-check clean.

``mypy --strict`` and ``pyright`` run on mimecompose, smtpsend and
tests/typing_examples.py and must report no error. So that these tests
cannot pass because a checker did not run (or did not see the code), each
checker must also report the deliberate mistakes of a small wrong file, on
the lines where they are, and the clean run must have analysed every file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = os.path.join("tests", "typing_examples.py")
TARGETS = ["mimecompose", "smtpsend", EXAMPLES]

# Each line marked "# wrong" misuses the public API; nothing else is wrong.
WRONG = '''\
import mimecompose
import smtpsend

part = mimecompose.initialize("text/plain", string="x")
smtpsend.sendmessage(part, server="mail.example.com")  # wrong: the keyword is servers=
stamp: int = mimecompose.formatdate()  # wrong: formatdate returns str
smtpsend.connect("mail.example.com", 25, "client.example.com")  # wrong: port= and client= are keyword-only
'''
WRONG_LINES = [n for n, line in enumerate(WRONG.splitlines(), 1) if "# wrong" in line]


def python_files() -> int:
    """How many modules the targets hold."""
    count = sum(1 for package in ("mimecompose", "smtpsend") for _ in (REPO / package).rglob("*.py"))
    return count + 1


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a checker from the repository root (so both packages import)."""
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def mypy(paths: list[str]) -> tuple[list[tuple[str, int]], str]:
    """``mypy --strict`` on ``paths``: the (file, line) of each error, and the output."""
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")
    done = run([sys.executable, "-m", "mypy", "--strict", *paths])
    output = done.stdout + done.stderr
    errors = [(m.group(1), int(m.group(2)))
              for m in re.finditer(r"^(.+?):(\d+): error:", output, re.MULTILINE)]
    assert done.returncode in (0, 1), output        # 2: mypy itself failed
    assert (done.returncode == 1) == bool(errors), output
    return errors, output


def pyright(paths: list[str]) -> tuple[dict[str, Any], str]:
    """``pyright`` on ``paths``: its JSON report, and the output."""
    executable = shutil.which("pyright")
    if executable is None:
        pytest.fail("pyright is in the test extra (pip install -e '.[test]') but is not on PATH")
    done = run([executable, "--outputjson", *paths])
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"pyright did not report (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return report, done.stdout + done.stderr


def shown(report: dict[str, Any]) -> str:
    """pyright's diagnostics, one a line."""
    return "\n".join(f"{d['file']}:{d['range']['start']['line'] + 1}: {d['severity']}: {d['message']}"
                     f" ({d.get('rule', '')})" for d in report["generalDiagnostics"])


def test_mypy_strict_is_clean() -> None:
    errors, output = mypy(TARGETS)
    assert errors == [], output
    checked = re.search(r"no issues found in (\d+) source files", output)
    assert checked and int(checked.group(1)) >= python_files(), output


def test_pyright_is_clean() -> None:
    report, output = pyright(TARGETS)
    summary = report["summary"]
    assert (summary["errorCount"], summary["warningCount"]) == (0, 0), shown(report) or output
    assert summary["filesAnalyzed"] >= python_files(), output


@pytest.fixture
def wrong_file(tmp_path: Path) -> str:
    path = tmp_path / "wrong_usage.py"
    path.write_text(WRONG, encoding="utf-8")
    return str(path)


def test_mypy_finds_the_mistakes(wrong_file: str) -> None:
    errors, output = mypy([wrong_file])
    assert sorted({line for _, line in errors}) == WRONG_LINES, output
    assert "import-not-found" not in output, output   # the packages were seen, not taken as Any


def test_pyright_finds_the_mistakes(wrong_file: str) -> None:
    report, output = pyright([wrong_file])
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    assert sorted({d["range"]["start"]["line"] + 1 for d in errors}) == WRONG_LINES, shown(report) or output
    assert not any(d.get("rule") == "reportMissingImports" for d in errors), shown(report)

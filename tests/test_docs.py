"""Every ```python block in docs/ runs as written (each page in one namespace)."""

import contextlib
import io
import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = BLOCK.findall(page.read_text())
    assert blocks
    namespace = {"__name__": "docs_example"}
    for n, code in enumerate(blocks):
        if "# not run" in code.splitlines()[0]:
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, f"{page.name}[{n}]", "exec"), namespace)

"""Imports flow one way (issue 14), read from the source with ast.

- mimecompose's modules import only modules below them in LAYERS, and only
  at module level: a function-level import of a sibling would hide a cycle.
- smtpsend uses mimecompose only through its public names: no private
  module, no private attribute of a Part.
"""

import ast
import pathlib

import pytest

import mimecompose

ROOT = pathlib.Path(__file__).resolve().parent.parent
MIMECOMPOSE = ROOT / "mimecompose"
SMTPSEND = ROOT / "smtpsend"

# Lowest first. A module may import the modules of the layers before its own.
LAYERS = [
    {"_errors", "args"},      # errors; the shapes of header= and of list arguments (public)
    {"_codecs"},              # charsets, RFC 2047/2231, streaming encoders
    {"_address", "_date"},    # RFC 5322 addresses and dates
    {"_headers"},             # fields: checks, folding, the header block reader
    {"_part"},                # the data model: PartData, Source, ParsedBuffer
    {"_serialize"},           # PartData -> bytes, and Part (the data model plus writing)
    {"_parse"},               # bytes -> Part
    {"_initialize"},          # initialize: build or parse
    {"_compose", "_dkim"},    # built on initialize / on a serialised Part
    {"smime"},                # S/MIME on a serialised Part (mimecompose.smime)
    {"__init__"},             # the public names
    {"__main__", "strategies"},   # not imported by the package
]
RANK = {name: n for n, layer in enumerate(LAYERS) for name in layer}

# Private mimecompose names smtpsend may import: none. (An entry here would
# be {"mimecompose._module": {"name", ...}}.)
ALLOWED_PRIVATE: dict[str, set[str]] = {}


def _module_imports(path: pathlib.Path, package: str, top_level: bool = False):
    """Yield (node, module, names) for every import in the file (with
    ``top_level``, only those of the module body itself, outside any
    function, class or ``if``): ``module`` absolute (relative ones resolved
    against ``package``), ``names`` the names a ``from`` import takes
    (empty for ``import x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in tree.body if top_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node, module, tuple(alias.name for alias in node.names)


def _sibling(module: str, names: tuple) -> list[str]:
    """The mimecompose modules an import refers to, by short name
    (``__init__`` for the package itself)."""
    if module == "mimecompose":
        # ``from . import x``: x is a submodule, or a name of the package
        found = [n for n in names if (MIMECOMPOSE / f"{n}.py").exists()]
        return found if len(found) == len(names) else [*found, "__init__"]
    if module.startswith("mimecompose."):
        return [module.split(".")[1]]
    return []


def _mimecompose_modules():
    return sorted(p for p in MIMECOMPOSE.glob("*.py"))


def test_every_module_has_a_layer():
    assert sorted(p.stem for p in _mimecompose_modules() if p.stem not in RANK) == []


@pytest.mark.parametrize("path", _mimecompose_modules(), ids=lambda p: p.name)
def test_mimecompose_imports_only_lower_layers(path):
    wrong = []
    for node, module, names in _module_imports(path, "mimecompose"):
        for target in _sibling(module, names):
            if RANK.get(target, len(LAYERS)) >= RANK[path.stem]:
                wrong.append(f"line {node.lineno}: {path.stem} imports {target}")
    assert wrong == []


@pytest.mark.parametrize("path", _mimecompose_modules(), ids=lambda p: p.name)
def test_mimecompose_imports_its_modules_at_module_level(path):
    top = {node.lineno for node, _m, _n in _module_imports(path, "mimecompose", top_level=True)}
    deferred = [f"line {node.lineno}: {module}" for node, module, names in _module_imports(path, "mimecompose")
                if _sibling(module, names) and node.lineno not in top]
    assert deferred == []


def test_the_layer_checks_see_a_violation(tmp_path):
    """The checks above read what they are meant to read: a model importing
    the serialiser, inside a function, is seen by both."""
    bad = tmp_path / "_part.py"
    bad.write_text("def f():\n    from ._serialize import iter_part\n    from . import _parse\n")
    found = [(module, _sibling(module, names)) for _n, module, names in _module_imports(bad, "mimecompose")]
    assert found == [("mimecompose._serialize", ["_serialize"]), ("mimecompose", ["_parse"])]
    assert list(_module_imports(bad, "mimecompose", top_level=True)) == []


# ---------------------------------------------------------------- smtpsend's use of mimecompose

def _private_part_attributes() -> set[str]:
    """The private attributes and methods of a Part (its data model)."""
    names = set(vars(mimecompose.initialize("text/plain", string="x")))
    for cls in mimecompose.Part.__mro__:
        names.update(vars(cls))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _smtpsend_modules():
    return sorted(SMTPSEND.glob("*.py"))


def _private_uses(path: pathlib.Path, private_attributes: set[str]) -> list[str]:
    found = []
    for node, module, names in _module_imports(path, "smtpsend"):
        if module.split(".")[0] != "mimecompose":
            continue
        private = [part for part in module.split(".")[1:] if part.startswith("_")]
        if private:
            allowed = ALLOWED_PRIVATE.get(module, set())
            if not names or not set(names) <= allowed:
                found.append(f"line {node.lineno}: imports {module} ({', '.join(names)})")
        elif module == "mimecompose":
            for name in names:
                if name != "__version__" and name not in mimecompose.__all__:
                    found.append(f"line {node.lineno}: imports {name}, not a public name of mimecompose")
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "mimecompose" \
                    and node.attr.startswith("_") and node.attr != "__version__":
                found.append(f"line {node.lineno}: mimecompose.{node.attr}")
            elif node.attr in private_attributes and not (isinstance(node.value, ast.Name)
                                                          and node.value.id in ("self", "cls")):
                found.append(f"line {node.lineno}: .{node.attr} of {ast.unparse(node.value)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant) and node.args[1].value in private_attributes:
            found.append(f"line {node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return found


def test_part_private_attributes_are_known():
    names = _private_part_attributes()
    assert {"_headers", "_parsed", "_source", "_parts", "_effective_encoding"} <= names


@pytest.mark.parametrize("path", _smtpsend_modules(), ids=lambda p: p.name)
def test_smtpsend_uses_only_public_mimecompose(path):
    assert _private_uses(path, _private_part_attributes()) == []


def test_the_smtpsend_check_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import mimecompose\nfrom mimecompose._serialize import iter_part\n"
                   "from mimecompose._codecs import word_encode\nfrom mimecompose import PartData\n"
                   "def f(part):\n    return part._headers, mimecompose._part, getattr(part, '_parsed')\n"
                   "class C:\n    def g(self):\n        return self._source\n")
    found = _private_uses(bad, _private_part_attributes())
    assert [line.split(":")[0] for line in found] == ["line 2", "line 3", "line 4", "line 6", "line 6",
                                                       "line 6"]
    assert "self._source" not in " ".join(found)

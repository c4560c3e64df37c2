"""The layout's rules: small modules, and the library never depends on the scripts."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 350


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", ["lit_mrl", "data_prep"])
def test_no_module_is_over_350_lines(package):
    long = {p.relative_to(ROOT).as_posix(): n for p in modules(package)
            if (n := len(p.read_text().splitlines())) > MAX_LINES}  # fmt: skip
    assert not long, long


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_library_never_imports_data_prep():
    offenders = {p.relative_to(ROOT).as_posix() for p in modules("lit_mrl")
                 if any(n.split(".")[0] == "data_prep" for n in imported(p))}  # fmt: skip
    assert not offenders


def test_the_formats_package_needs_neither_torch_nor_the_rest_of_the_library():
    heavy = ("torch", "torchaudio", "lightning", "webdataset")
    offenders = {}
    for path in modules("lit_mrl/formats"):
        bad = {n for n in imported(path) if n.split(".")[0] in heavy
               or (n.startswith("lit_mrl.") and not n.startswith(("lit_mrl.formats", "lit_mrl.errors")))}  # fmt: skip
        if bad:
            offenders[path.relative_to(ROOT).as_posix()] = sorted(bad)
    assert not offenders, offenders

"""Every public class and function of the package, and every public method of a public class, has a docstring
(the house rule; issue #30 counted 127 without one). Private names (leading underscore), Flax `setup` and dunder
methods are exempt."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mmspeech_jax"


def undocumented(source: str, where: str) -> list[str]:
    """`where:name` of each public definition in `source` without a docstring."""
    missing = []
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or node.name.startswith("_"):
            continue
        if ast.get_docstring(node) is None:
            missing.append(f"{where}:{node.name}")
        if isinstance(node, ast.ClassDef):
            for method in node.body:
                if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) and not method.name.startswith("_") \
                        and method.name != "setup" and ast.get_docstring(method) is None:
                    missing.append(f"{where}:{node.name}.{method.name}")
    return missing


def test_the_walker_finds_what_it_should():
    source = ("def f():\n    return 1\n\ndef _g():\n    pass\n\nclass C:\n    '''doc'''\n    def m(self):\n        pass\n"
              "    def setup(self):\n        pass\n    def _p(self):\n        pass\n")
    assert undocumented(source, "x.py") == ["x.py:f", "x.py:C.m"]


def test_every_public_definition_has_a_docstring():
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        missing += undocumented(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert not missing, f"{len(missing)} public definitions without a docstring:\n" + "\n".join(missing)

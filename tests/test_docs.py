"Docs checks: every exported public symbol has a docstring, and the notebooks preprocess for the docs site."
import importlib, inspect
import pytest
from qwen_kd._modidx import d

def public_symbols():
    for mod, syms in d["syms"].items():
        for full in syms:
            name = full[len(mod) + 1:]
            if not any(p.startswith("_") for p in name.split(".")): yield mod, name

@pytest.mark.parametrize("mod,name", list(public_symbols()), ids=lambda x: x)
def test_docstring(mod, name):
    obj = importlib.import_module(mod)
    for part in name.split("."): obj = getattr(obj, part)
    assert inspect.getdoc(obj), f"{mod}.{name} has no docstring: add one in its notebook"

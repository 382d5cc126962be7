"The package's floors: imports between its modules point one way (no cycle) and none hides inside a function."
import ast, subprocess, sys
from pathlib import Path
import pytest

PKG = Path(__file__).parent.parent/"qwen_kd"
MODULES = {p.stem: p for p in PKG.glob("*.py") if p.stem not in ("__init__", "_modidx")}

def package_imports(tree: ast.Module) -> list[tuple[ast.AST, str]]:
    "(node, module) for every import of a module of this package in `tree`."
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            mod = n.module or ""
            if n.level == 1: names = [mod.split(".")[0]] if mod else [a.name for a in n.names]
            elif mod == "qwen_kd": names = [a.name for a in n.names]
            elif mod.startswith("qwen_kd."): names = [mod.split(".")[1]]
            else: names = []
        elif isinstance(n, ast.Import): names = [a.name.split(".")[1] for a in n.names if a.name.startswith("qwen_kd.")]
        else: continue
        out += [(n, m) for m in names if m in MODULES]
    return out

def graph() -> dict[str, set[str]]:
    return {m: {dep for _, dep in package_imports(ast.parse(p.read_text()))} for m, p in MODULES.items()}

def find_cycle(g: dict[str, set[str]]) -> list[str]|None:
    "One import cycle of `g` as a path a → ... → a, or None."
    state, stack = {}, []
    def visit(v):
        state[v] = "open"; stack.append(v)
        for w in sorted(g[v]):
            if state.get(w) == "open": return stack[stack.index(w):] + [w]
            if w not in state and (c := visit(w)): return c
        state[v] = "done"; stack.pop()
    for v in sorted(g):
        if v not in state and (c := visit(v)): return c

def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None

def test_no_import_cycle():
    assert find_cycle(graph()) is None, f"import cycle: {' -> '.join(find_cycle(graph()))}"

def test_layers_point_down():
    g = graph()
    assert g["core"] == set(), g["core"]
    assert g["models"] <= {"core"} and g["loss"] <= {"core"} and g["vram"] <= {"core"}
    assert not any("cli" in deps for deps in g.values()), "nothing imports the CLI"
    assert not any("playground" in deps for deps in g.values())

def test_no_package_import_inside_a_function():
    inner = []
    for m, p in MODULES.items():
        tree = ast.parse(p.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]:
            inner += [f"{m}.{getattr(fn, 'name', 'lambda')} imports {dep}" for _, dep in package_imports(fn)]
    assert not inner, inner

@pytest.mark.parametrize("src", ["def f():\n    from .core import x\n", "def f():\n    import qwen_kd.core\n",
                                 "def f():\n    from qwen_kd import core\n"])
def test_inner_import_is_seen(src):
    fn = ast.parse(src).body[0]
    assert [m for _, m in package_imports(fn)] == ["core"]

def test_vram_estimator_loads_no_trainer():
    code = "import sys, qwen_kd.vram; print('transformers.trainer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"

def test_no_line_over_120_characters():
    "Exported code stays readable at the docs' width; nbdev's own `__all__` line (wrapped before its prefix) is exempt."
    long = [f"{p.name}:{i}" for p in PKG.glob("*.py") if p.name != "_modidx.py"
            for i, l in enumerate(p.read_text().splitlines(), 1) if len(l) > 120 and not l.startswith("__all__ = [")]
    assert not long, long

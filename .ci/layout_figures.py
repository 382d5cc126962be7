"Layout figures of a qwen_kd checkout (default: this one): import cycles, package imports inside functions, code-cell sizes, public functions followed by an example, long prose cells, lines over 120 characters, module sizes. Usage: python .ci/layout_figures.py [CHECKOUT]"
import ast, json, re, statistics, sys
from pathlib import Path
root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
pkg = root/"qwen_kd"; mods = {p.stem: p for p in pkg.glob("*.py") if p.stem not in ("_modidx", "__init__")}
def deps(p):
    top, inner = set(), []
    tree = ast.parse(p.read_text())
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    infunc = {id(x) for f in funcs for x in ast.walk(f)}
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            m = (n.module or "")
            name = m.split(".")[0] if n.level == 1 else (m.split(".")[1] if m.startswith("qwen_kd.") else None)
            if name is None and n.level == 1 and not m: name = None
            if name in mods:
                (inner.append((p.stem, name)) if id(n) in infunc else top.add(name))
    return top, inner
graph, inner = {}, []
for m, p in mods.items():
    t, i = deps(p); graph[m] = t; inner += i
    graph[m] |= {b for a, b in i if a == m}
# cycles: strongly connected components of size > 1
idx, low, st, on, sccs, c = {}, {}, [], set(), [], [0]
def visit(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in graph[v]:
        if w not in idx: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for v in graph:
    if v not in idx: visit(v)
print("import graph:", {k: sorted(v) for k, v in sorted(graph.items())})
print("cyclic components:", sccs)
print("package imports inside functions:", len(inner), inner)
lines, ex_total, ex_with, long_prose = [], 0, 0, []
for nb in sorted((root/"nbs").glob("*.ipynb")):
    cells = json.load(open(nb))["cells"]
    for i, cell in enumerate(cells):
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            w = len(re.sub(r"```.*?```", "", src, flags=re.S).split())
            if w > 150: long_prose.append((nb.stem, i, w))
            continue
        code = [l for l in src.splitlines() if l.strip() and not l.strip().startswith("#|")]
        if not code: continue
        lines.append(len(code))
        if src.lstrip().startswith("#| export"):
            try: tree = ast.parse(src)
            except SyntaxError: continue
            pub = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]
            nxt = next((c for c in cells[i+1:] if c["cell_type"] == "code"), None)
            later = "".join(nxt["source"]) if nxt else ""
            for name in pub:
                ex_total += 1
                if nxt is not None and not later.lstrip().startswith("#| export") and name in later: ex_with += 1
print(f"code cells: {len(lines)}, median {statistics.median(lines)}, max {max(lines)} lines")
print(f"public functions/classes with an example in the next code cell: {ex_with}/{ex_total} = {ex_with/ex_total:.0%}")
print("prose cells > 150 words:", len(long_prose), long_prose)
long = [(p.name, n, l) for p in pkg.glob("*.py") if p.name != "_modidx.py"
        for n, l in enumerate(p.read_text().splitlines(), 1) if len(l) > 120]
print("lines > 120 characters in qwen_kd/*.py (not _modidx.py):", len(long),
      f"({sum(l.startswith('__all__ = [') for *_, l in long)} of them nbdev's __all__ line)")
print("module sizes:", {p.stem: len(p.read_text().splitlines()) for p in sorted(pkg.glob("*.py")) if p.stem != "_modidx"})

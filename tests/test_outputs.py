"Notebooks are read as saved (JupyterLab, the docs site): each holds outputs, a figure wherever a cell draws one, no error."
import ast, json, re
from pathlib import Path
import pytest

NBS = sorted((Path(__file__).parent.parent/"nbs").glob("*.ipynb"))
DRAWS = re.compile(r"\b(plot_\w+|plt\.\w+|\w+_figure)\s*\(")  # the package's plot functions and matplotlib

def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]

def draws(source: str) -> bool:
    "A cell a reader runs (not an export, hide or import-only cell) that calls a plotting function."
    first = source.lstrip().split("\n", 1)[0]
    if first.startswith("#|") and any(d in first for d in ("export", "hide")): return False
    try: tree = ast.parse(source)
    except SyntaxError: return False
    if all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body): return False
    return bool(DRAWS.search(source))

def test_draws():
    assert draws("fig = vram_figure()") and draws("plot_lengths(lens)\nplt.show()")
    assert not draws("from qwen_kd.vram import vram_figure") and not draws("#| export\ndef plot_x(): plt.subplots()")

@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_saved_with_outputs(path):
    nb = json.loads(path.read_text())
    cells = code_cells(nb)
    assert any(c.get("outputs") for c in cells), f"{path.name}: saved without any output (python .ci/execute_nbs.py {path.stem})"
    errors = [i for i, c in enumerate(cells) for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"{path.name}: error outputs in code cells {errors}"
    bare = [i for i, c in enumerate(cells) if draws("".join(c["source"]))
            and not any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert not bare, f"{path.name}: code cells {bare} draw a figure but hold no image (re-execute the notebook)"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", f"{path.name}: no kernelspec"

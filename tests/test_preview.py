"""The docs preview (.ci/preview.py: nbdev's docs preprocess rendered by nbconvert, as Quarto is not installable here):
every page holds its notebook's figures and a section for every name the notebook documents. Expectations come from
the notebooks in nbs/, not from the preview."""
import ast, copy, importlib.util, re
from pathlib import Path
import nbformat, pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("preview", ROOT/".ci"/"preview.py")
preview = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(preview)
NAMES = sorted(p.stem for p in (ROOT/"nbs").glob("*.ipynb") if not p.name.startswith("_"))
DOC_DIRECTIVES = {"export", "exports", "exec_doc"}  # the cells whose public defs nbdev documents by itself

def source_nb(name: str): return nbformat.read(ROOT/"nbs"/f"{name}.ipynb", as_version=4)

def image_outputs(nb) -> int:
    "Image outputs (PNG, JPEG, SVG) saved in a notebook's code cells."
    return sum(any(k.startswith("image/") for k in o.get("data", {}))
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))

def _directives(src: str) -> dict:
    d = {}
    for line in src.splitlines():
        m = re.match(r"\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$", line)
        if not m: break
        d[m.group(1)] = m.group(2)
    return d

def _patched(node) -> str | None:
    "`Class.name` for a `@patch`ed function (the class is its first argument's annotation), else None."
    for dec in node.decorator_list:
        f = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(f, ast.Name) and f.id == "patch" and node.args.args and node.args.args[0].annotation is not None:
            return f"{ast.unparse(node.args.args[0].annotation)}.{node.name}"
    return None

def documented(nb) -> list[str]:
    "Every name the docs page must document: each `show_doc(x)` call, and each public def/class of an exported cell."
    names = []
    for c in nb.cells:
        if c.cell_type != "code": continue
        try: tree = ast.parse("\n".join(l for l in c.source.splitlines() if not l.lstrip().startswith(("%", "!"))))
        except SyntaxError: continue
        d = _directives(c.source)
        for n in tree.body:
            if (isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Name)
                    and n.value.func.id == "show_doc" and n.value.args): names.append(ast.unparse(n.value.args[0]))
        if DOC_DIRECTIVES & d.keys() and "hide" not in d and d.get("include") != "false":
            for n in tree.body:
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and (
                        not n.name.startswith("_") or n.name.startswith("__")):
                    names.append(_patched(n) or n.name)
    return names

def problems(name: str, page: str) -> list[str]:
    "What the rendered page of notebook `name` lacks: figures, or sections for names the notebook documents."
    nb, res = source_nb(name), []
    want, got = image_outputs(nb), preview.count_images(page)
    if got < want: res.append(f"{name}: {got} <img> on the page, {want} image outputs in the notebook")
    secs = set(preview.sections(page))
    # a method may be headed by its bare name (show_doc unwraps a `@patch`ed context manager to the plain function)
    missing = sorted(n for n in set(documented(nb)) if n not in secs and n.rsplit(".", 1)[-1] not in secs)
    if missing: res.append(f"{name}: no show_doc section for {missing}")
    return res

@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict:
    "Build the preview once (nbdev's preprocess re-runs only on notebooks changed since `_proc/` was written)."
    out = tmp_path_factory.mktemp("preview")
    return {r["name"]: (out/r["file"]).read_text(encoding="utf-8") for r in preview.build(out)}

def test_every_notebook_has_a_page(pages):
    assert sorted(pages) == NAMES
    links = re.findall(r'href="([^"]+)"', pages["index"].split("<nav", 1)[1].split("</nav>", 1)[0])
    assert sorted(links) == sorted(f"{n}.html" for n in NAMES if n != "index"), links  # the home page links them all

@pytest.mark.parametrize("name", NAMES)
def test_page_has_figures_and_sections(pages, name):
    assert not problems(name, pages[name]), problems(name, pages[name])

@pytest.mark.parametrize("name", NAMES)
def test_no_section_twice(pages, name):
    "nbdev documents a `@patch`ed method by itself: an explicit `show_doc` of it shows the same section twice."
    secs = preview.sections(pages[name])
    twice = sorted({s for s in secs if secs.count(s) > 1})
    assert not twice, f"{name}: documented twice {twice} (drop the notebook's own show_doc cell of each)"

def _render(nb) -> str:
    return preview.exporter().from_notebook_node(preview.prepare(nb))[0]

def test_checks_can_fail(pages):
    "The same page rendered without its images, or without its show_doc cells, is caught."
    withimg = [n for n in NAMES if image_outputs(source_nb(n))]
    if not withimg: pytest.skip("no notebook holds a figure")
    name = min(withimg, key=lambda n: (ROOT/"_proc"/f"{n}.ipynb").stat().st_size)  # the smallest: fastest to render
    nb = nbformat.read(ROOT/"_proc"/f"{name}.ipynb", as_version=4)
    noimg = copy.deepcopy(nb)
    for c in noimg.cells:
        if c.cell_type == "code":
            c.outputs = [o for o in c.get("outputs", []) if not any(k.startswith("image/") for k in o.get("data", {}))]
    assert any("<img>" in p for p in problems(name, _render(noimg)))
    nodoc = copy.deepcopy(nb)
    nodoc.cells = [c for c in nodoc.cells if "show_doc(" not in c.source]
    assert any("no show_doc section" in p for p in problems(name, _render(nodoc)))
    assert not problems(name, pages[name])  # and the page as built passes

def test_documented():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (
        "#| export\ndef f(): pass\ndef _g(): pass\nclass C: pass",
        "#| export\n@patch\ndef m(self: C): pass",
        "#| hide\ndef h(): pass",
        "show_doc(C.m)\nshow_doc(f)")])
    assert documented(nb) == ["f", "C", "C.m", "C.m", "f"]

"""Docs preview without Quarto: run nbdev's docs preprocess (what `nbdev_proc_nbs` does: it writes `_proc/`) and
render each processed notebook to `_preview/NAME.html` with nbconvert, `index.html` being the home page; every page
links to every other. Prints, per page, the images and the `show_doc` sections it holds. Quarto still builds the real
site (the deploy workflow); this preview shows what it is fed.
Usage: `python .ci/preview.py [NAME ...]`, then open `_preview/index.html`."""
import argparse, configparser, html, re, subprocess, sys, time
from pathlib import Path
import nbformat, yaml
from nbconvert import HTMLExporter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
_re_directive = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
_re_attrs = re.compile(r"(\]\([^)\s]*\))\{[^}]*\}")  # Quarto's `[text](url){target=...}`: Markdown shows the braces
_re_fence = re.compile(r"^:::.*$", re.MULTILINE)  # Quarto's fenced divs
_re_cell = re.compile(r'<div (?:id="[^"]*" )?class="jp-Cell ')
_re_heading = re.compile(r"<h[1-6][^>]*>(.*?)</h[1-6]>", re.DOTALL)
_re_upper_id = re.compile(r'(<h[1-6] id="([^"]*[A-Z][^"]*)")')  # Quarto's anchors are lower case: `core.html#dataerror`

def proc_nbs(root: Path = ROOT) -> Path:
    """nbdev's docs preprocess into `root/_proc/` (it re-processes only notebooks changed since its last run); returns
    `_proc/`. This is what `nbdev_proc_nbs` does after its set-up steps, which are skipped: without Quarto that command
    tries to download and `sudo dpkg -i` Quarto, then runs `pip install -e ".[dev]"`, on every call."""
    subprocess.run([sys.executable, "-c", "from nbdev.serve import proc_nbs; proc_nbs()"], cwd=root, check=True,
                   stdout=subprocess.DEVNULL)
    return root/"_proc"

def directives(src: str) -> dict:
    "The `#| key: value` lines at the top of a cell's source."
    d = {}
    for line in src.splitlines():
        m = _re_directive.match(line)
        if not m: break
        d[m.group(1)] = m.group(2)
    return d

def front_matter(nb) -> dict:
    "The YAML front matter nbdev writes into the first (raw) cell: title, description, output-file."
    c = nb.cells[0] if nb.cells else None
    if c is None or c.cell_type != "raw" or not c.source.lstrip().startswith("---"): return {}
    return yaml.safe_load(c.source.strip().strip("-")) or {}

def prepare(nb, links: dict | None = None):
    """Do what Quarto does with nbdev's directives, in place: the front matter becomes the title, `echo: false` hides
    the input, `output: false` the outputs, `include: false` the cell; directive lines are not shown; Quarto-only syntax
    is dropped; links to the site (`links`: url → local page) point to the preview's pages. `show_doc` cells get the
    tag `show_doc` (nbconvert writes it as the class `celltag_show_doc`)."""
    fm = front_matter(nb)
    if fm:
        head = f"# {fm.get('title', '')}" + (f"\n\n> {fm['description']}" if fm.get("description") else "")
        nb.cells[0] = nbformat.v4.new_markdown_cell(head, id=nb.cells[0].get("id"))
    def fix(text: str) -> str:
        text = _re_fence.sub("", _re_attrs.sub(r"\1", text))
        for url, page in (links or {}).items(): text = text.replace(url, page)
        return text
    cells = []
    for c in nb.cells:
        d = directives(c.source) if c.cell_type == "code" else {}
        if d.get("include") == "false": continue
        tags = set(c.metadata.get("tags", []))
        if d.get("echo") == "false": tags.add("remove_input")
        if d.get("output") == "false": tags.add("remove_output")
        if c.cell_type == "code":
            c.source = "\n".join(l for l in c.source.splitlines() if not _re_directive.match(l)).strip("\n")
            if c.source.startswith("show_doc("): tags.add("show_doc")
            for o in c.get("outputs", []):
                if "text/markdown" in o.get("data", {}): o.data["text/markdown"] = fix(o.data["text/markdown"])
        elif c.cell_type == "markdown": c.source = fix(c.source)
        if tags: c.metadata["tags"] = sorted(tags)
        cells.append(c)
    nb.cells = cells
    return nb

def exporter() -> HTMLExporter:
    "nbconvert's JupyterLab-style HTML without prompts, removing the inputs and outputs `prepare` tagged."
    c = Config()
    c.TagRemovePreprocessor.update(enabled=True, remove_input_tags={"remove_input"},
                                   remove_all_outputs_tags={"remove_output"})
    c.HTMLExporter.update(exclude_input_prompt=True, exclude_output_prompt=True)  # Quarto shows no In/Out prompts
    return HTMLExporter(config=c, template_name="lab")

def strip_tags(s: str) -> str: return html.unescape(re.sub(r"<[^>]+>", "", s)).replace("¶", "").strip()

def count_images(page: str) -> int:
    "How many `<img>` tags a page holds."
    return len(re.findall(r"<img\b", page, re.IGNORECASE))

def sections(page: str) -> list[str]:
    "The names `show_doc` sections document, in page order: the first heading of each cell tagged `show_doc`."
    res = []
    for chunk in _re_cell.split(page)[1:]:
        if "celltag_show_doc" not in chunk.split(">", 1)[0]: continue
        m = _re_heading.search(chunk)
        if m: res.append(strip_tags(m.group(1)))
    return res

def nav(pages: list[tuple[str, str]], current: str) -> str:
    "A bar of links to every page: (file, title) pairs."
    items = " · ".join(f"<b>{html.escape(t)}</b>" if f == current else f'<a href="{f}">{html.escape(t)}</a>'
                       for f, t in pages)
    return (f'<nav style="padding:.5em 1em;border-bottom:1px solid #ccc;font:14px sans-serif">'
            f'docs preview (nbconvert, not Quarto): {items}</nav>')

def page_order(proc: Path, names: list[str]) -> list[str]:
    "Names in the sidebar's order (`sidebar.yml`), the rest after them, sorted."
    sb = proc/"sidebar.yml"
    order = []
    if sb.exists():
        def walk(o):
            if isinstance(o, str) and o.endswith(".ipynb"): order.append(Path(o).stem)
            elif isinstance(o, dict): [walk(v) for v in o.values()]
            elif isinstance(o, list): [walk(v) for v in o]
        walk(yaml.safe_load(sb.read_text()))
    return [n for n in order if n in names] + sorted(n for n in names if n not in order)

def site_url(root: Path = ROOT) -> str:
    "The deployed site's address, from settings.ini (`doc_host` + `doc_baseurl`)."
    cfg = configparser.ConfigParser(); cfg.read(root/"settings.ini")
    d = cfg["DEFAULT"]
    return d.get("doc_host", "").rstrip("/") + "/" + d.get("doc_baseurl", "").strip("/")

def build(out: Path = ROOT/"_preview", names: list[str] | None = None, root: Path = ROOT,
          proc: bool = True) -> list[dict]:
    """Render the processed notebooks (all whose source is still in `nbs/`, or `names`) to `out/NAME.html` (index →
    index.html); returns per page: name, file, title, images, sections (the names `show_doc` documents)."""
    proc_dir = proc_nbs(root) if proc else root/"_proc"
    all_names = page_order(proc_dir, [p.stem for p in proc_dir.glob("*.ipynb") if (root/"nbs"/p.name).exists()])
    names = [n for n in all_names if n in names] if names else all_names
    nbs = {n: nbformat.read(proc_dir/f"{n}.ipynb", as_version=4) for n in all_names}
    fms = {n: front_matter(nb) for n, nb in nbs.items()}
    pages = [(f"{n}.html", fms[n].get("title", n)) for n in all_names]
    base = site_url(root)
    links = {f"{base}/{fm['output-file']}": f"{n}.html" for n, fm in fms.items() if fm.get("output-file")}
    out.mkdir(parents=True, exist_ok=True)
    ex, res = exporter(), []
    for n in names:
        body, _ = ex.from_notebook_node(prepare(nbs[n], links))
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav(pages, f"{n}.html"), body, count=1)
        body = _re_upper_id.sub(lambda m: f'<span id="{m.group(2).lower()}"></span>{m.group(1)}', body)
        (out/f"{n}.html").write_text(body, encoding="utf-8")
        res.append(dict(name=n, file=f"{n}.html", title=fms[n].get("title", n), images=count_images(body),
                        sections=sections(body)))
    return res

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="notebook names without .ipynb (default: all)")
    ap.add_argument("--out", default=str(ROOT/"_preview"), help="output folder (default: _preview/)")
    a = ap.parse_args()
    t0 = time.time()
    res = build(Path(a.out), a.names or None)
    print(f"{'page':<22} {'images':>6} {'show_doc sections':>17}")
    for r in res: print(f"{r['file']:<22} {r['images']:>6} {len(r['sections']):>17}")
    print(f"{'total':<22} {sum(r['images'] for r in res):>6} {sum(len(r['sections']) for r in res):>17}"
          f"   ({time.time() - t0:.1f} s; open {Path(a.out)/'index.html'})")
    sys.exit(0 if res else 1)

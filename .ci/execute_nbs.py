"""Re-execute notebooks in place, top to bottom, in a real Jupyter kernel (slow cells included), so that readers and the
docs site see their outputs; then `nbdev_clean` strips the noise and keeps the outputs. Prints each notebook's wall time
and the cells that took more than 60 s. Usage: `python .ci/execute_nbs.py [NAME ...]` (default: every notebook)."""
import argparse, os, subprocess, time
from datetime import datetime
from pathlib import Path
import nbformat
from nbclient import NotebookClient

NBS = Path(__file__).resolve().parent.parent/"nbs"

def cell_seconds(cell) -> float:
    "Wall time of one executed cell, from the timestamps nbclient records."
    t = cell.get("metadata", {}).get("execution", {})
    start, end = t.get("iopub.execute_input"), t.get("shell.execute_reply")
    if not (start and end): return 0.0
    return (datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()

# Run first in the kernel and not saved: what a reader of the saved outputs does not want to see (library deprecation
# warnings, weight-loading bars, the Trainer's per-step dict logs); the notebooks themselves stay as the tests run them.
QUIET = """import warnings; warnings.filterwarnings("ignore", category=FutureWarning)
import logging; logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # "inputs will be cast": once per 8-bit call
from transformers.utils import logging as hf_logging; hf_logging.set_verbosity_error(); hf_logging.disable_progress_bar()
from transformers.trainer_callback import PrinterCallback; PrinterCallback.on_log = lambda *a, **k: None"""

def execute(path: Path, timeout: int = 900) -> tuple[float, list[tuple[int, float]]]:
    "Run `path` in place (a cell may take `timeout` s); returns (seconds, [(cell index, seconds) of cells over 60 s])."
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(QUIET))
    t0 = time.time()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nb.cells.pop(0)
    slow = [(i, round(cell_seconds(c), 1)) for i, c in enumerate(nb.cells) if c.cell_type == "code" and cell_seconds(c) > 60]
    nbformat.write(nb, path)
    return time.time() - t0, slow

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="notebook names without .ipynb (default: all)")
    a = ap.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures into the notebook
    paths = [NBS/f"{n}.ipynb" for n in a.names] or sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))
    total = time.time()
    for p in paths:
        secs, slow = execute(p)
        print(f"{p.name:<24} {secs:7.1f} s" + (f"   cells over 60 s: {slow}" if slow else ""), flush=True)
    subprocess.run(["nbdev_clean"], cwd=NBS.parent, check=True)
    print(f"{'total':<24} {time.time() - total:7.1f} s")

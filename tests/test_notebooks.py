"Run every notebook in nbs/ as a test, the way `nbdev_test` does (cells flagged in `tst_flags` are skipped)."
from pathlib import Path
import pytest
from nbdev.test import test_nb as run_nb  # renamed so pytest does not collect it

NBS = sorted(p for p in (Path(__file__).parent.parent/"nbs").glob("*.ipynb") if not p.name.startswith("_"))

@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(nb.parent)
    ok, secs = run_nb(nb, skip_flags=["slow"], do_print=False)
    assert ok, f"{nb.name} failed (run `nbdev_test --path {nb}` to see the cell)"

"""Wall time of the README's first command, `qwen-kd demo --out DIR`, from a cold output folder.

Runs the installed console script in a child process (as a user would), twice by default, each into a fresh temporary
folder: the demo builds its tiny teacher and student, mixes the data, pseudo-labels, trains and evaluates. The
tokenizers it rebuilds offline are cached after the first run on a machine, so the first run may be slower.

    PYTHONPATH=. python benchmarks/demo_wall.py | tee benchmarks/demo_wall.out.txt    # ~5-8 minutes on 2 cores
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path
from provenance import header, footer

def run_demo(out: Path) -> float:
    "Seconds for one `qwen-kd demo --out out`; raises with its stderr if the demo fails."
    exe = shutil.which("qwen-kd") or sys.exit("qwen-kd is not installed: pip install -e . first")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    t0 = time.perf_counter()
    r = subprocess.run([exe, "demo", "--out", str(out)], capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    if r.returncode: sys.exit(f"qwen-kd demo failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    assert (out/"eval"/"report.json").exists(), "the demo finished without its report"
    return secs

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    print(header())
    t0, secs = time.perf_counter(), []
    for i in range(a.repeats):
        with tempfile.TemporaryDirectory() as d:
            secs.append(run_demo(Path(d)/"demo_out"))
        print(f"run {i + 1}: qwen-kd demo --out DIR  {secs[-1]:.0f} s  (load now {os.getloadavg()[0]:.2f})", flush=True)
    print(f"median wall time of qwen-kd demo: {statistics.median(secs):.0f} s = {statistics.median(secs) / 60:.1f} min")
    print(footer(t0))

if __name__ == "__main__":
    main()

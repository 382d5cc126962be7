"""Provenance lines for a benchmark's output: what ran, on which code, when, where, and how busy the machine was.

Every script in `benchmarks/` prints `header()` first and `footer(t0)` last, so its `.out.txt` (made by
`python benchmarks/X.py ... | tee benchmarks/X.out.txt`, never edited by hand) says where its numbers come from:

    # command: PYTHONPATH=. python benchmarks/kd_step.py
    # commit: 8acfaaa…+dirty (2 tracked files differ from it: nbs/03a_vram.ipynb, qwen_kd/vram.py)
    # date: 2026-11-30 18:02:11 UTC
    # machine: AMD EPYC …, 2 cores, 23.4 GiB RAM, no GPU; torch 2.13.0+cpu (2 threads), Python 3.12.3, qwen_kd from ./qwen_kd
    # load average at start (1, 5, 15 min): 1.68 1.13 1.10 on 2 cores

A plain module, not part of the package: the scripts run as `python benchmarks/X.py`, so it imports as `provenance`.
"""
import os, platform, shlex, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.rstrip("\n")

def commit() -> str:
    "HEAD's hash, '+dirty' and the tracked files that differ from it when the tree has uncommitted changes."
    try: head = _git("rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):  # a copy of the tree without .git (a rented GPU machine)
        given = os.environ.get("QWEN_KD_COMMIT")
        return f"{given} (from QWEN_KD_COMMIT: a copy of the tree without .git)" if given else "unknown (not a git checkout)"
    changed = _git("status", "--porcelain", "--untracked-files=no").splitlines()
    if not changed: return head
    code = lambda n: not n.startswith(("qwen_kd/", "benchmarks/"))  # the files that change the numbers first
    names = sorted((l[3:] for l in changed), key=lambda n: (code(n), n))
    more = f", … {len(names) - 8} more" if len(names) > 8 else ""
    return f"{head}+dirty ({len(names)} tracked file{'s' * (len(names) > 1)} differ from it: {', '.join(names[:8])}{more})"

def command() -> str:
    "The command line as run from the repository root (with PYTHONPATH when it is set)."
    script = Path(sys.argv[0]).resolve()
    try: script = script.relative_to(ROOT)
    except ValueError: pass
    env = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    return env + shlex.join(["python", str(script), *sys.argv[1:]])

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration): return platform.processor() or platform.machine()

def _ram_gib() -> float:
    try:
        with open("/proc/meminfo") as f: return next(int(l.split()[1]) for l in f if l.startswith("MemTotal")) / 2**20
    except (OSError, StopIteration): return float("nan")

def machine() -> str:
    "CPU model, cores, RAM, GPU (if any), torch and Python versions, and where qwen_kd is imported from."
    parts = [_cpu_model(), f"{os.cpu_count()} cores", f"{_ram_gib():.1f} GiB RAM"]
    try:
        import torch
        gpu = (", ".join(sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}))
               if torch.cuda.is_available() else "no GPU")
        tv = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError: gpu, tv = "GPU unknown", "no torch"
    try:
        import qwen_kd
        src = Path(qwen_kd.__file__).resolve().parent
        where = f"./{src.relative_to(ROOT)}" if src.is_relative_to(ROOT) else str(src)
    except ImportError: where = "not importable"
    return ", ".join(parts + [gpu]) + f"; {tv}, Python {platform.python_version()}, qwen_kd from {where}"

def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"

def header() -> str:
    "The provenance lines, each starting with '# '."
    return "\n".join([f"# command: {command()}", f"# commit: {commit()}",
                      f"# date: {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC", f"# machine: {machine()}",
                      f"# load average at start (1, 5, 15 min): {load()}"])

def footer(t0: float) -> str:
    "The closing line: load average at the end and wall time since `t0` (a `time.perf_counter()` value)."
    return f"# load average at end (1, 5, 15 min): {load()}; wall {time.perf_counter() - t0:.0f} s"

if __name__ == "__main__":
    print(header())

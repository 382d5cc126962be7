"""Peak RSS growth of `prepare_data` on a large JSONL: the data stage streams its files instead of loading them.

Writes a GRPO JSONL of `--grpo` lines and an SFT JSONL of `--sft` lines (short synthetic records, as in
tests/test_data.py::test_200k_lines_peak_rss), then runs `prepare_data` (validate, dedup, 70/30 mix, split, write)
in a fresh child process and reports the growth of its resident-set high-water mark (`VmHWM`, which exec resets)
over the baseline after its imports; `ru_maxrss` is printed next to it. Three repeats, each in its own process.

    PYTHONPATH=. python benchmarks/data_memory.py | tee benchmarks/data_memory.out.txt    # ~2-4 minutes on 2 cores
"""
import argparse, json, statistics, subprocess, sys, tempfile, textwrap, time
from pathlib import Path
from provenance import header, footer

CHILD = textwrap.dedent("""
    import gc, json, resource, sys, time
    from qwen_kd.data import DataConfig, prepare_data
    hwm = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
    gc.collect()
    base, base_ru, t0 = hwm(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    st = prepare_data(DataConfig(grpo=sys.argv[1], sft=sys.argv[2], out=sys.argv[3]))
    peak, peak_ru = hwm(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (peak - base) / 1024, "ru_maxrss_growth_mb": (peak_ru - base_ru) / 1024,
                      "base_mb": base / 1024, "secs": time.perf_counter() - t0, "counts": st["counts"]}))
""")

def write_files(d: Path, n_grpo: int, n_sft: int) -> tuple[Path, Path]:
    g, s = d/"grpo.jsonl", d/"sft.jsonl"
    with open(g, "w") as f:
        for i in range(n_grpo):
            f.write(json.dumps({"prompt": f"Problem {i}: what is {i} times 7? Explain each step.",
                                "solution": f"{i} * 7 = {i * 7}", "answer": str(i * 7)}) + "\n")
    with open(s, "w") as f:
        for i in range(n_sft): f.write(json.dumps({"instruction": f"Reverse word {i}.", "input": f"w{i}", "output": f"{i}w"}) + "\n")
    return g, s

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grpo", type=int, default=200_000); p.add_argument("--sft", type=int, default=60_000)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    T0 = time.perf_counter()
    print(header(), flush=True)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        g, s = write_files(d, a.grpo, a.sft)
        print(f"input: {a.grpo:,} GRPO lines ({g.stat().st_size / 2**20:.1f} MiB), {a.sft:,} SFT lines "
              f"({s.stat().st_size / 2**20:.1f} MiB)", flush=True)
        runs = []
        for i in range(a.repeats):
            r = subprocess.run([sys.executable, "-c", CHILD, str(g), str(s), str(d/f"out{i}")], capture_output=True,
                               text=True)
            if r.returncode: sys.exit(f"prepare_data failed:\n{r.stderr[-2000:]}")
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
            x = runs[-1]
            print(f"  run {i + 1}: peak RSS growth {x['growth_mb']:.1f} MiB over a {x['base_mb']:.1f} MiB post-import "
                  f"baseline (ru_maxrss growth {x['ru_maxrss_growth_mb']:.1f} MiB), {x['secs']:.1f} s, counts {x['counts']}",
                  flush=True)
    grow = [x["growth_mb"] for x in runs]
    print(f"peak RSS growth of prepare_data: median {statistics.median(grow):.1f} MiB [min {min(grow):.1f}, "
          f"max {max(grow):.1f}] over {len(runs)} runs (1 MiB = 2**20 bytes)")
    print(footer(T0))

if __name__ == "__main__":
    main()

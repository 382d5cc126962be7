"""Where the KD loss's time goes: `torch.profiler` tables of one forward + backward, naive vs fused (vs compiled).

Same inputs as `loss_memory.py` (student and teacher lm_heads of V = 151,936 rows, H = 1,536, fp32 on CPU, FKL, T = 2,
alpha = 0.5), one process, freed buffers kept (as `train_student` does). Each implementation runs once untimed (the
compiled one compiles then), then once under the profiler; the table lists the ops by self CPU time, and a summary
line splits each total into matmuls (`mm`, `addmm`) and the rest (softmaxes, element-wise passes, fills, copies).

    PYTHONPATH=. python benchmarks/loss_profile.py | tee benchmarks/loss_profile.out.txt
    PYTHONPATH=. python benchmarks/loss_profile.py --n 1024 --chunk 1024 --impls naive fused
"""
import argparse, time, warnings
import torch
from torch.profiler import profile, ProfilerActivity
from provenance import header, footer
from loss_memory import inputs, fwd_bwd
from qwen_kd.train import keep_freed_memory

MATMULS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm")

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1024, help="target tokens")
    p.add_argument("--V", type=int, default=151_936); p.add_argument("--H", type=int, default=1_536)
    p.add_argument("--chunk", type=int, default=256, help="fused: rows per (chunk, V) block")
    p.add_argument("--impls", nargs="+", default=["naive", "fused", "compiled"], choices=["naive", "fused", "compiled"])
    p.add_argument("--rows", type=int, default=12, help="ops listed per table")
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    keep_freed_memory()
    T0 = time.perf_counter()
    print(header(), flush=True)
    print(f"N={a.n:,} V={a.V:,} H={a.H:,} fp32 CPU ({torch.get_num_threads()} threads), forward+backward, FKL T=2 "
          f"alpha=0.5, fused chunk={a.chunk}")
    x, summary = inputs(a.n, a.V, a.H), []
    for impl in a.impls:
        fwd_bwd(impl, x, a.chunk)  # warm-up (and compile)
        with profile(activities=[ProfilerActivity.CPU]) as prof: fwd_bwd(impl, x, a.chunk)
        ev = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in ev) / 1e6
        mm = sum(e.self_cpu_time_total for e in ev if e.key in MATMULS) / 1e6
        print(f"\n## {impl}: {total:.2f} s self CPU, matmuls {mm:.2f} s ({mm / total:.0%}), the rest {total - mm:.2f} s")
        print(ev.table(sort_by="self_cpu_time_total", row_limit=a.rows, max_name_column_width=40), flush=True)
        summary.append((impl, total, mm))
    print("\nsummary (s self CPU): " + "; ".join(f"{i} {t:.2f} = matmuls {m:.2f} + rest {t - m:.2f}" for i, t, m in summary))
    print(footer(T0))

if __name__ == "__main__":
    main()

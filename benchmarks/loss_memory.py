"""Peak memory and wall time of the KD loss, naive (`kd_loss` on materialised logits) vs fused (`fused_kd_loss`).

V = 151,936, H = 1,536 (a Qwen2.5-1.5B-sized lm_head for student and teacher), N = 1,024 and 4,096 target tokens,
fp32 on CPU, forward + backward (gradients w.r.t. the student hidden states and lm_head weight), FKL, T = 2, alpha = 0.5.
Each (implementation, N) runs in its own subprocess; memory is `ru_maxrss` growth above the RSS after setup (inputs
and weights allocated), so it counts the loss's own activations, logits and gradients.

On a machine shared with other jobs, a naive run that would not fit in `MemAvailable` (with margin) is not started:
its peak is extrapolated linearly from the largest N measured (the naive loss is a handful of (N, V) tensors), and
the line says so. The memory runs' single wall times are noisy on a shared 2-core machine; the time ratios come from
a second phase: every impl that fits, in one process, `--rounds` interleaved rounds per N (the order alternating, a
load spike hits all alike), medians of the per-round ratios; `compiled` is ours with `compile=True` (its first call,
which compiles, is timed apart).

Liger-Kernel's chunked distillation loss (`LigerFusedLinearJSDLoss`, β = 0: the forward KL, `compiled=False` on
CPU; install with `pip install -e ".[bench]"`) is the third column, on the same inputs and chunk. Its soft loss is
not scaled by T², so it gets `weight_soft_loss = alpha·T²` to compute the same loss as ours; before the runs a small
in-process check prints both losses and gradients side by side.

    PYTHONPATH=. python benchmarks/loss_memory.py | tee benchmarks/loss_memory.out.txt   # the lines and ratios
    python benchmarks/loss_memory.py --one fused 1024 --V 32000 --H 512   # one JSON line, used by nbs/02_loss
"""
import argparse, json, os, resource, statistics, subprocess, sys, time

def rss_mb() -> float:
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def avail_mb() -> float:
    with open("/proc/meminfo") as f: return next(int(l.split()[1]) for l in f if l.startswith("MemAvailable")) / 1024

IMPLS = ("fused", "liger", "naive")
T, ALPHA = 2.0, 0.5

def liger_loss(chunk: int):
    "Liger's fused-linear JSD at β = 0 (FKL), weighted to equal `fused_kd_loss`'s alpha·T²·KL + (1 − alpha)·CE."
    from liger_kernel.chunked_loss import LigerFusedLinearJSDLoss
    return LigerFusedLinearJSDLoss(weight_hard_loss=1 - ALPHA, weight_soft_loss=ALPHA * T**2, beta=0.0, temperature=T,
                                   compiled=False, chunk_size=chunk)

def check(n=300, V=4096, H=256, chunk=128) -> str:
    "Liger vs ours on one small fp32 batch: loss and both gradients, relative differences."
    import torch
    from qwen_kd.loss import fused_kd_loss
    torch.manual_seed(1)
    hs, ws = torch.randn(1, n + 1, H) * 0.5, torch.randn(V, H) * 0.02
    ht, wt = torch.randn(1, n + 1, H) * 0.5, torch.randn(V, H) * 0.02
    y = torch.randint(0, V, (1, n + 1)); y[0, 0] = -100
    out = {}
    for impl in ("fused", "liger"):
        h, w = hs.clone().requires_grad_(), ws.clone().requires_grad_()
        if impl == "fused": loss = fused_kd_loss(h, w, ht, wt, y, "fkl", T, ALPHA, chunk_size=chunk)[0]
        else: loss = liger_loss(chunk)(h[0, :-1], w, ht[0, :-1], wt, y[0, 1:])
        loss.backward()
        out[impl] = loss.detach(), h.grad[0, :-1], w.grad
    rel = [((a - b).norm() / b.norm()).item() for a, b in zip(out["fused"], out["liger"])]
    ok = all(r < 1e-4 for r in rel)
    return (f"check (N={n}, V={V:,}, H={H}, fp32): loss ours {out['fused'][0]:.6f}, Liger {out['liger'][0]:.6f}; "
            f"relative difference loss {rel[0]:.1e}, grad h {rel[1]:.1e}, grad W {rel[2]:.1e}: "
            + ("equal within 1e-4" if ok else "NOT equal (tolerance 1e-4)"))

def inputs(n: int, V: int, H: int) -> tuple:
    "Student hidden and lm_head (trained), teacher hidden and lm_head, targets: n + 1 positions, n shifted targets."
    import torch
    torch.manual_seed(0); torch.set_grad_enabled(True)
    hs = (torch.randn(1, n + 1, H) * 0.5).requires_grad_()
    ws = (torch.randn(V, H) * 0.02).requires_grad_()
    ht, wt = torch.randn(1, n + 1, H) * 0.5, torch.randn(V, H) * 0.02
    y = torch.randint(0, V, (1, n + 1)); y[0, 0] = -100
    return hs, ws, ht, wt, y

def fwd_bwd(impl: str, x: tuple, chunk: int) -> float:
    "One forward + backward of `impl` on the inputs `x`; the loss."
    import torch
    from qwen_kd.loss import kd_loss, fused_kd_loss
    hs, ws, ht, wt, y = x
    hs.grad = ws.grad = None
    if impl == "naive":
        with torch.no_grad(): t_logits = ht @ wt.T  # (1, n+1, V) the teacher never needs gradients
        loss = kd_loss(hs @ ws.T, t_logits, y, ALPHA, T)[0]
    elif impl == "liger":
        loss = liger_loss(chunk)(hs[0, :-1], ws, ht[0, :-1], wt, y[0, 1:])  # (n, H) rows, shifted targets
    else:  # fused; compiled: the same with its chunks' element-wise work through torch.compile
        loss = fused_kd_loss(hs, ws, ht, wt, y, "fkl", T, ALPHA, chunk_size=chunk, compile=impl == "compiled")[0]
    loss.backward()
    return loss.item()

def one(impl: str, n: int, V: int, H: int, chunk: int) -> dict:
    "Run one forward + backward in this process and measure it."
    x = inputs(n, V, H)
    base = rss_mb()
    t0 = time.perf_counter()
    loss = fwd_bwd(impl, x, chunk)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"impl": impl, "n": n, "peak_mb": round(peak - base, 1), "secs": round(secs, 2), "loss": loss}

def timed(n: int, impls: list[str], V: int, H: int, chunk: int, rounds: int) -> dict:
    "Seconds per forward + backward, interleaved in this process: one of each impl per round, the order alternating."
    x, secs = inputs(n, V, H), {i: [] for i in impls}
    if "compiled" in impls:  # compile outside the timed rounds (once per chunk shape)
        t0 = time.perf_counter(); fwd_bwd("compiled", x, chunk)
        print(f"  compiled N={n:>5}: first call (compiling) {time.perf_counter() - t0:.1f} s", flush=True)
    for r in range(rounds):
        for impl in (impls if r % 2 == 0 else impls[::-1]):
            t0 = time.perf_counter(); fwd_bwd(impl, x, chunk); secs[impl].append(time.perf_counter() - t0)
        print(f"  time N={n:>5} round {r + 1}/{rounds}: " + "  ".join(f"{i} {secs[i][-1]:6.2f} s" for i in impls), flush=True)
    return secs

def run(impl, n, V, H, chunk) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", impl, str(n), "--V", str(V), "--H", str(H), "--chunk", str(chunk)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--one", nargs=2, metavar=("IMPL", "N"))
    p.add_argument("--V", type=int, default=151_936); p.add_argument("--H", type=int, default=1_536)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--ns", type=int, nargs="+", default=[2048, 4096])
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per N in one process (0: skip)")
    a = p.parse_args()
    if a.one: print(json.dumps(one(a.one[0], int(a.one[1]), a.V, a.H, a.chunk))); sys.exit()  # one JSON line only
    import torch
    from provenance import header, footer
    from qwen_kd.train import keep_freed_memory
    T0 = time.perf_counter()
    print(header(), flush=True)
    print(f"V={a.V:,} H={a.H:,} fp32 CPU ({torch.get_num_threads()} threads), forward+backward, FKL T=2 alpha=0.5, "
          f"chunk={a.chunk} (fused and Liger)")
    print(check(), flush=True)
    res = {}
    for n in a.ns:
        for impl in IMPLS:
            done = [m for m in a.ns if (impl, m) in res and not res[impl, m].get("extrapolated")]
            base = max(done) if done else None
            need = res[impl, base]["peak_mb"] * n / base * 1.15 + 3 * a.V * a.H * 4 / 2**20 if impl == "naive" and base else 0
            if need > avail_mb():  # the naive loss grows ~linearly in N; never push a shared machine into the OOM killer
                r = res[impl, n] = {**res[impl, base], "peak_mb": res[impl, base]["peak_mb"] * n / base, "extrapolated": base}
                print(f"{impl:>6} N={n:>5}: not run (needs ~{need:.0f} MB, {avail_mb():.0f} MB available): "
                      f"~{r['peak_mb']:.0f} MB extrapolated linearly from N={base}", flush=True)
                continue
            r = res[impl, n] = run(impl, n, a.V, a.H, a.chunk)
            print(f"{impl:>6} N={n:>5}: peak {r['peak_mb']:>8.0f} MB above baseline, {r['secs']:>6.2f} s, loss {r['loss']:.4f}", flush=True)
    n = max(a.ns)
    base = res["naive", n].get("extrapolated")
    note = f" (naive extrapolated from N={base})" if base else ""
    print(f"naive/fused memory at N={n}: {res['naive', n]['peak_mb'] / res['fused', n]['peak_mb']:.1f}x{note}")
    for m in a.ns:
        d = abs(res["fused", m]["loss"] - res["liger", m]["loss"]) / abs(res["liger", m]["loss"])
        print(f"loss at N={m}: ours {res['fused', m]['loss']:.6f}, Liger {res['liger', m]['loss']:.6f} (relative difference {d:.1e})")
    print(f"ours/Liger memory = {res['fused', n]['peak_mb'] / res['liger', n]['peak_mb']:.2f} (N={n})")
    if a.rounds:  # times from one process, interleaved: a load spike from other jobs hits every impl alike
        print(f"time: {a.rounds} interleaved rounds per N in one process (freed buffers kept, as `train_student` does)")
        keep_freed_memory()
        ratio = lambda s, x, y: statistics.median(p / q for p, q in zip(s[x], s[y]))  # median of per-round ratios
        for m in a.ns:
            impls = [i for i in IMPLS if not res[i, m].get("extrapolated")] + ["compiled"]
            s = timed(m, impls, a.V, a.H, a.chunk, a.rounds)
            print(f"  median s at N={m}: " + ", ".join(f"{i} {statistics.median(s[i]):.2f}" for i in impls)
                  + ("; naive/fused time %.2f" % ratio(s, "naive", "fused") if "naive" in impls else ""), flush=True)
        print(f"compiled/fused time = {ratio(s, 'compiled', 'fused'):.2f} (N={m}, median of per-round ratios)")
        print(f"ours/Liger time = {ratio(s, 'fused', 'liger'):.2f} (N={m}, median of per-round ratios)")
    print(footer(T0))

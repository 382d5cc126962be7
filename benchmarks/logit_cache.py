"""Teacher logit cache: today's one-example-per-forward loop vs `cache_teacher_logits` batched (length-sorted, right-padded).

Tiny-but-realistic teacher as in teacher_throughput.py: Qwen2 architecture, hidden 256, 4 layers, 152,064 embedding rows
(Qwen2.5-7B's), random init, fp32 on CPU. 24 GRPO-like examples with completions of 20-120 tokens; sampled cache, k = 16.
Variants, interleaved over ROUNDS rounds (medians count; the machine is shared):
  old loop   - `_example_targets` per example: the code `cache_teacher_logits` ran before this change (full (1, L, V) logits)
  batch 1    - `cache_teacher_logits(batch_size=1)`: one example per forward, logits at the target positions only
  batch B    - `cache_teacher_logits(batch_size=B)`
Each variant's tensors are checked against the old loop's: ids bitwise, log-probs max |difference|.
Run: PYTHONPATH=. python benchmarks/logit_cache.py | tee benchmarks/logit_cache.out.txt
"""
import statistics, tempfile, time, torch
from provenance import header, footer
from qwen_kd.demo import tiny_qwen2, qwen_tokenizer, TEACHER_ROWS
from qwen_kd.data import to_example
from qwen_kd.teacher import _example_targets, cache_teacher_logits, SparseCache

N, K, B, ROUNDS = 24, 16, 8, 3

def examples(n: int):
    exs = [to_example({"prompt": f"Tom has {i} apples" + ", gives two to Ana and buys three more" * (i % 5)
                       + ". How many apples does Tom have now?"}, "grpo") for i in range(n)]
    outs = {e["id"]: {"teacher_output": "Step: " + " then ".join(f"{j} plus {j + 1}" for j in range(4 + (7 * i) % 25))}
            for i, e in enumerate(exs)}
    return exs, outs

def old_loop(model, tok, exs, outs):
    return {e["id"]: _example_targets(model, tok, e, outs[e["id"]]["teacher_output"], "sample", K, 0, 1024) for e in exs}

def new_cache(model, tok, exs, outs, bs):
    with tempfile.TemporaryDirectory() as d:
        cache_teacher_logits(model, tok, exs, outs, d, "sample", K, batch_size=bs)
        sc = SparseCache(d)
        return {e["id"]: sc.targets(e["id"]) for e in exs}

def timed(f):
    t0 = time.perf_counter(); r = f(); return r, time.perf_counter() - t0

if __name__ == "__main__":
    T0 = time.perf_counter()
    print(header(), flush=True)
    tok = qwen_tokenizer("qwen2.5")
    model = tiny_qwen2(vocab_size=TEACHER_ROWS, hidden=256, layers=4, heads=4, kv_heads=2, intermediate=1024)
    exs, outs = examples(N)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"teacher: {n_params / 1e6:.1f}M params, {TEACHER_ROWS} rows, {torch.get_num_threads()} threads; "
          f"{N} examples, sample k={K}, {ROUNDS} interleaved rounds")
    variants = {"old loop": lambda: old_loop(model, tok, exs, outs), "batch 1": lambda: new_cache(model, tok, exs, outs, 1),
                f"batch {B}": lambda: new_cache(model, tok, exs, outs, B)}
    new_cache(model, tok, exs[:4], outs, 2)  # warm-up
    times, results = {v: [] for v in variants}, {}
    for r in range(ROUNDS):
        for name, f in variants.items():
            results[name], t = timed(f); times[name].append(t)
        print(f"round {r + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in variants), flush=True)
    ref = results["old loop"]
    n_pos = sum(len(t["ids"]) for t in ref.values())
    print(f"{n_pos} target positions")
    for name in variants:
        med = statistics.median(times[name])
        ids_eq = all(torch.equal(results[name][i]["ids"].long(), ref[i]["ids"].long()) for i in ref)
        dlp = max((results[name][i]["logp"].float() - ref[i]["logp"].float()).abs().max().item() for i in ref)
        print(f"{name:9s}: median {med:6.2f} s = {N / med:6.2f} examples/s; ids equal to old loop: {ids_eq}; "
              f"max |logp - old| = {dlp:.2e}")
    print(f"speed-up batch {B} / old loop: {statistics.median(times['old loop']) / statistics.median(times[f'batch {B}']):.2f}x")
    print(f"speed-up batch {B} / batch 1: {statistics.median(times['batch 1']) / statistics.median(times[f'batch {B}']):.2f}x")
    print(footer(T0))

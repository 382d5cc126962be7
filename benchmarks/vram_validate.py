"""The VRAM model (`qwen_kd.vram.estimate_vram`) against measured peaks of live tensor bytes on CPU, and the seed's run.

Every case builds random-init Qwen2 models, runs two real `KDTrainer` optimizer steps (or one `generate` call) under
`qwen_kd.vram_check.LiveBytes` and estimates the same settings; the table prints measured vs estimated peak and the phase
each puts the peak in. The same cases, with the same names, run in nbs/03b_vram_check.ipynb: the fast ones, the small
16-bit and optimizer ones (with their optimizer-state lines) on every CI run, the mid-size and wide 16-bit ones
flagged slow. Peak RAM stays under ~6.5 GB (the mid-size pair: a Qwen2.5-0.5B-shaped student cut to 4 layers,
teacher to 2).

    PYTHONPATH=. python benchmarks/vram_validate.py | tee benchmarks/vram_validate.out.txt   # all cases, the seed's run
    PYTHONPATH=. python benchmarks/vram_validate.py --fast     # the cases the notebook runs in CI
"""
import argparse, resource, sys, time
import torch
from provenance import header, footer
from transformers import Qwen2ForCausalLM
from qwen_kd.core import prompt_messages, reference, tokenize_chat
from qwen_kd.demo import qwen_tokenizer
from qwen_kd.eval import perplexity
from qwen_kd.vram import QWEN25_0_5B, ADVICE, SEED_WAY, as_config, estimate_vram, vram_summary
from qwen_kd.vram_check import check_generation, check_kd_step, peak_bytes, synthetic_batch, validation_table

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128)
SMALL = dict(vocab_size=1024, hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=512)
WIDE = dict(vocab_size=4096, hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, intermediate_size=1024)

def fresh(seed: int, **cfg) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(as_config(cfg))

def fast_cases():
    for fused in (True, False):
        yield f"tiny, V=152k, {'fused' if fused else 'naive'}", lambda fused=fused: check_kd_step(
            fresh(2, vocab_size=151936, **TINY), fresh(1, vocab_size=152064, **TINY), synthetic_batch(2, 64), fused)
    for ckpt, accum in ((False, 1), (True, 1), (False, 2)):
        name = f"wide, V=4k, fused{', checkpointing' if ckpt else ''}{', grad_accum 2' if accum > 1 else ''}"
        yield name, lambda ckpt=ckpt, accum=accum: check_kd_step(fresh(2, **WIDE), fresh(1, **WIDE), synthetic_batch(2, 256, 4096),
                                                                 gradient_checkpointing=ckpt, grad_accum=accum)
    def gen():
        b = synthetic_batch(4, 96, 4096)
        b["attention_mask"] = b["attention_mask"].flip(1)  # left padding
        return check_generation(fresh(1, **WIDE).eval(), b, 8)
    yield "wide, generate 4 × (96 + 8)", gen
    # evaluation's perplexity, as the notebook measures it: the estimate gets the batch's target count
    tok = qwen_tokenizer("qwen1.5")
    examples = [{"messages": [{"role": "user", "content": f"Count to {i}."},
                              {"role": "assistant", "content": " ".join(map(str, range(4 * i)))}]} for i in range(1, 5)]
    encoded = [tokenize_chat(tok, prompt_messages(e), reference(e)) for e in examples]
    L = max(len(x["input_ids"]) for x in encoded)
    def ppl():
        model = fresh(2, vocab_size=151936, **TINY).eval()
        _, m = peak_bytes(perplexity, model, tok, examples, 4, keep=[model])
        N = sum(int((torch.tensor(x["labels"][1:]) != -100).sum()) for x in encoded)
        est = estimate_vram("eval", student=model.config, eval_dtype="fp32", gen_batch_size=4, seq_len=L, targets=N,
                            device="cpu").phases["perplexity"]
        return dict(measured=m.peak, estimated=est, error=est / m.peak - 1, measured_phase="perplexity", estimated_phase="perplexity")
    yield f"tiny, V=152k, perplexity 4 × {L}", ppl

SMALL_CASES = {"mixed, fused, checkpointing": dict(precision="bf16", gradient_checkpointing=True),
               "mixed, naive": dict(precision="bf16", fused=False),
               "pure bf16, fused, 8-bit AdamW": dict(precision="bf16", optim="adamw_bnb_8bit"),
               "fp32, fused, AdamW foreach": dict(optim="adamw_torch"), "fp32, fused, SGD": dict(optim="sgd")}

def small_cases():
    "The 16-bit paths and the optimizers at small shapes (the notebook's CI cells)."
    for name, kw in SMALL_CASES.items():
        def run(name=name, kw=kw):
            student = fresh(2, **SMALL)
            if name.startswith("pure"): student.to(torch.bfloat16)
            return check_kd_step(student, fresh(1, **SMALL), synthetic_batch(2, 128, 1024), **kw)
        yield f"small, V=1k, {name}", run

def optimizer_lines(rows: dict) -> list[str]:
    "Optimizer state (bytes alive between steps beyond the weights) and the optimizer step's peak, measured / estimated."
    out = []
    for name, r in rows.items():
        if not name.startswith("small"): continue
        m, e = r["tracker"], r["estimate"]
        kept, step = m.phase_peaks["between steps"] - m.start, m.phase_peaks.get("optimizer step")
        out.append(f"{name:>42}: states {kept / 2**20:.3f} / {e['optimizer'] / 2**20:.3f} MiB (measured / estimated, "
                   f"{kept - e['optimizer']:+,} B)" + (f", step peak {step / 2**20:.3f} / "
                   f"{e.phases['optimizer step'] / 2**20:.3f} MiB ({e.phases['optimizer step'] / step - 1:+.2%})" if step else ""))
    return out

def slow_cases():
    mid_t, mid_s = dict(QWEN25_0_5B, num_hidden_layers=2), dict(QWEN25_0_5B, num_hidden_layers=4)
    for fused in (True, False):
        yield f"mid (0.5B-shaped, 4 layers), {'fused' if fused else 'naive'}", lambda fused=fused: check_kd_step(
            fresh(2, **mid_s), fresh(1, **mid_t), synthetic_batch(2, 128), fused)
    for name, kw, pure in (("mixed, fused, checkpointing", dict(precision="bf16", gradient_checkpointing=True), False),
                           ("mixed, naive", dict(precision="bf16", fused=False), False),
                           ("pure bf16, fused, 8-bit AdamW", dict(precision="bf16", optim="adamw_bnb_8bit"), True)):
        def run(kw=kw, pure=pure):
            student = fresh(2, **WIDE)
            if pure: student.to(torch.bfloat16)
            return check_kd_step(student, fresh(1, **WIDE), synthetic_batch(2, 256, 4096), **kw)
        yield f"wide, V=4k, {name}", run

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--fast", action="store_true", help="only the cases the notebook runs in CI")
    a = p.parse_args()
    T0 = time.perf_counter()
    print(header())
    print("# the VRAM model against peaks of live tensor bytes (LiveBytes) of real KDTrainer steps on CPU", flush=True)
    rows = {}
    for name, run in [*fast_cases(), *small_cases(), *([] if a.fast else slow_cases())]:
        t0 = time.perf_counter()
        r = rows[name] = run()
        print(f"  {name}: measured {r['measured'] / 2**20:,.1f} MiB, estimated {r['estimated'] / 2**20:,.1f} MiB "
              f"({r['error']:+.1%}), {time.perf_counter() - t0:.0f} s", flush=True)
    print(); print(validation_table(rows))
    worst = max(abs(r["error"]) for r in rows.values())
    print(f"\nworst error {worst:.1%} over {len(rows)} cases")
    print("\nOptimizer memory of the small cases:"); print("\n".join(optimizer_lines(rows)))
    print("\nThe seed's run (7B 8-bit + LoRA r=64 → 1.8B, batch 2 × accum 8, 1024 tokens, checkpointing), online KD:")
    print(vram_summary({"seed's way (naive, AdamW, mixed)": estimate_vram("online", **SEED_WAY),
                        "advice (fused, 8-bit AdamW, bf16)": estimate_vram("online", **ADVICE)}, top=5))
    print(f"\nmax RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    print(footer(T0))
    sys.exit(0 if worst < 0.15 else 1)

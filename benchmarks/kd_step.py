"""Step time of plain SFT, online KD (fused and naive loss) and offline sparse KD (KDTrainer), for a student and a ~4x
larger teacher.

Tiny-but-realistic: Qwen2 architecture, random init, fp32 on CPU, the real vocabularies (teacher 152,064 embedding
rows with the Qwen2.5 tokenizer, student 151,936 rows with the Qwen1.5 tokenizer, 151,646 shared ids), untied
embeddings. One step = the collator (offline: reading the cached sparse targets) + `KDTrainer.training_step`
(forward, fused loss — naive: `fused: false`, the (B, L, V) logits of both models into `kd_loss`; offline:
`sparse_kd_loss` — backward) + AdamW step, after `keep_freed_memory()` as in `train_student`, batch 4 x 256 tokens (64 prompt + 192 reply tokens each).
The four trainers (one student copy each, same init) step in turn, round after round, so load from other jobs
on the machine hits all four alike; after warm-up rounds the median of each is reported.
The offline cache (sampled, k = 16) is written once by `cache_teacher_logits`; its one-time cost is printed apart.

    PYTHONPATH=. python benchmarks/kd_step.py | tee benchmarks/kd_step.out.txt    # ~2-4 minutes on 2 idle cores
    PYTHONPATH=. python benchmarks/kd_step.py --rounds 20 --warmup 3
"""
import argparse, os, random, statistics, tempfile, time, warnings
from pathlib import Path
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch
from qwen_kd.demo import tiny_qwen2, qwen_tokenizer, TEACHER_ROWS, STUDENT_ROWS, WORDS
from qwen_kd.teacher import SparseCache, cache_teacher_logits
from qwen_kd.loss import shared_vocab, fused_kd_loss, kd_loss
from qwen_kd.train import KDConfig, KDTrainer, KDCollator, build_dataset, training_args, keep_freed_memory, sparse_kd_loss, logits_to_keep
from provenance import header, footer

STUDENT = dict(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=384)
TEACHER = dict(hidden=512, layers=4, heads=8, kv_heads=4, intermediate=1536)
MODES = ("sft", "online", "naive", "offline")

def examples(n: int, prompt_words: int, reply_words: int, seed: int = 0) -> list[dict]:
    "Chat examples with word-salad prompts and replies of fixed length (one word ≈ one token)."
    rng = random.Random(seed)
    text = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))
    return [{"id": f"ex{i:04d}", "source": "sft",
             "messages": [{"role": "user", "content": text(prompt_words)}, {"role": "assistant", "content": text(reply_words)}]}
            for i in range(n)]

def trainer(mode: str, student, teacher, s_tok, ds, cache, n: int, out: str, bs: int) -> KDTrainer:
    cfg = KDConfig(output_dir=out, batch_size=bs, grad_accum=1, lr=1e-4, max_steps=10_000, save_steps=10**9, logging_steps=10**9)
    tr = KDTrainer(model=student, args=training_args(cfg), train_dataset=ds, data_collator=KDCollator(s_tok, cache if mode == "offline" else None),
                   processing_class=s_tok, teacher_model=teacher if mode in ("online", "naive") else None, alpha=0.5,
                   temperature=2.0, vocab_size=n, sparse_mode=cache.mode if mode == "offline" else None,
                   fused=mode != "naive", chunk_size=cfg.chunk_size)
    tr.create_optimizer()  # no scheduler: torch's LRScheduler cannot wrap KDTrainer's guarded optimizer.step (a plain function)
    tr.model.train()
    return tr

def batches(tr: KDTrainer):
    "The trainer's batches, epoch after epoch, collated when drawn (so offline cache reads count in the step)."
    while True: yield from tr.get_train_dataloader()

def step(tr: KDTrainer, batches) -> tuple[float, float]:
    "One optimiser step: seconds from fetching the batch to the end of the AdamW update, and of those the batch's."
    t0 = time.perf_counter()
    inputs = tr._prepare_inputs(next(batches))
    t1 = time.perf_counter()
    tr.training_step(tr.model, inputs, (inputs["labels"][:, 1:] != -100).sum())
    tr.optimizer.step(); tr.optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - t0, t1 - t0

def loss_only(tr: KDTrainer, inputs: dict) -> float:
    """Seconds of the loss alone (forward + backward through `FusedKD`, offline `SparseKD`, naive `kd_loss` on logits),
    from the batch's hidden states."""
    kw = dict(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False, output_hidden_states=True, logits_to_keep=1)
    with torch.no_grad():
        h = tr.model(**kw).hidden_states[-1]
        th = tr.teacher(**kw).hidden_states[-1] if tr.teacher is not None else None
    h = h.detach().requires_grad_()
    w = tr.model.get_output_embeddings().weight
    tw = tr.teacher.get_output_embeddings().weight if tr.teacher is not None else None
    sparse = tr._sparse(inputs, tr.vocab_size) if "sparse_ids" in inputs else None
    t0 = time.perf_counter()
    if sparse is not None: loss = sparse_kd_loss(h, w, inputs["labels"], sparse, 1.0, 0.5, tr.vocab_size)[0]  # as KDTrainer: T = 1
    elif not tr.fused:  # as `_naive_loss`: the logits of the positions from the first target on, both models
        labels, keep = inputs["labels"], logits_to_keep(inputs["labels"])
        with torch.no_grad(): tz = th[:, -keep:] @ tw.T
        loss = kd_loss(h[:, -keep:] @ w.T, tz, labels[:, -keep:], 0.5, 2.0, tr.vocab_size)[0]
    else: loss = fused_kd_loss(h, w, th, tw, inputs["labels"], temperature=2.0, alpha=0.5, vocab_size=tr.vocab_size)[0]
    loss.backward()
    w.grad = None
    return time.perf_counter() - t0

def params(m) -> float: return sum(p.numel() for p in m.parameters()) / 1e6

def step_flops(cfg: dict, rows: int, tokens: int, targets: int) -> tuple[float, float]:
    """Matmul FLOPs of a model of shape `cfg` on a batch: (forward + backward as a student, forward as a teacher).
    2 FLOPs per weight per token forward (backward twice that); the body sees every token, the lm_head only the target
    positions (the fused loss), the embedding lookup is free; attention scores and element-wise work are left out."""
    from transformers import Qwen2ForCausalLM
    from qwen_kd.demo import tiny_qwen2_config
    with torch.device("meta"): m = Qwen2ForCausalLM(tiny_qwen2_config(vocab_size=rows, **cfg))
    body = sum(p.numel() for n, p in m.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)
    fwd = 2 * (body * tokens + m.lm_head.weight.numel() * targets)
    return 3 * fwd, fwd

# Qwen1.5-1.8B student and Qwen2.5-7B teacher shapes (their config.json files), for the FLOP model at full scale
QWEN15_1_8B = dict(hidden=2048, layers=24, heads=16, kv_heads=16, intermediate=5504)
QWEN25_7B = dict(hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944)

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=10); p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=4); p.add_argument("--prompt", type=int, default=64); p.add_argument("--reply", type=int, default=192)
    p.add_argument("--examples", type=int, default=16); p.add_argument("--loss-rounds", type=int, default=4); p.add_argument("--k", type=int, default=16)
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    keep_freed_memory()  # as train_student does: without it every (chunk, V) buffer is a fresh mmap, zeroed page by page
    T0, load0 = time.perf_counter(), os.getloadavg()
    t_tok, s_tok = qwen_tokenizer("qwen2.5"), qwen_tokenizer("qwen1.5")
    teacher = tiny_qwen2(1, vocab_size=TEACHER_ROWS, **TEACHER).eval()
    students = {m: tiny_qwen2(0, vocab_size=STUDENT_ROWS, **STUDENT) for m in MODES}  # same init for the three
    n = shared_vocab(t_tok, s_tok)
    exs = examples(a.examples, a.prompt, a.reply)
    print(header())
    print("# KD step time: plain SFT vs online KD vs offline sparse KD, interleaved rounds")
    print(f"student {params(students['sft']):.1f}M params ({STUDENT_ROWS} rows, {STUDENT}), teacher {params(teacher):.1f}M "
          f"({TEACHER_ROWS} rows, {TEACHER}): {params(teacher) / params(students['sft']):.1f}x; shared vocab {n}")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        cache_teacher_logits(teacher, t_tok, exs, {e["id"]: {"teacher_output": e["messages"][-1]["content"]} for e in exs},
                             Path(d)/"logits", "sample", a.k, max_length=a.prompt * 4 + a.reply * 4)
        t_cache = time.perf_counter() - t0
        cache = SparseCache(Path(d)/"logits")
        ds, drops = build_dataset(exs, s_tok, 1024, {e["id"]: e["messages"][-1]["content"] for e in exs}, cache)
        rows = ds[:a.batch]
        toks = sum(len(r) for r in rows["input_ids"]); tgt = sum(sum(l != -100 for l in r) for r in rows["labels"])
        size = sum(f.stat().st_size for f in (Path(d)/"logits").glob("*.safetensors"))
        print(f"batch {a.batch}: {toks} tokens, {tgt} reply (target) tokens; offline cache: sample k={a.k}, {len(ds)} examples, "
              f"{size / 2**20:.1f} MiB, written in {t_cache:.1f} s ({t_cache / len(ds) * a.batch:.2f} s per batch of {a.batch}, once)")
        trs = {m: trainer(m, students[m], teacher, s_tok, ds, cache, n, str(Path(d)/m), a.batch) for m in MODES}
        its = {m: batches(tr) for m, tr in trs.items()}
        times, data = {m: [] for m in MODES}, {m: [] for m in MODES}
        for r in range(a.warmup + a.rounds):
            now = {m: step(trs[m], its[m]) for m in (MODES if r % 2 == 0 else MODES[::-1])}  # alternate the order
            for m in MODES:
                if r >= a.warmup: times[m].append(now[m][0]); data[m].append(now[m][1])
            print(f"  round {r + 1:>2}/{a.warmup + a.rounds}" + ("  (warm-up)" if r < a.warmup else "") + ": "
                  + "  ".join(f"{m} {now[m][0] * 1e3:7.0f} ms" for m in MODES), flush=True)
        losses = {m: [] for m in MODES}
        for r in range(a.loss_rounds):  # where the difference lies: the loss alone, same batch for the three
            inputs = trs["offline"]._prepare_inputs(next(its["offline"]))
            for m in (MODES if r % 2 == 0 else MODES[::-1]):
                losses[m].append(loss_only(trs[m], {k: v for k, v in inputs.items() if m == "offline" or not k.startswith("sparse")}))
    med = {m: statistics.median(times[m]) for m in MODES}
    q = lambda m, f: sorted(times[m])[int(f * (len(times[m]) - 1))]
    ratio = lambda a, b: statistics.median(x / y for x, y in zip(times[a], times[b]))  # per round: side by side
    load1 = os.getloadavg()
    print(f"\n| mode | ms/step (median of {a.rounds}) | [p25, p75] ms | ratio to SFT (median of per-round ratios) |\n|---|---|---|---|")
    for m, name in zip(MODES, ("plain SFT (CE on the reply)", "online KD (teacher forward each step)",
                             "online KD, naive loss (B×L×V logits)", "offline sparse KD (cached, k=%d)" % a.k)):
        print(f"| {name} | {med[m] * 1e3:.0f} | [{q(m, .25) * 1e3:.0f}, {q(m, .75) * 1e3:.0f}] | {ratio(m, 'sft'):.2f} |")
    print("of which the batch (collate; offline: cached-target reads), median ms: "
          + ", ".join(f"{m} {statistics.median(data[m]) * 1e3:.0f}" for m in MODES))
    if a.loss_rounds:
        print(f"the loss alone (forward + backward, same batch, median of {a.loss_rounds}), ms: "
              + ", ".join(f"{m} {statistics.median(losses[m]) * 1e3:.0f}" for m in MODES)
              + f"; offline - SFT = {(statistics.median(losses['offline']) - statistics.median(losses['sft'])) * 1e3:.0f} ms")
    fl = {}
    for name, (sc, tc) in {"this tiny pair": (STUDENT, TEACHER), "Qwen1.5-1.8B student / Qwen2.5-7B teacher": (QWEN15_1_8B, QWEN25_7B)}.items():
        s_fb, _ = step_flops(sc, STUDENT_ROWS, toks, tgt); _, t_f = step_flops(tc, TEACHER_ROWS, toks, tgt)
        fl[name] = f"SFT {s_fb / 1e9:,.0f} GFLOP, online +{t_f / 1e9:,.0f} (teacher forward), offline/online {s_fb / (s_fb + t_f):.2f}"
    print("FLOP model (matmuls only, this batch; offline counted as SFT): " + "; ".join(f"{k}: {v}" for k, v in fl.items()))
    x = ratio("online", "naive")
    print(f"\nfused/naive step time = {x:.2f} (online KD, median of per-round ratios; ratio of medians "
          f"{med['online'] / med['naive']:.2f}); goal ≤ 1.0: {'met' if x <= 1.0 else 'NOT met'}")
    y = ratio("offline", "sft")
    print(f"offline/SFT step time = {y:.2f} (median of per-round ratios; ratio of medians {med['offline'] / med['sft']:.2f}); "
          f"goal ≤ 1.05: {'met' if y <= 1.05 else 'NOT met'}")
    r = ratio("offline", "online")
    print(f"\noffline / online = {r:.2f} (median of per-round ratios; ratio of medians {med['offline'] / med['online']:.2f}); "
          f"goal ≤ 0.5: {'met' if r <= 0.5 else 'NOT met'}")
    print(f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f} on {os.cpu_count()} cores"
          + ("; the cores were shared with other jobs: absolute ms are noisy, the ratios are measured interleaved" if max(load0[0], load1[0]) > os.cpu_count() * 0.75 else "")
          + f"; total {time.perf_counter() - T0:.0f} s")
    print(footer(T0))

if __name__ == "__main__":
    main()

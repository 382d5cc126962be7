"""GPU speed at the seed's setting, in one call: fused vs naive KD step, offline KD vs SFT step, and the two 8-bit
teachers (bitsandbytes LLM.int8 `8bit` vs torchao int8 weight-only `int8-torchao`) — their forward alone and the
seed's whole KD step with each.

Models are built from the real configs (`qwen_kd.vram.KNOWN_CONFIGS`: Qwen2.5-7B teacher, Qwen1.5-1.8B student) with
random init, as `gpu_real_size.py` does (its `build` and `run_case` are reused: real `KDTrainer` steps, median step time
after two warm-up steps). Step cases run in `--rounds` interleaved rounds (fused, naive, SFT, offline, fused, ...) and
each ratio is the ratio of the medians over rounds. The teachers are the bf16 teacher saved with a random rank-64 LoRA
and loaded back through `qwen_kd.models.load_model` (the teacher stage's code path) with each quantization; their
forward times are interleaved rounds too, and KL / top-1 against the bf16 teacher on the same batch are printed (random
init: near-uniform logits, so these only flag a broken path; `teacher_quant.py` measures them on real weights).

Needs `bitsandbytes` and `torchao>=0.18` (a variant whose package is missing is reported and skipped). The table
(everything printed) is written to benchmarks/gpu_speed.<gpu>.out.txt as well.

    PYTHONPATH=. python benchmarks/gpu_speed.py             # one GPU, ~5-8 minutes on an H200 (saves ~16 GB to --tmp)
    PYTHONPATH=. python benchmarks/gpu_speed.py --tiny      # the same code on CPU with tiny configs: measures nothing
"""
import argparse, gc, re, statistics, sys, tempfile, time
from pathlib import Path
import torch
import gpu_real_size as g
from gpu_real_size import build, run_case, save_with_lora, mem_allocated, TINY, GiB
from teacher_quant import compare, storage_bytes
from provenance import header, footer
from qwen_kd.vram import KNOWN_CONFIGS, as_config
from qwen_kd.vram_check import synthetic_batch, target_tokens
from qwen_kd.models import load_model

class Tee:
    "Print to stdout and to the output file, line by line."
    def __init__(self, path): self.f = open(path, "w")
    def __call__(self, *a):
        s = " ".join(map(str, a)); print(s, flush=True); self.f.write(s + "\n"); self.f.flush()

def sync(device):
    if device == "cuda": torch.cuda.synchronize()

def has(pkg: str) -> bool:
    try: __import__(pkg); return True
    except ImportError: return False

def step_cases(a, teacher, t_set, batch, say) -> dict[str, list[float]]:
    "Fused vs naive online KD, SFT and offline KD steps, interleaved over rounds; step seconds per case per round."
    cases = {"online KD, fused loss": ("online", True), "online KD, naive loss": ("online", False),
             "SFT (seqkd)": ("seqkd", True), "offline KD (k=16)": ("offline", True)}
    times = {c: [] for c in cases}
    for r in range(a.rounds):
        for name, (mode, fused) in cases.items():
            res = run_case(name, a, teacher, t_set, batch, mode, "bf16", "adamw_torch_fused" if not a.tiny else "adamw_torch",
                           fused)
            times[name].append(res["step_s"])
            say(f"  round {r + 1}: {name}: {1000 * res['step_s']:.0f} ms/step, measured {res['measured_gib']:.2f} GiB")
    return times

def teacher_forwards(teachers: dict, x, mask, rounds: int, device) -> dict[str, list[float]]:
    "Forward seconds of each teacher on the same batch (hidden states only, as the fused loss asks), interleaved."
    times = {q: [] for q in teachers}
    with torch.no_grad():
        for q, m in teachers.items(): m(input_ids=x, attention_mask=mask, logits_to_keep=1)  # warm-up
        for _ in range(rounds):
            for q, m in teachers.items():
                sync(device); t = time.perf_counter()
                m(input_ids=x, attention_mask=mask, logits_to_keep=1)
                sync(device); times[q].append(time.perf_counter() - t)
    return times

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=2); p.add_argument("--length", type=int, default=1024)
    p.add_argument("--steps", type=int, default=6); p.add_argument("--k", type=int, default=16)
    p.add_argument("--chunk", type=int, default=1024, help="KDConfig.chunk_size of the fused loss")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the step cases")
    p.add_argument("--fwd-rounds", type=int, default=10, help="interleaved rounds of the teacher forwards")
    p.add_argument("--tiny", action="store_true", help="tiny configs on CPU: checks the script, measures nothing")
    p.add_argument("--tmp", default=tempfile.gettempdir(), help="where the teacher is saved with its LoRA (~16 GB)")
    p.add_argument("--out", help="output file (default benchmarks/gpu_speed.<gpu>.out.txt)")
    a = p.parse_args()
    if not a.tiny and not torch.cuda.is_available():
        sys.exit("gpu_speed.py: no CUDA GPU here; run it on one, or with --tiny for the CPU smoke test")
    a.device = "cpu" if a.tiny else "cuda"
    a.teacher, a.student = ((TINY["teacher"], TINY["student"]) if a.tiny else
                            (KNOWN_CONFIGS["Qwen/Qwen2.5-7B"], KNOWN_CONFIGS["Qwen/Qwen1.5-1.8B"]))
    if a.tiny: a.batch, a.length, a.steps, a.fwd_rounds = 2, 64, 3, min(a.fwd_rounds, 3)
    gpu = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    slug = "cpu-tiny" if a.tiny else (re.findall(r"[A-Z]\d{2,4}\w*", gpu) or [re.sub(r"\W+", "-", gpu)])[0].lower()
    out = Path(a.out or Path(__file__).parent/f"gpu_speed.{slug}.out.txt")
    say = Tee(out); g.say = say  # gpu_real_size's progress lines go to the file too
    T0 = time.perf_counter()
    say(header())
    say(f"# {gpu}, batch {a.batch} x {a.length} tokens, chunk_size {a.chunk}, {a.steps} steps per case "
        f"(median of steps 3..{a.steps}), {a.rounds} interleaved rounds" + ("; --tiny: CPU smoke test, measures nothing"
                                                                            if a.tiny else ""))
    torch.manual_seed(0)
    teacher = build(a.teacher, torch.bfloat16, a.device).eval().requires_grad_(False)
    t_set = dict(teacher=as_config(a.teacher), teacher_quant="none", teacher_dtype="bf16", teacher_lora_rank=0)
    batch = synthetic_batch(a.batch, a.length, vocab=150_000)
    say(f"{target_tokens(batch)} target tokens per batch   [{time.perf_counter() - T0:.0f} s]")

    say("\n## KD step: fused vs naive loss, offline KD vs SFT (bf16 teacher, mixed-precision student, AdamW)")
    st = step_cases(a, teacher, t_set, batch, say)
    med = {c: statistics.median(v) for c, v in st.items()}
    say("\n| case | ms/step per round | median ms/step |\n|---|---|---:|")
    for c, v in st.items(): say(f"| {c} | {', '.join(f'{1000 * s:.0f}' for s in v)} | {1000 * med[c]:.0f} |")
    say(f"fused/naive step time = {med['online KD, fused loss'] / med['online KD, naive loss']:.3f}")
    say(f"offline/SFT step time = {med['offline KD (k=16)'] / med['SFT (seqkd)']:.3f}")

    say("\n## 8-bit teachers: bf16 teacher + LoRA r=64 saved, loaded back by qwen_kd.models.load_model")
    d = save_with_lora(teacher, a)
    x, mask = batch["input_ids"].to(a.device), batch["attention_mask"].to(a.device)
    teacher = None; gc.collect()
    if a.device == "cuda": torch.cuda.empty_cache()
    dm = {"": 0} if a.device == "cuda" else None
    teachers, weights = {}, {}
    for q, pkg in (("none", None), ("8bit", "bitsandbytes"), ("int8-torchao", "torchao")):
        if pkg and not has(pkg): say(f"{q}: skipped, {pkg} is not installed"); continue
        m0 = mem_allocated(a.device)
        try: teachers[q] = load_model(f"{d}/base", f"{d}/adapter", q, "bf16", dm)
        except Exception as e: say(f"{q}: FAILED to load: {type(e).__name__}: {str(e)[:300]}"); continue
        teachers[q].config.use_cache = False
        weights[q] = (mem_allocated(a.device) - m0) if a.device == "cuda" else storage_bytes(teachers[q])
        say(f"{q} teacher loaded: {weights[q] / GiB:.2f} GiB   [{time.perf_counter() - T0:.0f} s]")
    ft = teacher_forwards(teachers, x, mask, a.fwd_rounds, a.device)
    fmed = {q: statistics.median(v) for q, v in ft.items()}
    say("\n| teacher (+ LoRA r=64, bf16) | forward ms (median) | min ms | weights + LoRA GiB | KL(bf16‖q) nats | top-1 |"
        "\n|---|---:|---:|---:|---:|---:|")
    with torch.no_grad():  # the reference: the unquantised bf16 teacher with the same LoRA
        ref = teachers["none"](input_ids=x, attention_mask=mask).logits.float().cpu()
        for q, m in teachers.items():
            kl, top1 = compare(ref, m(input_ids=x, attention_mask=mask).logits.float().cpu())
            say(f"| {q} | {1000 * fmed[q]:.1f} | {1000 * min(ft[q]):.1f} | {weights[q] / GiB:.2f} | {kl:.5f} | {top1:.4f} |")
    if "8bit" in fmed and "int8-torchao" in fmed:
        say(f"int8-torchao/8bit teacher forward time = {fmed['int8-torchao'] / fmed['8bit']:.3f}")

    say("\n## the seed's KD step with each 8-bit teacher (online, fused, bf16-pure student, 8-bit AdamW)")
    quant = [q for q in ("8bit", "int8-torchao") if q in teachers]
    rows = {q: [] for q in quant}
    for q in teachers.keys() - set(quant): teachers.pop(q)
    gc.collect()
    for r in range(a.rounds):
        for q in quant:
            ts = dict(teacher=as_config(a.teacher), teacher_quant=q, teacher_dtype="bf16", teacher_lora_rank=64)
            optim = "adamw_bnb_8bit" if has("bitsandbytes") and not a.tiny else "adamw_torch"
            try: res = run_case(f"seed setting, {q} teacher", a, teachers[q], ts, batch, "online", "bf16-pure", optim)
            except Exception as e: say(f"{q}: step FAILED {type(e).__name__}: {str(e)[:300]}"); continue
            rows[q].append(res["step_s"])
            say(f"  round {r + 1}: {q} teacher: {1000 * res['step_s']:.0f} ms/step, "
                f"max allocated {res['measured_gib']:.2f} GiB (estimated {res['estimated_gib']:.2f})")
    say("\n| teacher | ms/step per round | median ms/step |\n|---|---|---:|")
    for q, v in rows.items():
        if v: say(f"| {q} | {', '.join(f'{1000 * s:.0f}' for s in v)} | {1000 * statistics.median(v):.0f} |")
    if all(rows.get(q) for q in ("8bit", "int8-torchao")):
        say(f"int8-torchao/8bit seed step time = "
            f"{statistics.median(rows['int8-torchao']) / statistics.median(rows['8bit']):.3f}")
    say(footer(T0))
    say(f"# written to {out.relative_to(Path(__file__).parent.parent) if out.is_relative_to(Path(__file__).parent.parent) else out}")

if __name__ == "__main__":
    main()

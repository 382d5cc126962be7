"""What the students of `kd_vs_sft.py --testbed real` answer: why (e) seqkd-then-on-policy sits at one accuracy.

Loads the seqkd student that a finished `kd_vs_sft.py --testbed real` run saved after N/2 steps (--work/saves), trains
it on-policy (λ = 1, reverse KL, T = 1, the benchmark's settings) for --steps more, and prints for both students the
held-out accuracy, how many distinct answers they give and the commonest ones, beside the gold answers' commonest.

    PYTHONPATH=. python benchmarks/kd_vs_sft_answers.py --work /tmp/kdfull | tee benchmarks/kd_vs_sft_answers.out.txt
"""
import argparse, collections, sys, time
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM
from qwen_kd.core import QwenKDError, prompt_messages
from qwen_kd.eval import extract_answer, answers_match
from qwen_kd.models import load_tokenizer
from qwen_kd.teacher import GenConfig, generate
sys.path.insert(0, str(Path(__file__).parent))
import kd_vs_sft as bench
from provenance import header, footer

def answers(model, tok, held: list[dict]) -> list[str|None]:
    "The extracted answer of each held-out reply (greedy, 24 new tokens, as the benchmark scores)."
    prompts = [prompt_messages(e) for e in held]
    return [extract_answer(r["text"]) for r in generate(model.eval(), tok, prompts, GenConfig(max_new_tokens=24, batch_size=64))]

def report(name: str, preds: list, gold: list[str]):
    c = collections.Counter(preds)
    acc = sum(answers_match(p, g) for p, g in zip(preds, gold)) / len(gold)
    print(f"{name:<28} acc {acc:.3f}  distinct answers {len(c):>3}  commonest {c.most_common(4)}", flush=True)

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default="/tmp/qwen_kd_kd_vs_sft_real", help="the --work of a finished kd_vs_sft.py --testbed real run")
    p.add_argument("--budget", type=int, default=30, help="the seqkd student saved at budget // 2 steps")
    p.add_argument("--steps", type=int, default=15, help="on-policy steps after it")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    work = Path(a.work)
    saved = work/"saves"/f"seqkd-{a.seed}-0"/f"step{a.budget // 2}"
    if not (saved/"config.json").exists():
        raise SystemExit(f"qwen-kd: error: {saved}: no saved seqkd student; run kd_vs_sft.py --testbed real --work {work} first")
    T0 = time.perf_counter()
    print(header(), flush=True)
    n_train = max(int(f.stem[5:]) for f in work.glob("train*.jsonl"))  # the run's own training set, train{n}.jsonl
    cfg = argparse.Namespace(gguf=None, budgets=[n_train // 8], batch_size=4, grad_accum=2, cache_k=16, lr=1e-4)
    S = bench.setup_real(work, cfg, work/"answers.log")
    tok = load_tokenizer(str(S["healed"]))
    held, gold = S["held_answer"], [e["answer"] for e in S["held_answer"]]
    print(f"{len(held)} held-out problems; gold answers: {len(set(gold))} distinct, commonest "
          f"{collections.Counter(gold).most_common(4)}", flush=True)
    report(f"seqkd, {a.budget // 2} steps", answers(AutoModelForCausalLM.from_pretrained(saved, dtype=torch.float32), tok, held), gold)
    with bench.quiet(work/"answers.log"):
        model, _ = bench.train_variant(S, "on_policy", a.steps, a.seed, work/"answers_run", tok, student=str(saved))
    report(f"then on-policy, {a.steps} steps", answers(model, tok, held), gold)
    print(footer(T0), flush=True)

if __name__ == "__main__":
    try: main()
    except QwenKDError as e: raise SystemExit(f"qwen-kd: error: {e}")

"""`evaluate_models` wall time before/after the teacher's logits are computed once (issue 16), on tiny models.

A tiny teacher (Qwen2, hidden 64, 152,064 rows, Qwen2.5 tokenizer) and three tiny students (Qwen1.5 tokenizer); 12
held-out examples (8 GRPO with answers, 4 SFT), max_new_tokens 16, batch_size 8, fp32 on CPU.
  before - qwen_kd/eval.py as of commit BEFORE (loaded from git): the teacher's forward again for every model compared,
           the teacher against itself included
  after  - this checkout's `evaluate_models`: one teacher pass kept on disk, the teacher-vs-itself pass skipped
Rounds interleave the two (medians count; the machine is shared). The teacher's forward calls are counted, and the two
reports are checked equal (every number).
Run: PYTHONPATH=. python benchmarks/eval_speed.py | tee benchmarks/eval_speed.out.txt
"""
import importlib.util, json, statistics, subprocess, sys, tempfile, time
from pathlib import Path
from provenance import header, footer, ROOT
from qwen_kd.data import to_example, to_jsonl
from qwen_kd.demo import qwen_tokenizer, tiny_qwen2, TEACHER_ROWS
import qwen_kd.eval as after

BEFORE, ROUNDS = "230bb8d", 2

def load_before():
    src = subprocess.run(["git", "show", f"{BEFORE}:qwen_kd/eval.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp())/"eval_before.py"; path.write_text(src)
    spec = importlib.util.spec_from_file_location("qwen_kd._eval_before", path)  # relative imports: qwen_kd.core, ...
    mod = importlib.util.module_from_spec(spec); sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod

def count_forwards(model):
    calls, fwd = [], model.forward
    model.forward = lambda *a, **kw: calls.append(1) or fwd(*a, **kw)
    return calls

if __name__ == "__main__":
    T0 = time.perf_counter()
    print(header(), flush=True)
    before = load_before()
    exs = [to_example({"prompt": f"Tom has {i} apples and buys {i + 2} more. How many now?",
                       "solution": f"{i} plus {i + 2} is {2 * i + 2}. \\boxed{{{2 * i + 2}}}", "answer": str(2 * i + 2)}, "grpo")
           for i in range(8)]
    exs += [to_example({"instruction": "Repeat the words.", "input": f"red blue {i}", "output": f"red blue {i}"}, "sft")
            for i in range(4)]
    t_tok, s_tok = qwen_tokenizer("qwen2.5"), qwen_tokenizer("qwen1.5")
    teacher = tiny_qwen2(3, vocab_size=TEACHER_ROWS)
    loaded = {"teacher": (teacher, t_tok), **{f"student{j}": (tiny_qwen2(j), s_tok) for j in range(3)}}
    calls = count_forwards(teacher)
    print(f"{len(exs)} examples, {len(loaded)} models (teacher + 3 students), max_new_tokens 16, batch_size 8, "
          f"{ROUNDS} interleaved rounds; before = qwen_kd/eval.py at {BEFORE}")
    times, reps, fwd = {"before": [], "after": []}, {}, {}
    with tempfile.TemporaryDirectory() as d:
        Path(d, "val.jsonl").write_text(to_jsonl(exs))
        cfg = lambda out: after.EvalConfig(data=f"{d}/val.jsonl", out=f"{d}/{out}", max_new_tokens=16, batch_size=8)
        run = {"before": lambda r: before.evaluate_models(cfg(f"before{r}"), loaded),
               "after": lambda r: after.evaluate_models(cfg(f"after{r}"), loaded, progress=False)}
        for r in range(ROUNDS):
            for name, f in run.items():
                calls.clear(); t0 = time.perf_counter(); reps[name] = f(r); times[name].append(time.perf_counter() - t0)
                fwd[name] = len(calls)
            print(f"round {r + 1}: before {times['before'][-1]:.1f} s, after {times['after'][-1]:.1f} s", flush=True)
    same = json.dumps(reps["before"], sort_keys=True) == json.dumps(reps["after"], sort_keys=True)
    for name in run:
        print(f"{name:6s}: median wall {statistics.median(times[name]):6.1f} s; teacher forward calls {fwd[name]} "
              "(generation steps, perplexity and agreement batches)")
    print(f"after/before wall time = {statistics.median(times['after']) / statistics.median(times['before']):.2f}")
    print(f"reports equal (every number, json): {same}")
    print(footer(T0))

"""benchmarks/kd_vs_sft.py on the real-weights testbed: a missing or broken GGUF is refused in one line with nothing
written, and variant (e) trains on-policy from the student its seqkd phase saved."""
import importlib.util, json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT/"benchmarks"/"kd_vs_sft.py"

def bench():
    "The benchmark script as a module (its folder on the path for `provenance`)."
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("kd_vs_sft", SCRIPT)
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m

@pytest.mark.parametrize("kind, says", [("missing", "no such GGUF file"), ("html", "not a GGUF file"),
                                        ("cut", "cannot read this GGUF file")])
def test_refuses_a_bad_gguf_in_one_line(tmp_path, kind, says):
    "No testbed is built from a missing file, a failed download or a cut GGUF: one line, exit 2, an empty cache."
    f = tmp_path/"SmolLM2.gguf"
    if kind == "html": f.write_bytes(b"<html>404 Not Found</html>")
    if kind == "cut": f.write_bytes(b"GGUF" + bytes(range(256)) * 16)  # a header's magic, then garbage
    env = {**os.environ, "QWEN_KD_CACHE": str(tmp_path/"cache"), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(SCRIPT), "--testbed", "real", "--quick", "--gguf", str(f),
                        "--work", str(tmp_path/"work")], env=env, capture_output=True, text=True, timeout=300)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("qwen-kd: error:") and says in lines[0], r.stderr[-2000:]
    cache = tmp_path/"cache"
    assert not cache.exists() or not any(cache.iterdir()), sorted(cache.rglob("*"))

def tiny_setup(tmp_path):
    "A tiny stand-in for the testbed: a 2-layer student, a 1-layer teacher, 8 prompts with teacher replies."
    from qwen_kd.core import to_jsonl
    from qwen_kd.data import to_example
    from qwen_kd.demo import tiny_qwen2, qwen_tokenizer, STUDENT_ROWS, TEACHER_ROWS
    s_tok = qwen_tokenizer("qwen1.5")
    tiny_qwen2(2, vocab_size=STUDENT_ROWS).save_pretrained(tmp_path/"init"); s_tok.save_pretrained(tmp_path/"init")
    exs = [to_example({"prompt": f"What is {i} + {i}?", "solution": f"{2 * i}"}, "grpo") for i in range(8)]
    (tmp_path/"train.jsonl").write_text(to_jsonl(exs))
    (tmp_path/"outputs.jsonl").write_text("".join(json.dumps({"id": e["id"], "teacher_output": f"{2 * i}. The answer is 7.",
        "token_ids": [], "finish_reason": "stop", "gen": "x"}) + "\n" for i, e in enumerate(exs)))
    S = {"raw": {"train": {"data": str(tmp_path/"train.jsonl"), "teacher_outputs": str(tmp_path/"outputs.jsonl"),
                           "batch_size": 4, "grad_accum": 1, "lr": 1e-2, "max_length": 64, "save_steps": 10**6,
                           "on_policy_max_new_tokens": 6, "precision": "fp32"}},
         "tc": None, "teacher": tiny_qwen2(1, vocab_size=TEACHER_ROWS), "healed": tmp_path/"init",
         "done": {}, "results": tmp_path/"results.jsonl", "prompts_per_step": 4, "n_train": 8,
         "times": {"labels_s": 8.0, "cache_s": 4.0}}
    return S, s_tok

def test_seqkd_then_on_policy_starts_from_the_seqkd_student(tmp_path, monkeypatch):
    """(e): phase 1 trains seqkd and saves; phase 2 is on-policy (λ = 1, RKL) and starts from exactly those weights,
    not from the healed init. Checked to fail when phase 2 starts from the init."""
    import torch
    from transformers import AutoModelForCausalLM
    from qwen_kd.train import KDTrainer
    m = bench()
    S, s_tok = tiny_setup(tmp_path)
    seen, real = [], KDTrainer.train
    def spy(self, *a, **k):
        seen.append((self.args.output_dir, self.lmbda, self.divergence,
                     {n: v.detach().clone() for n, v in self.model.state_dict().items()}))
        return real(self, *a, **k)
    monkeypatch.setattr(KDTrainer, "train", spy)
    model, secs = m.train_variant(S, "seqkd_on_policy", 2, 0, tmp_path/"out", s_tok, first=2)
    assert [Path(s[0]).name for s in seen] == ["phase1", "phase2"] and secs > 0
    assert seen[0][1] == 0 and seen[1][1:3] == (1.0, "rkl")  # phase 1 seqkd, phase 2 on-policy with reverse KL
    saved = AutoModelForCausalLM.from_pretrained(tmp_path/"out"/"phase1", dtype=torch.float32).state_dict()
    init = seen[0][3]
    assert any(not torch.equal(init[k], saved[k]) for k in saved), "phase 1 did not train"
    assert all(torch.equal(seen[1][3][k], saved[k]) for k in saved), "phase 2 did not start from phase 1's student"

def test_a_prefix_of_a_run_is_a_shorter_run(tmp_path, monkeypatch):
    """One run scored at steps 2 and 3 (constant lr) gives at step 2 exactly the student of a separate 2-step run (with
    the Trainer's default linear decay it would not), and saves that student; (e) then trains on-policy from the saved
    step-2 student and pays labels for its seqkd phase only. Scoring between steps does not change training (step 3
    against a separate 3-step run)."""
    import torch
    from transformers import AutoModelForCausalLM
    from qwen_kd.train import KDTrainer
    m = bench()
    S, s_tok = tiny_setup(tmp_path)
    weights = lambda model: {n: v.detach().clone() for n, v in model.state_dict().items()}
    monkeypatch.setattr(m, "evaluate", lambda model, tok, S: {"w": weights(model)})
    pts = m.PrefixEval(lambda model: m.evaluate(model, s_tok, S), [2, 3], [2], tmp_path/"saves", s_tok)
    m.train_variant(S, "seqkd", 3, 0, tmp_path/"long", s_tok, timer=pts)
    for k in (2, 3):
        short, _ = m.train_variant(S, "seqkd", k, 0, tmp_path/f"short{k}", s_tok)
        assert all(torch.equal(pts.points[k]["w"][n], v) for n, v in weights(short).items()), f"step {k} differs"
    saved = AutoModelForCausalLM.from_pretrained(tmp_path/"saves"/"step2", dtype=torch.float32).state_dict()
    assert all(torch.equal(saved[n], pts.points[2]["w"][n]) for n in saved)
    assert any(not torch.equal(pts.points[2]["w"][n], pts.points[3]["w"][n]) for n in saved), "step 3 did not train"
    assert 0 < pts.clock[2] < pts.clock[3] and len(pts.steps) == 3

    monkeypatch.setattr(m, "evaluate", lambda model, tok, S: {"acc": 0.0})
    seen, real = [], KDTrainer.train
    def spy(self, *a, **k):
        seen.append((self.lmbda, self.divergence, weights(self.model)))
        return real(self, *a, **k)
    monkeypatch.setattr(KDTrainer, "train", spy)
    e = m.run_prefix(S, tmp_path, "seqkd_on_policy", 0, [1], tmp_path/"log", s_tok, first=2, first_s=5.0,
                     student=tmp_path/"saves"/"step2")
    assert seen[0][:2] == (1.0, "rkl") and all(torch.equal(seen[0][2][n], saved[n]) for n in saved)
    p = e["points"]["1"]
    assert p["steps"] == 3 and p["first"] == 2 and p["teacher_s"] == 8.0 and p["train_s"] > 5.0  # labels for its 8 prompts
    assert m.run_prefix(S, tmp_path, "seqkd_on_policy", 0, [1], tmp_path/"log", s_tok, first=2, first_s=5.0,
                        student=tmp_path/"saves"/"step2").get("cached") and len(seen) == 1  # the results file is reused
    assert m.teacher_work(S, "seqkd_on_policy", 3, 1) == 4.0  # (e) after 1 seqkd step: labels for 4 of 8 prompts
    assert m.teacher_work(S, "offline", 1) == 6.0 and m.teacher_work(S, "offline", 5) == 12.0  # capped at the whole set
    assert m.teacher_work(S, "on_policy", 5) == 0.0

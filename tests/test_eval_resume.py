"""`evaluate_models` without repeated teacher work: the same numbers as the per-model teacher pass, and a resume after a
crash that computes only the models still to do and writes the same report."""
import json, math
from pathlib import Path
import pytest
import qwen_kd.eval as ev
from qwen_kd.data import to_example, to_jsonl
from qwen_kd.demo import qwen_tokenizer, tiny_qwen2, TEACHER_ROWS
from qwen_kd.loss import shared_vocab

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("ev")
    exs = [to_example({"prompt": f"{i}+1?", "solution": f"\\boxed{{{i+1}}} since {i} plus one", "answer": str(i+1)}, "grpo")
           for i in range(4)]
    exs += [to_example({"instruction": "Echo.", "input": f"w{i}", "output": f"w{i} w{i}"}, "sft") for i in range(2)]
    (d/"val.jsonl").write_text(to_jsonl(exs))
    t_tok, s_tok = qwen_tokenizer("qwen2.5"), qwen_tokenizer("qwen1.5")
    loaded = {"teacher": (tiny_qwen2(3, vocab_size=TEACHER_ROWS), t_tok), "s1": (tiny_qwen2(0), s_tok),
              "s2": (tiny_qwen2(1), s_tok)}
    return d, exs, loaded

def cfg(d, out): return ev.EvalConfig(data=str(d/"val.jsonl"), out=str(d/out), max_new_tokens=4, batch_size=4)

def count_forwards(model):
    "Count `model`'s forward calls (an instance attribute shadows the class's forward)."
    calls, fwd = [], model.forward
    model.forward = lambda *a, **kw: calls.append(1) or fwd(*a, **kw)
    return calls

def test_same_numbers_as_a_teacher_pass_per_model(setup):
    d, exs, loaded = setup
    rep = ev.evaluate_models(cfg(d, "a"), loaded, progress=False)
    (t, t_tok) = loaded["teacher"]
    for name in ("s1", "s2"):  # the old path: the teacher's forward again for every model
        s, tok = loaded[name]
        old = ev.teacher_agreement(t, s, tok, exs, vocab_size=shared_vocab(t_tok, tok), batch_size=4)
        assert {k: rep["models"][name][k] for k in old} == old  # exactly: the same logits, chunks and sums
        assert old["kl_teacher_student"] > 0.01  # two different models
    old_self = ev.teacher_agreement(t, t, t_tok, exs, batch_size=4)  # what the skipped teacher-vs-itself pass gave
    assert {k: rep["models"]["teacher"][k] for k in old_self} == old_self == {"top1_agreement": 1.0, "kl_teacher_student": 0.0}
    assert not (d/"a"/".partial").exists()  # nothing left once the report is written

def test_resume_after_a_crash(setup, monkeypatch):
    d, exs, loaded = setup
    ref = ev.evaluate_models(cfg(d, "ref"), loaded, progress=False)
    real, seen, crash = ev.evaluate_model, [], [True]
    def crash_at_s2(model, tok, examples, *a, **kw):
        seen.append(a[4] if len(a) > 4 else kw.get("name"))
        if seen[-1] == "s2" and crash and crash.pop(): raise RuntimeError("killed")  # the first time only
        return real(model, tok, examples, *a, **kw)
    monkeypatch.setattr(ev, "evaluate_model", crash_at_s2)
    with pytest.raises(RuntimeError, match="killed"): ev.evaluate_models(cfg(d, "b"), loaded, progress=False)
    assert seen == ["teacher", "s1", "s2"]
    kept = sorted(p.name for p in (d/"b"/".partial").iterdir())
    assert {"s1.json", "teacher.json"} <= set(kept) and "s2.json" not in kept
    assert not (d/"b"/"report.json").exists()  # no report until every model is done
    seen.clear()
    t_calls = count_forwards(loaded["teacher"][0])
    try: rep = ev.evaluate_models(cfg(d, "b"), loaded, progress=False)
    finally: del loaded["teacher"][0].forward
    assert seen == ["s2"] and t_calls == []  # only the model still to do; the teacher's logits were kept on disk
    dump = lambda r: json.dumps(r, sort_keys=True)  # NaN-safe comparison
    assert dump({**rep, "data": ""}) == dump({**ref, "data": ""})
    for f in ("report.md", "hyp_s1.txt", "hyp_s2.txt", "generations_teacher.jsonl", "ref.txt"):
        assert (d/"b"/f).read_text() == (d/"ref"/f).read_text(), f
    assert not (d/"b"/".partial").exists()

def test_stale_partial_is_not_reused(setup, monkeypatch):
    d, exs, loaded = setup
    two = {k: loaded[k] for k in ("teacher", "s1")}
    real, seen = ev.evaluate_model, []
    monkeypatch.setattr(ev, "evaluate_model", lambda *a, **kw: seen.append(1) or real(*a, **kw))
    work = d/"c"/".partial"; work.mkdir(parents=True)
    (work/"s1.json").write_text(json.dumps({"key": "other settings", "metrics": {}, "hyps": [], "teacher_format": None}))
    rep = ev.evaluate_models(cfg(d, "c"), two, progress=False)
    assert len(seen) == 2 and not math.isnan(rep["models"]["s1"]["ppl"])  # s1 computed again, not read back

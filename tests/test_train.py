"The train stage as a user runs it: `qwen-kd train` in each mode and with LoRA / QLoRA students, and DDP over 2 processes."
import json, os, subprocess, sys
from pathlib import Path
import pytest
import yaml

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}

@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    "The demo's data and teacher stages (with a sampled logit cache), run once: a config every train test reuses."
    from qwen_kd.demo import build_demo_assets
    from qwen_kd.cli import main
    from qwen_kd.demo import demo_config
    out = tmp_path_factory.mktemp("pipe")
    cfg = demo_config(build_demo_assets(), out)
    cfg["data"]["size"] = 120
    cfg["teacher"].update(cache_logits="sample", cache_k=8)
    cfg["train"].update(max_steps=3, batch_size=4, logging_steps=1, max_length=96)
    p = out/"config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as e: main(["run", str(p), "--stages", "data,teacher"])
    assert e.value.code == 0
    return p, cfg

def train(p, capsys, *sets, seen: dict|None = None, monkeypatch=None):
    "Run `qwen-kd train`; with `seen`, also keep the trainer and a copy of its model's state as training starts."
    from qwen_kd.cli import main
    if seen is not None:
        from qwen_kd.train import KDTrainer
        real = KDTrainer.train
        def spy(self, *a, **k):
            seen["trainer"], seen["before"] = self, {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return real(self, *a, **k)
        monkeypatch.setattr(KDTrainer, "train", spy)
    with pytest.raises(SystemExit) as e: main(["train", "--config", str(p), *[a for s in sets for a in ("--set", s)]])
    so, se = capsys.readouterr()
    assert e.value.code == 0, se
    return json.loads(so.strip().splitlines()[-1])

def check_adapter(seen: dict, out: Path, cfg: dict, adapter: str):
    """Only the adapters trained: every base tensor (a QLoRA base's packed 4-bit weights and quantisation state included)
    is bit-identical after training. The merged model saved to `out` computes what the adapted model does: for LoRA
    within 1e-4 in logits (measured 6e-6, while the adapters moved the logits by 3.2). For QLoRA the trained model
    equals a fresh NF4 base + the saved adapter, and the merged model equals the fp32 base + that adapter, each within
    1e-4 (measured 0 and 5e-6); between the two lies only the NF4 rounding of the base, so |merged − adapted| is at
    most 1.5× what that rounding alone does to the untrained student (measured 0.31 vs 0.36; the adapters' effect is
    2.8). Checked to fail with the final norm left trainable, and with a merge that drops the adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from qwen_kd.models import load_causal_lm, quantization_config
    model = seen["trainer"].model.eval()
    after, before = model.state_dict(), seen["before"]
    base = [k for k in before if "lora_" not in k]
    assert sorted(after) == sorted(before) and 20 < len(base) < len(before)
    moved = [k for k in base if not torch.equal(before[k], after[k])]
    assert not moved, f"base tensors changed by training: {moved[:5]}"
    assert any(not torch.equal(before[k], after[k]) for k in before if "lora_B" in k), "the adapters did not train"
    if adapter == "qlora":  # the packed NF4 weights and their quantisation state are among the tensors compared
        assert any(k.endswith("quant_state.bitsandbytes__nf4") for k in base)
        assert any(before[k].dtype == torch.uint8 for k in base if k.endswith("base_layer.weight"))
    tok = AutoTokenizer.from_pretrained(out)
    x = tok(["Tom has 3 apples and gets 4 more. How many apples now? 3 + 4 = 7. The answer is 7.",
             "Mia has 9 pens and gives away 2. How many pens now?"], return_tensors="pt", padding=True)
    def logits(m):
        with torch.no_grad(): return m.eval()(**x).logits.float()
    student = cfg["train"]["student"]
    fp32 = lambda: AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32)
    merged, adapted, plain = logits(AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)), logits(model), logits(fp32())
    err = lambda a, b: (a - b).abs().max().item()
    effect = err(merged, plain)
    assert effect > 0.1, effect  # the adapters changed the model a lot more than any tolerance below
    if adapter == "lora":
        print(f"lora: |merged - adapted| {err(merged, adapted):.2e}, adapters' effect {effect:.2f}")
        assert err(merged, adapted) <= 1e-4, err(merged, adapted)
        return
    nf4 = lambda: load_causal_lm(student, torch.float32, quantization_config("4bit", torch.float32))
    fresh = logits(PeftModel.from_pretrained(nf4(), out/"adapter"))
    fp32_adapted = logits(PeftModel.from_pretrained(fp32(), out/"adapter"))
    rounding = err(plain, logits(nf4()))
    print(f"qlora: |adapted - NF4 base + adapter| {err(adapted, fresh):.2e}, |merged - fp32 base + adapter| "
          f"{err(merged, fp32_adapted):.2e}, |merged - adapted| {err(merged, adapted):.3f}, NF4 rounding alone "
          f"{rounding:.3f}, adapters' effect {effect:.2f}")
    assert err(adapted, fresh) <= 1e-4 and err(merged, fp32_adapted) <= 1e-4, (err(adapted, fresh), err(merged, fp32_adapted))
    assert err(merged, adapted) <= 1.5 * rounding, (err(merged, adapted), rounding)

@pytest.mark.parametrize("sets", [("mode=online",), ("mode=offline",), ("mode=seqkd",),
                                  ("mode=on_policy", "lmbda=1.0", "on_policy_max_new_tokens=12"),
                                  ("adapter=lora",), ("adapter=qlora", "optim=adamw_bnb_8bit")],
                         ids=["online", "offline", "seqkd", "on_policy", "lora", "qlora"])
def test_train_cli_modes(pipeline, capsys, tmp_path, monkeypatch, sets):
    p, cfg = pipeline
    out, seen = tmp_path/"student", {}
    last = train(p, capsys, *sets, f"output_dir={out}", seen=seen, monkeypatch=monkeypatch)
    assert last["step"] == 3, last
    saved = json.loads((out/"kd_config.json").read_text())
    for s in sets:
        k, v = s.split("=")
        assert str(saved[k]) == v or saved[k] == yaml.safe_load(v)
    assert (out/"model.safetensors").exists() and (out/"tokenizer.json").exists()
    if "adapter" in sets[0]:
        assert (out/"adapter"/"adapter_config.json").exists()
        check_adapter(seen, out, cfg, sets[0].split("=")[1])

def four_examples(cfg: dict, tmp_path: Path) -> Path:
    "The first 4 examples of the prepared mix, as their own file: one global batch for the multi-process tests."
    data = tmp_path/"four.jsonl"
    data.write_text("".join(Path(cfg["data"]["out"], "train.jsonl").read_text().splitlines(keepends=True)[:4]))
    return data

def test_ddp_two_processes_same_loss(pipeline, tmp_path):
    """`accelerate launch` with 2 CPU processes × batch 2 logs the losses of 1 process × batch 4: the global batch is
    the whole 4-example set, so sampling order and sharding cannot differ, and gradients must average exactly."""
    p, cfg = pipeline
    data = four_examples(cfg, tmp_path)
    script = tmp_path/"kd.py"
    script.write_text(
        "import sys, json\nfrom qwen_kd.pipeline import load_config\nfrom qwen_kd.train import train_student\n"
        "from dataclasses import replace\n"
        f"cfg = load_config({str(p)!r})\n"
        f"tr = replace(cfg['train'], data={str(data)!r}, output_dir=sys.argv[1], batch_size=int(sys.argv[2]), max_steps=4, logging_steps=1, lr=1e-3)\n"
        "t = train_student(tr, cfg['teacher'])\n"
        "if t.is_world_process_zero(): print('LOSSES', json.dumps([[l['loss'], l['kd'], l['ce']] for l in t.state.log_history if 'loss' in l]))\n")
    def losses(r):
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(next(l for l in r.stdout.splitlines() if l.startswith("LOSSES"))[6:])
    one = losses(subprocess.run([sys.executable, str(script), str(tmp_path/"one"), "4"], env=ENV, capture_output=True, text=True, timeout=600))
    two = losses(subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                                 "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                                 str(script), str(tmp_path/"two"), "2"], env=ENV, capture_output=True, text=True, timeout=600))
    assert len(one) == len(two) == 4
    assert all(abs(a - b) < 1e-4 * max(1.0, abs(a)) for x, y in zip(one, two) for a, b in zip(x, y)), (one, two)

@pytest.mark.parametrize("name", ["accelerate_fsdp.yaml", "accelerate_zero2.yaml"])
def test_accelerate_configs_load(name):
    "The example multi-GPU configs are valid for accelerate's own loader (which refuses unknown keys)."
    from accelerate.commands.config.config_args import load_config_from_file
    root = Path(__file__).parent.parent
    c = load_config_from_file(str(root/"configs"/name))
    assert c.distributed_type.value in ("FSDP", "DEEPSPEED")
    if c.distributed_type.value == "DEEPSPEED":
        ds = json.loads((root/c.deepspeed_config["deepspeed_config_file"]).read_text())
        assert ds["zero_optimization"]["stage"] == 2 and ds["gradient_accumulation_steps"] == "auto"
    else: assert c.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "Qwen2DecoderLayer"

def test_report_to_tensorboard(pipeline, capsys, tmp_path):
    "`report_to: tensorboard` writes the KD and CE components next to the loss."
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    p, cfg = pipeline
    out = tmp_path/"tb"
    train(p, capsys, "mode=online", "report_to=tensorboard", "max_steps=2", f"output_dir={out}")
    events = list(out.rglob("events.out.tfevents*"))
    assert events, list(out.rglob("*"))
    acc = EventAccumulator(str(events[0].parent)); acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/kd", "train/ce"} <= tags, tags
    assert len(acc.Scalars("train/kd")) == 2

def test_fp16_overflow_is_skipped_then_aborts(tmp_path):
    """`precision: fp16`'s failure mode, for real: a student whose activations exceed fp16's range (final norm × 1e5)
    trains finite in fp32, and under fp16 mixed precision (autocast, fp16 loss matmul) every step's loss is inf/NaN:
    each is skipped with a warning naming the examples, `max_nonfinite` in a row abort with the fp16 advice, and no
    weight moves. `train_student` refuses `precision: fp16` without a GPU, so this passes the Trainer's own `fp16=True`
    (torch autocasts to fp16 on CPU too)."""
    import warnings
    import torch
    from qwen_kd.core import QwenKDError
    from qwen_kd.data import to_example, to_jsonl
    from qwen_kd.demo import STUDENT_ROWS, qwen_tokenizer, tiny_qwen2
    from qwen_kd.train import KDConfig, train_student
    tok = qwen_tokenizer("qwen1.5")
    (tmp_path/"train.jsonl").write_text(to_jsonl([to_example({"prompt": f"What is {i} + {i}?", "solution": f"{2*i}"}, "grpo")
                                                 for i in range(8)]))
    def run(out, fp16, **kw):
        m = tiny_qwen2(vocab_size=STUDENT_ROWS)
        with torch.no_grad(): m.model.norm.weight.mul_(1e5)  # hidden states ~1e5 > 65504, fp16's largest value
        w0 = {n: p.detach().clone() for n, p in m.named_parameters()}
        cfg = KDConfig(student="-", data=str(tmp_path/"train.jsonl"), target="reference", mode="seqkd", output_dir=str(tmp_path/out),
                       batch_size=4, grad_accum=1, lr=1e-3, logging_steps=1, save_steps=100, max_nonfinite=2, **kw)
        return m, w0, lambda: train_student(cfg, student=m, tok=tok, fp16=fp16)
    m, w0, go = run("fp32", False, max_steps=1)
    tr = go()
    assert tr.skipped_steps == 0 and 1e3 < tr.state.log_history[0]["loss"] < float("inf"), tr.state.log_history
    m, w0, go = run("fp16", True, max_steps=4)
    with warnings.catch_warnings(record=True) as ws, pytest.raises(QwenKDError) as e:
        warnings.simplefilter("always"); go()
    assert "NaN/inf for 2 steps in a row" in str(e.value) and "fp32 instead of fp16" in str(e.value), e.value
    msgs = [str(w.message) for w in ws if "non-finite loss" in str(w.message)]
    assert [x.split(":")[0] for x in msgs] == ["step 1", "step 2"], msgs
    assert all(torch.equal(w0[n], p) for n, p in m.named_parameters()), "a skipped step moved a weight"

def test_nonfinite_on_one_rank_skips_the_step_on_both(pipeline, tmp_path):
    """The guard's multi-process branch: under `accelerate launch` with 2 CPU processes (gloo DDP), a NaN loss on rank 1
    alone at step 1 makes both ranks skip that step (the flag is summed over processes); step 2 trains on both, and the
    two replicas end bit-identical. Without the all-reduce rank 0 would step alone and the replicas would differ.
    logging_steps is 1, so rank 1 logs step 1 with no kd/ce of its own: `KDTrainer.log` must still join the reduce
    that rank 0 enters (it once skipped it, and the run hung), and step 1's kd/ce are rank 0's alone."""
    p, cfg = pipeline
    data = four_examples(cfg, tmp_path)
    script = tmp_path/"nan.py"
    script.write_text(
        "import sys, os, json, hashlib\nfrom dataclasses import replace\nfrom qwen_kd.pipeline import load_config\n"
        "from qwen_kd.train import KDTrainer, train_student\n"
        "real = KDTrainer._fused_loss\n"
        "def poisoned(self, model, inputs, alpha, n):\n"
        "    loss, *rest = real(self, model, inputs, alpha, n)\n"
        "    if self.accelerator.process_index == 1 and self.state.global_step == 0: loss = loss * float('nan')\n"
        "    return (loss, *rest)\n"
        "KDTrainer._fused_loss = poisoned\n"
        f"cfg = load_config({str(p)!r})\n"
        f"tr = replace(cfg['train'], data={str(data)!r}, output_dir=sys.argv[1], mode='seqkd', batch_size=2, max_steps=2, "
        "logging_steps=1, lr=1e-3, max_nonfinite=2)\n"
        "t = train_student(tr)\n"
        "h = hashlib.sha256(b''.join(q.detach().numpy().tobytes() for q in t.model.parameters())).hexdigest()\n"
        "os.write(1, ('RANK ' + json.dumps([t.accelerator.process_index, t.accelerator.num_processes, t.skipped_steps, "
        "t.state.global_step, h, [l.get('kd') for l in t.state.log_history if 'loss' in l]]) + '\\n').encode())  # one write: two ranks share the pipe\n")
    r = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                        str(script), str(tmp_path/"out")], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = sorted(json.loads(l[5:]) for l in r.stdout.splitlines() if l.startswith("RANK "))
    assert [x[:4] for x in ranks] == [[0, 2, 1, 2], [1, 2, 1, 2]], ranks  # rank, world size, skipped, steps
    assert ranks[0][4] == ranks[1][4], "the replicas diverged"
    assert ranks[0][5] == ranks[1][5] and len(ranks[0][5]) == 2 and None not in ranks[0][5], ranks  # kd logged twice
    assert "step 1: non-finite loss" in r.stderr, r.stderr[-3000:]

def test_precision_on_a_gpu_mocked(monkeypatch, tmp_path):
    """The train stage's GPU branches, on CPU with CUDA's presence mocked (TrainingArguments and the model load are
    stubbed: nothing runs on a GPU here): `precision: auto` is bf16 mixed precision on a bf16-capable GPU and fp16 on
    an older one, without `use_cpu`; `bf16-pure` keeps bf16 flags; a QLoRA student computes in that dtype."""
    import torch
    import qwen_kd.train as TR
    from qwen_kd.core import QwenKDError
    with pytest.raises(QwenKDError, match="precision fp16 needs a GPU"):  # the real CPU: refused before anything loads
        TR.train_student(TR.KDConfig(output_dir=str(tmp_path/"o"), precision="fp16"))
    monkeypatch.setattr(TR, "TrainingArguments", lambda **kw: kw)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    loads = []
    monkeypatch.setattr(TR, "load_causal_lm", lambda path, dt, q, **kw: loads.append((dt, q)) or "model")
    monkeypatch.setattr(TR, "with_adapter", lambda m, cfg: m)
    for bf16, want in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, bf16=bf16, **k: bf16)
        kw = TR.training_args(TR.KDConfig(output_dir=str(tmp_path), precision="auto"))
        assert (kw["bf16"], kw["fp16"], "use_cpu" in kw) == (bf16, not bf16, False), kw
        TR.load_student(TR.KDConfig(adapter="qlora")); assert loads[-1][0] == torch.float32
        assert loads[-1][1].bnb_4bit_compute_dtype == want
    kw = TR.training_args(TR.KDConfig(output_dir=str(tmp_path), precision="bf16-pure"))
    assert kw["bf16"] and not kw["fp16"]
    TR.load_student(TR.KDConfig(precision="bf16-pure")); assert loads[-1] == (torch.bfloat16, None)

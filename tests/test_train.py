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

def train(p, capsys, *sets):
    from qwen_kd.cli import main
    with pytest.raises(SystemExit) as e: main(["train", "--config", str(p), *[a for s in sets for a in ("--set", s)]])
    so, se = capsys.readouterr()
    assert e.value.code == 0, se
    return json.loads(so.strip().splitlines()[-1])

@pytest.mark.parametrize("sets", [("mode=online",), ("mode=offline",), ("mode=seqkd",),
                                  ("mode=on_policy", "lmbda=1.0", "on_policy_max_new_tokens=12"),
                                  ("adapter=lora",), ("adapter=qlora", "optim=adamw_bnb_8bit")],
                         ids=["online", "offline", "seqkd", "on_policy", "lora", "qlora"])
def test_train_cli_modes(pipeline, capsys, tmp_path, sets):
    p, cfg = pipeline
    out = tmp_path/"student"
    last = train(p, capsys, *sets, f"output_dir={out}")
    assert last["step"] == 3, last
    saved = json.loads((out/"kd_config.json").read_text())
    for s in sets:
        k, v = s.split("=")
        assert str(saved[k]) == v or saved[k] == yaml.safe_load(v)
    assert (out/"model.safetensors").exists() and (out/"tokenizer.json").exists()
    if "adapter" in sets[0]: assert (out/"adapter"/"adapter_config.json").exists()

def test_ddp_two_processes_same_loss(pipeline, tmp_path):
    """`accelerate launch` with 2 CPU processes × batch 2 logs the losses of 1 process × batch 4: the global batch is
    the whole 4-example set, so sampling order and sharding cannot differ, and gradients must average exactly."""
    p, cfg = pipeline
    data = tmp_path/"four.jsonl"
    data.write_text("".join(Path(cfg["data"]["out"], "train.jsonl").read_text().splitlines(keepends=True)[:4]))
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

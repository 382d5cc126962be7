"""A full disk inside training: the `Trainer`'s checkpoint write fails for real, in a child process whose files may
not grow past N bytes (`RLIMIT_FSIZE`, set once the first checkpoint is complete; SIGXFSZ ignored, so the write
gets EFBIG instead of the process being killed). The run must end with one `qwen-kd: error:` line, leave the
previous checkpoint intact and remove the half-written one, and `resume: true` must continue from the intact
checkpoint with the losses of an uninterrupted run (fp32, within 1e-5).

Two places to fail: inside `model.safetensors` (safetensors raises its own error) and inside `optimizer.pt`
(`torch.save` raises a RuntimeError); neither is an `OSError`, so the CLI recognises them by `disk_full`.
"""
import hashlib, json, os, subprocess, sys
from pathlib import Path
import pytest
import yaml

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}
CHILD = """import resource, signal, sys
import qwen_kd.pipeline as pl  # first, as in the `qwen-kd` command: the package quiets optional libraries' import logs
from transformers import TrainerCallback
limit = int(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process at the limit instead of failing the write

class DiskFills(TrainerCallback):
    "Once the first checkpoint is complete, no file may grow past `limit` bytes: the next checkpoint's write fails."
    def on_save(self, args, state, control, **kw):
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

train_student = pl.train_student
pl.train_student = lambda *a, **k: train_student(*a, callbacks=[DiskFills()], **k)
from qwen_kd.cli import main
main(sys.argv[2:])
"""

def qkd(*args, limit: int|None = None):
    "A real `qwen-kd` process; with `limit`, one whose files stop growing at `limit` bytes after its first checkpoint."
    pre = [CHILD, str(limit)] if limit else ["from qwen_kd.cli import main; main()"]
    return subprocess.run([sys.executable, "-c", *pre, *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=900)

@pytest.fixture(scope="module")
def work(tmp_path_factory):
    "A tiny student (20 MB of weights, 40 MB of optimizer state), its tokenizer, a prepared mix; and an uninterrupted run."
    from qwen_kd.demo import make_demo_data, qwen_tokenizer, tiny_qwen2
    from qwen_kd.data import DataConfig, prepare_data
    root = tmp_path_factory.mktemp("disk_full")
    tiny_qwen2(hidden=16, layers=1, heads=2, kv_heads=1, intermediate=32).save_pretrained(root/"student")
    qwen_tokenizer("qwen1.5").save_pretrained(root/"student")
    files = make_demo_data(root/"data", 60, 60)
    prepare_data(DataConfig(grpo=str(files["grpo"]), sft=str(files["sft"]), out=str(root/"mixed"), size=40))
    r = qkd("train", "--config", config(root, "ref"))
    assert r.returncode == 0, r.stderr[-3000:]
    return root

def config(root: Path, name: str) -> Path:
    "A 4-step fp32 run (CE on the data's replies), a checkpoint every 2 steps, a loss logged every step."
    c = {"train": {"student": str(root/"student"), "data": str(root/"mixed"/"train.jsonl"),
                   "output_dir": str(root/name/"student_kd"), "mode": "seqkd", "target": "reference", "max_steps": 4,
                   "save_steps": 2, "logging_steps": 1, "batch_size": 4, "grad_accum": 1, "max_length": 64,
                   "precision": "fp32", "lr": 1e-3, "seed": 0}}
    (root/f"{name}.yaml").write_text(yaml.safe_dump(c))
    return root/f"{name}.yaml"

def digest(folder: Path) -> dict:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

def losses(run: Path) -> dict:
    state = json.loads((run/"student_kd"/"checkpoint-4"/"trainer_state.json").read_text())
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}

@pytest.mark.parametrize("where", ["model.safetensors", "optimizer.pt"])
def test_disk_full_inside_checkpoint(work, where):
    "EFBIG in checkpoint-4's model or optimizer file: one line, checkpoint-2 intact, the resumed run's losses exact."
    ref = work/"ref"/"student_kd"
    size = {p.name: p.stat().st_size for p in (ref/"checkpoint-2").iterdir()}
    # the write of `where` is the first to cross the limit (the Trainer writes config, model, tokenizer, arguments,
    # optimizer, scheduler, RNG state, trainer state): half the model's size, or between it and the optimizer's
    limit = size["model.safetensors"] // 2 if where == "model.safetensors" else \
        (size["model.safetensors"] + size["optimizer.pt"]) // 2
    assert size["config.json"] < limit and (where == "model.safetensors" or
                                           max(s for n, s in size.items() if n != "optimizer.pt") < limit), size
    run = work/f"full_{where.split('.')[0]}"
    r = qkd("train", "--config", config(work, run.name), limit=limit)
    assert r.returncode == 2, r.stderr[-3000:]
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    out = run/"student_kd"
    assert lines == [f"qwen-kd: error: {out}: the disk is full (or a file size limit was reached) while saving "
                     "checkpoint-4 (removed); checkpoint-2 is the last complete checkpoint: free space, then rerun "
                     "with resume: true"], r.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2"]  # no half checkpoint, no lock, no final model
    kept = digest(out/"checkpoint-2")
    same = lambda d: {k: v for k, v in d.items() if k != "training_args.bin"}  # which pickles its output_dir
    assert same(kept) == same(digest(ref/"checkpoint-2"))  # intact: byte for byte the uninterrupted run's checkpoint-2
    r = qkd("train", "--config", config(work, run.name), "--set", "resume=true")
    assert r.returncode == 0, r.stderr[-3000:]
    assert digest(out/"checkpoint-2") == kept  # resumed from it, not rerun over it
    want, got = losses(work/"ref"), losses(run)
    assert sorted(got) == sorted(want) == [1, 2, 3, 4]
    for step in (3, 4): assert abs(got[step] - want[step]) < 1e-5, (step, got[step], want[step])
    assert (out/"model.safetensors").exists() and (out/"kd_config.json").exists()
    print(f"\ndisk full in {where} of checkpoint-4 (limit {limit:,} bytes): one line, checkpoint-2 intact, resumed "
          f"losses of steps 3-4 within {max(abs(got[s] - want[s]) for s in (3, 4)):.1e} of the uninterrupted run's")

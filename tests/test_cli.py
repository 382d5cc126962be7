"The `qwen-kd` command as a user runs it: exit codes, one-line errors, no partial output, and the whole demo."
import json, os, subprocess, sys
from pathlib import Path
import pytest

def qkd(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", "from qwen_kd.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env={**os.environ, "HF_HUB_OFFLINE": "1"})

def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("qwen-kd: error:"), r.stderr
    for n in needles: assert n in lines[0], (n, lines[0])
    assert "Traceback" not in r.stderr

@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    from qwen_kd.demo import make_demo_data
    return make_demo_data(tmp_path_factory.mktemp("data"), 100, 100)

def test_missing_input_exits_2(tmp_path):
    r = qkd("data", "--grpo", "nope.json", "--sft", "nope.json", "--out", "out_dir", cwd=tmp_path)
    one_line_error(r, "nope.json")
    assert not (tmp_path/"out_dir").exists()

def test_invalid_json_names_file_and_line(tmp_path, demo_files):
    bad = tmp_path/"bad.json"
    bad.write_text('[\n {"prompt": "a", "answer": "1"},\n {"prompt": "b", "answer": }\n]')
    r = qkd("data", "--grpo", bad, "--sft", demo_files["sft"], "--out", tmp_path/"out")
    one_line_error(r, "bad.json:3", "invalid JSON")
    assert not (tmp_path/"out").exists()

@pytest.mark.parametrize("opt,val,msg", [("--grpo-share", "1.5", "grpo_share must be in [0, 1]"),
                                         ("--val-frac", "1", "val_frac must be in [0, 1)")])
def test_bad_values_exit_2(tmp_path, demo_files, opt, val, msg):
    r = qkd("data", "--grpo", demo_files["grpo"], "--sft", demo_files["sft"], "--out", tmp_path/"out", opt, val)
    one_line_error(r, msg)
    assert not (tmp_path/"out").exists()

def test_data_matches_library(tmp_path, demo_files):
    from qwen_kd.data import DataConfig, prepare_data
    r = qkd("data", "--grpo", demo_files["grpo"], "--sft", demo_files["sft"], "--out", tmp_path/"cli", "--seed", "3")
    assert r.returncode == 0, r.stderr
    prepare_data(DataConfig(grpo=str(demo_files["grpo"]), sft=str(demo_files["sft"]), out=str(tmp_path/"lib"), seed=3))
    for f in ("train.jsonl", "val.jsonl", "stats.json"):
        assert (tmp_path/"cli"/f).read_bytes() == (tmp_path/"lib"/f).read_bytes(), f
    st = json.loads((tmp_path/"cli"/"stats.json").read_text())
    from qwen_kd.data import mix_size
    n = mix_size(st["available"]["grpo"], st["available"]["sft"], 0.7)  # the largest mix both sources allow
    assert st["counts"]["grpo"] == round(0.7 * n) and st["counts"]["sft"] == n - round(0.7 * n)
    assert st["counts"]["grpo"] == st["available"]["grpo"]  # GRPO is the scarce source here: all of it is used

@pytest.mark.parametrize("cmd", ["data", "teacher", "train", "eval", "run", "demo", "vram"])
def test_help(cmd):
    r = qkd(cmd, "--help")
    assert r.returncode == 0 and "usage: qwen-kd " + cmd in r.stdout

def test_config_typo_exits_2(tmp_path):
    (tmp_path/"c.yaml").write_text("train:\n  alhpa: 0.5\n")
    one_line_error(qkd("run", tmp_path/"c.yaml"), "c.yaml", "unknown key 'alhpa'", "did you mean 'alpha'?")
    one_line_error(qkd("train", "--config", tmp_path/"missing.yaml"), "missing.yaml: config file not found")

def test_missing_model_dir_exits_2(tmp_path, demo_files):
    r = qkd("data", "--grpo", demo_files["grpo"], "--sft", demo_files["sft"], "--out", tmp_path/"mixed")
    (tmp_path/"c.yaml").write_text(f"data:\n  out: {tmp_path/'mixed'}\nteacher:\n  base: {tmp_path/'no_model'}\n"
                                   f"  quantization: none\n  out: {tmp_path/'t.jsonl'}\n")
    one_line_error(qkd("teacher", "--config", tmp_path/"c.yaml"), "no_model: model directory not found")
    assert not (tmp_path/"t.jsonl").exists()

def test_demo_end_to_end(tmp_path):
    "`qwen-kd demo` runs every stage and reports the four metrics for the three models."
    r = qkd("demo", "--out", tmp_path/"demo")
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((tmp_path/"demo"/"eval"/"report.json").read_text())
    assert set(rep["models"]) == {"teacher", "student_before", "student_after"}
    for m in rep["models"].values():
        assert {"bleu", "rougeL", "ppl", "answer_accuracy"} <= set(m)
    from qwen_kd.data import read_jsonl, prompt_messages
    exs = {e["id"]: e for e in read_jsonl(tmp_path/"demo"/"mixed"/"train.jsonl")}
    outs = read_jsonl(tmp_path/"demo"/"teacher"/"outputs.jsonl")
    assert sorted(o["id"] for o in outs) == sorted(exs)  # every train example labelled exactly once
    for o in outs:  # completions only: the prompt never leaks into teacher_output
        assert prompt_messages(exs[o["id"]])[-1]["content"] not in o["teacher_output"]
    assert (tmp_path/"demo"/"student_kd"/"model.safetensors").exists()
    assert (tmp_path/"demo"/"eval"/"metrics.png").exists()

def test_eval_with_models_flag(tmp_path):
    "`qwen-kd eval --models name=BASE,... --data val.jsonl` needs no config and writes the report."
    from qwen_kd.demo import tiny_qwen2, qwen_tokenizer
    from qwen_kd.data import to_example, to_jsonl
    for name, seed in (("a", 0), ("b", 1)):
        tiny_qwen2(seed).save_pretrained(tmp_path/name); qwen_tokenizer("qwen1.5").save_pretrained(tmp_path/name)
    exs = [to_example({"prompt": f"{i}+1?", "solution": f"\\boxed{{{i+1}}}", "answer": str(i + 1)}, "grpo") for i in range(3)]
    (tmp_path/"val.jsonl").write_text(to_jsonl(exs))
    r = qkd("eval", "--models", f"teacher={tmp_path/'a'},student={tmp_path/'b'}", "--data", tmp_path/"val.jsonl",
            "--out", tmp_path/"ev", "--set", "max_new_tokens=3")
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((tmp_path/"ev"/"report.json").read_text())
    assert set(rep["models"]) == {"teacher", "student"} and rep["models"]["teacher"]["top1_agreement"] == 1.0
    one_line_error(qkd("eval", "--models", "nobase"), "eval needs --config")

def test_vram_cli(tmp_path):
    "qwen-kd vram reads the YAML alone (no data, no weights) and says what fits; a bad value is one line, exit 2."
    cfg = Path(__file__).parent.parent/"configs"/"qwen2.5-7b-lora_to_qwen1.5-1.8b.yaml"
    lean = ("--set", "precision=bf16-pure", "--set", "optim=adamw_bnb_8bit", "--teacher-lora-rank", "64")
    r = qkd("vram", "--config", cfg, "--gpu-gib", "24", *lean)  # the shipped config trains seqkd
    assert r.returncode == 0, r.stderr
    assert "seqkd: fits a 24 GiB card" in r.stdout and "generation:" in r.stdout and "eval:" in r.stdout
    r = qkd("vram", "--config", cfg, "--gpu-gib", "24", *lean, "--set", "mode=online", "--set", "chunk_size=256",
            "--set", "grad_accum=1")
    assert r.returncode == 0 and "online: fits a 24 GiB card" in r.stdout, r.stderr
    one_line_error(qkd("vram", "--config", cfg, "--set", "precision=fp8"), "precision must be auto, fp32, bf16, fp16 or bf16-pure, got 'fp8'")

def test_data_with_config(tmp_path, demo_files):
    "`qwen-kd data --config` reads the data section like the other stages; --set and flags override it, in that order."
    cfg = tmp_path/"run.yaml"
    cfg.write_text(f"data:\n  grpo: {demo_files['grpo']}\n  sft: {demo_files['sft']}\n  out: {tmp_path/'mixed'}\n"
                   "  val_frac: 0.3\n  seed: 1\n")
    r = qkd("data", "--config", cfg, "--set", "seed=3", "--val-frac", "0.2")
    assert r.returncode == 0, r.stderr
    st = json.loads((tmp_path/"mixed"/"stats.json").read_text())
    assert st["seed"] == 3  # --set over the file
    n = st["counts"]["train"] + st["counts"]["val"]
    assert abs(st["counts"]["val"] - 0.2 * n) <= 2  # the flag over the file's 0.3
    one_line_error(qkd("data", "--config", cfg, "--mode", "halves"), "invalid choice: 'halves'")

def test_config_field_becomes_a_flag():
    "A field added to a config dataclass shows up as a flag, with its help, without touching the CLI."
    from dataclasses import dataclass
    from qwen_kd.core import knob
    from qwen_kd.train import KDConfig
    from qwen_kd.cli import SECTIONS, make_parser, flag_values
    @dataclass
    class MyKD(KDConfig):
        warmup_ratio: float = knob(0.05, "share of the run spent warming up the learning rate")
        schedule: str = knob("linear", "learning-rate schedule", ("linear", "cosine"))
    p = make_parser({**SECTIONS, "train": MyKD})
    a = p.parse_args(["train", "--warmup-ratio", "0.1", "--schedule", "cosine", "--alpha", "0.3", "--no-fused"])
    assert flag_values(a, MyKD) == {"warmup_ratio": 0.1, "schedule": "cosine", "alpha": 0.3, "fused": False}
    help_text = p._subparsers._group_actions[0].choices["train"].format_help()
    assert "--warmup-ratio" in help_text and "share of the run spent warming up" in help_text
    assert "{linear,cosine}" in help_text
    assert "--warmup-ratio" not in make_parser()._subparsers._group_actions[0].choices["train"].format_help()

"""The GPU memory pre-flight: before anything is loaded, `qwen-kd train | teacher | eval` compare `qwen_kd.vram`'s
estimate with the GPU's free memory and stop in one line (the estimate, the free memory, the cheapest settings that
fit) when it does not fit; `--force` runs anyway; without CUDA nothing is checked. Tested on CPU with the free memory
injected (`qwen_kd.pipeline.gpu_free_memory` replaced); the models are the shipped defaults, whose shapes
`qwen_kd.vram` knows without any file.
"""
import re
import pytest
import yaml

GIB = 2**30
LINE = re.compile(r"qwen-kd: error: (\w+) needs ~([\d.]+) GiB of GPU memory at its peak \(([\w ]+); qwen_kd.vram's "
                  r"estimate\) but ([\d.]+) GiB is free; (.+); --force runs it anyway")

@pytest.fixture
def cli(tmp_path, monkeypatch, capfd):
    "Run `main` in a scratch folder with `free` GiB free on the (pretended) GPU; returns (exit code, stderr)."
    import qwen_kd.pipeline
    from qwen_kd.cli import main
    monkeypatch.chdir(tmp_path)
    def run(argv, free):
        monkeypatch.setattr(qwen_kd.pipeline, "gpu_free_memory", lambda: None if free is None else int(free * GIB))
        capfd.readouterr()
        with pytest.raises(SystemExit) as e: main(argv)
        return e.value.code, capfd.readouterr().err
    return run

def config(tmp_path, **sections) -> str:
    "The shipped defaults (a 7B teacher in 8 bits, a 1.8B student in full), with `sections` merged in."
    c = {"data": {"out": "mixed"}, "teacher": {}, "train": {}, "eval": {}}
    for k, v in sections.items(): c[k].update(v)
    (tmp_path/"c.yaml").write_text(yaml.safe_dump(c))
    return str(tmp_path/"c.yaml")

def refusal(code, err) -> re.Match:
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1, (code, err[-2000:])
    m = LINE.fullmatch(lines[0])
    assert m, lines[0]
    return m

def test_preflight_train_refused_with_the_cheapest_fit(cli, tmp_path):
    "22 GiB free for the defaults' training: refused before loading, naming a fit; that fit passes the check."
    code, err = cli(["train", "--config", config(tmp_path)], free=22)
    m = refusal(code, err)
    stage, need, phase, free, fix = m.groups()
    assert stage == "train" and float(need) > 22 and free == "22.0" and fix.startswith("it fits with ")
    assert not (tmp_path/"student_kd").exists()  # nothing made: not even the output folder
    knobs = re.fullmatch(r"it fits with (.+) \(~([\d.]+) GiB\)", fix)
    assert knobs and float(knobs[2]) <= 22, fix
    sets = [a for kv in knobs[1].split(", ") for a in ("--set", kv.replace("teacher.", ""))
            if not kv.startswith("teacher.")]
    teacher = {k.split(".", 1)[1].split("=")[0]: k.split("=")[1] for k in knobs[1].split(", ") if k.startswith("teacher.")}
    code, err = cli(["train", "--config", config(tmp_path, teacher=teacher), *sets], free=22)
    assert code == 2 and "GPU memory" not in err, err  # past the check: it stops at the (absent) model instead

def test_preflight_force_skips_the_check(cli, tmp_path):
    "`--force` runs a stage the estimate says will not fit (it stops here only because the model is not downloaded)."
    code, err = cli(["train", "--config", config(tmp_path), "--force"], free=4)
    assert code == 2 and "GPU memory" not in err and "Qwen/Qwen1.5-1.8B" in err, err

def test_preflight_teacher(cli, tmp_path):
    "The teacher stage: generation with the 7B teacher in 8 bits does not fit 8 GiB; 4 bits does."
    m = refusal(*cli(["teacher", "--config", config(tmp_path)], free=8))
    assert m[1] == "teacher" and m[3] == "generate" and m[5].startswith("it fits with quantization=4bit"), m[0]
    code, err = cli(["teacher", "--config", config(tmp_path, teacher={"quantization": "4bit"})], free=8)
    assert code == 2 and "GPU memory" not in err, err

def test_preflight_eval(cli, tmp_path):
    "Evaluation holds the teacher (unquantised by default) beside each model: an 8-bit teacher fits 22 GiB."
    m = refusal(*cli(["eval", "--config", config(tmp_path)], free=22))
    assert m[1] == "eval" and "models.teacher.quantization=8bit" in m[5], m[0]

def test_preflight_nothing_fits(cli, tmp_path):
    "2 GiB: no knob the estimate knows is enough; still one line, and --force is offered."
    m = refusal(*cli(["train", "--config", config(tmp_path)], free=2))
    assert m[5] == "no setting the estimate knows makes it fit: free the GPU or use a larger one", m[0]

def test_preflight_run_checks_before_the_first_stage(cli, tmp_path):
    "`qwen-kd run`: every stage is checked before the first runs, so the data stage does no work for a doomed run."
    from qwen_kd.demo import make_demo_data
    files = make_demo_data(tmp_path/"d", 20, 20)
    code, err = cli(["run", config(tmp_path, data={"grpo": str(files["grpo"]), "sft": str(files["sft"])}),
                     "--stages", "data,train"], free=22)
    assert refusal(code, err)[1] == "train" and not (tmp_path/"mixed").exists()

def test_preflight_skipped_without_cuda_or_estimate(cli, tmp_path):
    "No CUDA (free None): no check. A model the estimator cannot read (not downloaded, not local): no check either."
    import torch
    from qwen_kd.pipeline import gpu_free_memory
    if not torch.cuda.is_available(): assert gpu_free_memory() is None
    code, err = cli(["train", "--config", config(tmp_path)], free=None)
    assert code == 2 and "GPU memory" not in err, err
    code, err = cli(["train", "--config", config(tmp_path, train={"student": "someone/unknown-model"})], free=1)
    assert code == 2 and "GPU memory" not in err and "someone/unknown-model" in err, err
    code, err = cli(["teacher", "--config", config(tmp_path, teacher={"backend": "vllm"})], free=1)
    assert "GPU memory" not in err, err  # vLLM takes its own share of the GPU: not estimated here

def test_preflight_library_call(tmp_path):
    "`run_pipeline(..., free=bytes)` checks against the given free memory; the data stage alone is never checked."
    from qwen_kd.core import QwenKDError
    from qwen_kd.pipeline import load_config, run_pipeline
    cfg = load_config("c.yaml", {"data": {"out": str(tmp_path/"m")}, "train": {"output_dir": str(tmp_path/"s")}})
    with pytest.raises(QwenKDError, match=r"^train needs ~"): run_pipeline(cfg, ("train",), free=10 * GIB)
    with pytest.raises(QwenKDError, match="file not found"): run_pipeline(cfg, ("data",), free=1)
    assert not (tmp_path/"s").exists() and not (tmp_path/"m").exists()

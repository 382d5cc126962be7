"Teacher generation as a user runs it: killed mid-run and resumed, and split over two processes."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import yaml

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}

@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    "A tiny random Qwen2 teacher saved with its tokenizer, and 40 prompts of varied length."
    from qwen_kd.demo import tiny_qwen2, qwen_tokenizer, TEACHER_ROWS
    from qwen_kd.data import to_example, to_jsonl
    d = tmp_path_factory.mktemp("teacher")
    tiny_qwen2(vocab_size=TEACHER_ROWS).save_pretrained(d/"base"); qwen_tokenizer("qwen2.5").save_pretrained(d/"base")
    exs = [to_example({"prompt": f"Tom has {i} apples" + " and a pear" * (i % 4) + ". How many?"}, "grpo") for i in range(40)]
    (d/"train.jsonl").write_text(to_jsonl(exs))
    return d

def write_config(d: Path, out: str, **teacher) -> Path:
    t = {"base": str(d/"base"), "quantization": "none", "data": str(d/"train.jsonl"), "out": str(d/out),
         "max_new_tokens": 24, "batch_size": 2, **teacher}
    p = d/f"{out.replace('/', '_')}.yaml"
    p.write_text(yaml.safe_dump({"data": {"out": str(d/"mixed")}, "teacher": t}))
    return p

def qkd_teacher(cfg: Path, **kw):
    return subprocess.Popen([sys.executable, "-c", "from qwen_kd.cli import main; main()", "teacher", "--config", str(cfg)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

def records(path: Path) -> dict:
    lines = path.read_text().splitlines()
    ids = [json.loads(l)["id"] for l in lines]
    assert len(ids) == len(set(ids)), "an id appears twice"
    return {json.loads(l)["id"]: json.loads(l) for l in lines}

def test_sigkill_then_resume_equals_uninterrupted(teacher_dir):
    d = teacher_dir
    ref = qkd_teacher(write_config(d, "ref/outputs.jsonl"))
    assert ref.wait(300) == 0, ref.stderr.read()
    out = d/"killed/outputs.jsonl"
    cfg = write_config(d, "killed/outputs.jsonl")
    p, t0 = qkd_teacher(cfg), time.time()
    while not (out.exists() and out.read_text().count("\n") >= 1):
        assert p.poll() is None, "finished before it could be killed: " + p.stderr.read()
        assert time.time() - t0 < 300; time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    partial = out.read_text().count("\n")
    assert 1 <= partial < 40, partial
    r = qkd_teacher(cfg); so, se = r.communicate(timeout=300)
    assert r.returncode == 0, se
    assert json.loads(so.strip().splitlines()[-1])["resumed"] == partial
    got, want = records(out), records(d/"ref/outputs.jsonl")
    assert len(got) == 40 and got == want

def test_two_processes_equal_one(teacher_dir, tmp_path):
    # `accelerate launch --cpu` starts one process whatever --num_processes says (accelerate 1.15); the torchrun
    # launcher behind --multi_gpu starts two, and on a machine without CUDA they join over gloo (MULTI_CPU).
    d = teacher_dir
    script = tmp_path/"label.py"
    script.write_text("import sys\nfrom qwen_kd.teacher import TeacherConfig, generate_pseudo_labels\n"
                      f"cfg = TeacherConfig(base={str(d/'base')!r}, quantization='none', data={str(d/'train.jsonl')!r}, "
                      "out=sys.argv[1], max_new_tokens=8, batch_size=4)\n"
                      "print(generate_pseudo_labels(cfg, progress=False))\n")
    one = subprocess.run([sys.executable, str(script), str(tmp_path/"one/outputs.jsonl")], env=ENV, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          str(script), str(tmp_path/"two/outputs.jsonl")], env=ENV, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "'generated': 40" in two.stdout, two.stdout
    assert not list((tmp_path/"two").glob("*.rank*")), "shards left behind"
    lines = (tmp_path/"two/outputs.jsonl").read_text().splitlines()
    assert records(tmp_path/"two/outputs.jsonl") == records(tmp_path/"one/outputs.jsonl")
    order = [json.loads(l)["id"] for l in lines]
    assert order == [json.loads(l)["id"] for l in (d/"train.jsonl").read_text().splitlines()]

"""One folder, one run: `qwen-kd data | teacher | train | eval` hold their output folder through `.qwen-kd.lock`
(pid, host, start time, command, and an OS lock). Tested with two real processes: a holder started as its own
process (through the same `hold_folder` the stages use), then the CLI on the same folder — refused in one line that
names the holder; the holder SIGKILLed — its stale lock taken over with a one-line warning, and released at the end.
"""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest
import yaml

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
LOCK = ".qwen-kd.lock"
HOLDER = """import sys, time
from qwen_kd.core import hold_folder
with hold_folder(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""

def qkd(*args, cwd=None):
    "A real `qwen-kd` process."
    return subprocess.run([sys.executable, "-c", "from qwen_kd.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600)

@pytest.fixture
def holder():
    "Start processes that hold a folder; yields a function folder → Popen (started once the lock is taken)."
    procs = []
    def start(folder):
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=ENV)
        procs.append(p)
        assert p.stdout.readline().strip() == "held", p.stderr.read()
        return p
    yield start
    for p in procs:
        if p.poll() is None: p.kill()
        p.wait()

@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    from qwen_kd.demo import make_demo_data
    return make_demo_data(tmp_path_factory.mktemp("data"), 40, 40)

def error_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("qwen-kd: error: "), err[-3000:]
    assert "Traceback" not in err
    return lines[0]

def test_lock_two_processes_data(tmp_path, data_files, holder):
    "A live holder: `qwen-kd data` on its folder is refused, naming it; SIGKILLed: its lock is taken over, then released."
    out = tmp_path/"mixed"
    h = holder(out)
    info = json.loads((out/LOCK).read_text())
    assert info["pid"] == h.pid and info["host"] == socket.gethostname() and info["started"] and "command" in info
    args = ("data", "--grpo", data_files["grpo"], "--sft", data_files["sft"], "--out", out)
    r = qkd(*args)
    assert r.returncode == 2, r.stderr
    line = error_line(r.stderr)
    assert f"{out}: another qwen-kd run holds this folder (pid {h.pid} on {socket.gethostname()}, started" in line, line
    assert sorted(p.name for p in out.iterdir()) == [LOCK]  # the refused run wrote nothing
    h.send_signal(signal.SIGKILL); h.wait()
    assert (out/LOCK).exists()  # a killed holder cannot clean up: its lock is stale now
    r = qkd(*args)
    assert r.returncode == 0, r.stderr
    warn = [l for l in r.stderr.splitlines() if l.strip()]
    assert warn == [f"qwen-kd: warning: {out}: took over the lock of a run that is gone (pid {h.pid} on "
                    f"{socket.gethostname()}, started {info['started']}: {info['command']})"], r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["stats.json", "train.jsonl", "val.jsonl"]  # and released it

@pytest.mark.parametrize("stage", ["train", "teacher", "eval"])
def test_lock_two_processes_model_stages(stage, tmp_path, holder, capfd):
    "`qwen-kd train | teacher | eval` on a folder another process holds: refused in one line before loading anything."
    from qwen_kd.cli import main
    cfg = {"data": {"out": str(tmp_path/"mixed")}, "teacher": {"base": str(tmp_path/"no_model"), "out": str(tmp_path/"t"/"o.jsonl")},
           "train": {"student": str(tmp_path/"no_model"), "output_dir": str(tmp_path/"student_kd")},
           "eval": {"out": str(tmp_path/"ev")}}
    (tmp_path/"c.yaml").write_text(yaml.safe_dump(cfg))
    folder = {"train": tmp_path/"student_kd", "teacher": tmp_path/"t", "eval": tmp_path/"ev"}[stage]
    h = holder(folder)
    capfd.readouterr()
    with pytest.raises(SystemExit) as e: main([stage, "--config", str(tmp_path/"c.yaml")])
    line = error_line(capfd.readouterr().err)
    assert e.value.code == 2 and f"another qwen-kd run holds this folder (pid {h.pid} on" in line, line
    h.kill(); h.wait()
    # the holder gone, the same command gets past the lock: it fails on the missing model instead, and releases it
    with pytest.raises(SystemExit) as e: main([stage, "--config", str(tmp_path/"c.yaml")])
    err = capfd.readouterr().err
    assert e.value.code == 2 and "took over the lock" in err and "holds this folder" not in err, err
    assert not (folder/LOCK).exists()

def test_lock_released_on_error(tmp_path, data_files):
    "A run that fails (bad input) releases the folder and removes the folder it made for the lock: nothing is left."
    from qwen_kd.core import lock_holder
    r = qkd("data", "--grpo", tmp_path/"nope.json", "--sft", data_files["sft"], "--out", tmp_path/"new"/"mixed")
    assert r.returncode == 2 and "nope.json: file not found" in error_line(r.stderr)
    assert not (tmp_path/"new").exists() and lock_holder(tmp_path/"new"/"mixed") is None

def test_lock_other_host_refused(tmp_path, data_files, capfd):
    "A lock written from another host (a shared disk) cannot be checked from here: refused, with the file to delete."
    from qwen_kd.cli import main
    out = tmp_path/"mixed"; out.mkdir()
    (out/LOCK).write_text(json.dumps({"pid": 4242, "host": "gpu-node-7", "started": "2025-01-01 10:00:00",
                                      "command": "qwen-kd data"}))
    with pytest.raises(SystemExit) as e:
        main(["data", "--grpo", str(data_files["grpo"]), "--sft", str(data_files["sft"]), "--out", str(out)])
    line = error_line(capfd.readouterr().err)
    assert e.value.code == 2 and "(pid 4242 on gpu-node-7, started 2025-01-01 10:00:00: qwen-kd data)" in line, line
    assert f"if that run is over, delete {out/LOCK}" in line
    assert sorted(p.name for p in out.iterdir()) == [LOCK]

def test_lock_sequential_stages_of_one_run(tmp_path, data_files):
    "`qwen-kd run` takes each stage's folder in turn: two stages writing one folder do not lock each other out."
    from qwen_kd.pipeline import load_config, run_pipeline
    from qwen_kd.core import hold_folder
    cfg = load_config("c.yaml", {"data": {"grpo": str(data_files["grpo"]), "sft": str(data_files["sft"]),
                                          "out": str(tmp_path/"shared")}})
    run_pipeline(cfg, ("data",), log=lambda *a: None)
    run_pipeline(cfg, ("data",), log=lambda *a: None)  # the same folder again, after the first run released it
    with hold_folder(tmp_path/"shared"): pass  # and free now
    assert sorted(p.name for p in (tmp_path/"shared").iterdir()) == ["stats.json", "train.jsonl", "val.jsonl"]

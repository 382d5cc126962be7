"""Crash tests: pull the plug at seeded random moments, resume, and compare with a run that was never interrupted.

Teacher generation, the logit cache and the data stage are each driven by one helper process (this file run as a
script: it imports torch and loads the tiny model once), which forks a worker per attempt and SIGKILLs it at a moment
drawn from a seeded RNG — after N new records, shards or temporary files appear, plus a random delay, so kills land
on writes and between them. Training is killed as a user would kill it: a real `qwen-kd train` process, after its
first checkpoint. Run with `pytest -s` to see the counts (kill points, rows checked).
"""
import json, os, random, signal, subprocess, sys, time, traceback
from pathlib import Path
import pytest
from qwen_kd.core import LOCK_NAME  # a killed run leaves its lock file behind

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
SEED, KILLS = 8, 20

# --- the helper process: fork a worker, kill it when a trigger fires --------------------------------------------

def _attempt(work: Path, target, trigger, delay: float, timeout: float = 300, rename: tuple|None = None) -> str:
    "Fork a worker running `target()`; SIGKILL it `delay` s after `trigger()` first holds, or at a rename. 'killed' or 'finished'."
    pid = os.fork()
    if pid == 0:  # the worker: silent, and it never returns into the caller's code
        null = os.open(os.devnull, os.O_WRONLY); os.dup2(null, 1); os.dup2(null, 2)
        if rename: _die_at_rename(*rename)
        code = 0
        try: target()
        except SystemExit as e: code = e.code or 0
        except BaseException: (work/"worker_error.txt").write_text(traceback.format_exc()); code = 1
        os._exit(code)
    t0 = time.time()
    while not trigger():
        done, status = os.waitpid(pid, os.WNOHANG)
        if done: return "killed" if os.WIFSIGNALED(status) else _ended(work, status)
        assert time.time() - t0 < timeout, "the worker hung"
        time.sleep(0.002)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return "killed" if os.WIFSIGNALED(status) else _ended(work, status)

def _die_at_rename(n: int, after: bool):
    "In a worker: SIGKILL itself at its `n`-th os.replace, just before or just after it — a kill exactly on a write boundary."
    real, calls = os.replace, [0]
    def replace(src, dst, **kw):
        calls[0] += 1
        if calls[0] == n and not after: os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, **kw)
        if calls[0] == n and after: os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace

def _ended(work: Path, status: int) -> str:
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (work/"worker_error.txt").read_text()
    return "finished"

def _teacher_setup(work: Path, n: int = 80):
    "A tiny random teacher and `n` prompts of varied length; returns (config maker, model, tokenizer)."
    import torch
    torch.set_num_threads(1)
    from qwen_kd.demo import tiny_qwen2, qwen_tokenizer, TEACHER_ROWS
    from qwen_kd.data import to_example, to_jsonl
    from qwen_kd.teacher import TeacherConfig, load_teacher
    tiny_qwen2(vocab_size=TEACHER_ROWS).save_pretrained(work/"base"); qwen_tokenizer("qwen2.5").save_pretrained(work/"base")
    exs = [to_example({"prompt": f"Tom has {i} apples" + " and a pear" * (i % 5) + ". How many?"}, "grpo") for i in range(n)]
    (work/"train.jsonl").write_text(to_jsonl(exs))
    cfg = lambda out: TeacherConfig(base=str(work/"base"), quantization="none", data=str(work/"train.jsonl"), out=str(out),
                                    max_new_tokens=8, batch_size=2, temperature=0.0)
    model, tok = load_teacher(cfg(work/"unused.jsonl"))
    return cfg, model, tok

def drive_teacher(work: Path, seed: int, kills: int, torn: int) -> dict:
    "Reference run, then `kills` killed-and-resumed runs into one file (`torn` of them leave a half line), then a last resume."
    from qwen_kd.teacher import generate_pseudo_labels
    cfg, model, tok = _teacher_setup(work)
    t0 = time.time(); generate_pseudo_labels(cfg(work/"ref"/"outputs.jsonl"), model, tok, progress=False)
    ref_lines, ref_s = (work/"ref"/"outputs.jsonl").read_text().splitlines(keepends=True), time.time() - t0
    out, rng = work/"killed"/"outputs.jsonl", random.Random(seed)
    torn_at = set(rng.sample(range(kills), torn))
    lines = lambda: out.read_bytes().count(b"\n") if out.exists() else 0
    log = []
    while sum(r == "killed" for r in log) < kills:
        start, need, delay = lines(), rng.randint(0, 4), rng.uniform(0, 0.08)  # after 0-4 new records, +0-80 ms
        log.append(_attempt(work, lambda: generate_pseudo_labels(cfg(out), model, tok, progress=False),
                            lambda: lines() >= start + need, delay))
        if log[-1] == "finished": break
        if sum(r == "killed" for r in log) - 1 in torn_at:  # as if the power went mid-write: half a record, no newline
            with open(out, "ab") as f: f.write(ref_lines[rng.randrange(len(ref_lines))].encode()[:rng.randint(1, 60)])
    last = generate_pseudo_labels(cfg(out), model, tok, progress=False)
    return {"kills": sum(r == "killed" for r in log), "finished_early": log.count("finished"), "torn": len(torn_at),
            "last_resumed": last["resumed"], "ref_seconds": round(ref_s, 2)}

def drive_cache(work: Path, seed: int, kills: int) -> dict:
    "The logit cache (mode sample, one example a shard): reference, then `kills` killed-and-resumed runs, then a last resume."
    from qwen_kd.data import read_jsonl
    from qwen_kd.teacher import generate_pseudo_labels, cache_teacher_logits, read_done
    cfg, model, tok = _teacher_setup(work)
    generate_pseudo_labels(cfg(work/"outputs.jsonl"), model, tok, progress=False)
    exs, outs = read_jsonl(work/"train.jsonl"), read_done(work/"outputs.jsonl")
    run = lambda d: cache_teacher_logits(model, tok, exs, outs, d, "sample", k=4, shard_size=1, teacher="tiny", seed=3)
    t0 = time.time(); run(work/"ref_cache"); ref_s = time.time() - t0
    cache, rng, log = work/"cache", random.Random(seed), []
    def shards():
        try: return len(json.loads((cache/"index.json").read_text())["shards"])
        except (FileNotFoundError, ValueError): return 0
    tmp_left = unindexed = 0  # kills that landed mid-write: a temporary left, or a shard renamed but not yet indexed
    while sum(r == "killed" for r in log) < kills:
        start, need, delay = shards(), rng.randint(0, 2), rng.uniform(0, 0.05)
        if len(log) % 2:  # on a write boundary: around the n-th rename (odd: a shard file, even: index.json)
            log.append(_attempt(work, lambda: run(cache), lambda: False, 0, rename=(rng.randint(1, 4), rng.random() < 0.5)))
        else: log.append(_attempt(work, lambda: run(cache), lambda: shards() >= start + need, delay))
        if log[-1] == "finished": break
        names = {p.name for p in cache.iterdir()} if cache.exists() else set()
        indexed = set(json.loads((cache/"index.json").read_text())["shards"]) if "index.json" in names else set()
        tmp_left += any(n.endswith(".tmp") for n in names)
        unindexed += bool({n for n in names if n.endswith(".safetensors")} - indexed)
    run(cache)
    return {"kills": sum(r == "killed" for r in log), "finished_early": log.count("finished"), "tmp_left": tmp_left,
            "unindexed": unindexed, "ref_seconds": round(ref_s, 2)}

def drive_data(work: Path, seed: int, kills: int, n: int) -> dict:
    "`qwen-kd data` on an `n`-line GRPO file: a reference, then `kills` runs killed at random or on a rename, each into a fresh folder."
    from qwen_kd.cli import main
    with open(work/"grpo.jsonl", "w") as f:
        for i in range(n): f.write(json.dumps({"prompt": f"Problem {i}: what is {i} times 7?", "solution": f"{i} * 7 = {i*7}", "answer": str(i * 7)}) + "\n")
    with open(work/"sft.jsonl", "w") as f:
        for i in range(n // 2): f.write(json.dumps({"instruction": f"Reverse word {i}.", "input": f"w{i}", "output": f"{i}w"}) + "\n")
    args = lambda out: ["data", "--grpo", str(work/"grpo.jsonl"), "--sft", str(work/"sft.jsonl"), "--out", str(out)]
    t0 = time.time(); _attempt(work, lambda: main(args(work/"ref")), lambda: False, 0); ref_s = time.time() - t0
    rng, states = random.Random(seed), []
    for i in range(kills):
        out = work/f"killed{i:02d}"
        rename = (rng.randint(1, 3), rng.random() < 0.5) if i % 2 else None  # just before or after train/val/stats' rename
        trig, delay = (lambda: not rename), rng.uniform(0, ref_s)  # else: any moment of the run
        res = _attempt(work, lambda o=out: main(args(o)), trig, delay, rename=rename)
        states.append({"out": out.name, "result": res, "files": sorted(p.name for p in out.iterdir()) if out.exists() else []})
    dirty = max(states, key=lambda s: len(s["files"]))["out"]  # rerun where a kill left the most behind
    _attempt(work, lambda: main(args(work/dirty)), lambda: False, 0)
    return {"states": states, "rerun": dirty, "ref_seconds": round(ref_s, 2)}

# --- the tests ------------------------------------------------------------------------------------------------

def drive(kind: str, work: Path, **kw) -> dict:
    "Run `drive_<kind>` in a fresh helper process; returns its summary."
    r = subprocess.run([sys.executable, __file__, kind, str(work), json.dumps(kw)], env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])

def parsed_lines(path: Path) -> list[dict]:
    "Every line of a JSONL file, parsed; the file must end with a newline (no torn last line)."
    raw = path.read_text()
    assert raw.endswith("\n"), "torn last line"
    return [json.loads(l) for l in raw.splitlines()]

def test_crash_teacher_generation(tmp_path):
    s = drive("teacher", tmp_path, seed=SEED, kills=KILLS, torn=5)
    assert s["kills"] == KILLS and s["finished_early"] == 0, s
    got, want = parsed_lines(tmp_path/"killed"/"outputs.jsonl"), parsed_lines(tmp_path/"ref"/"outputs.jsonl")
    ids = [r["id"] for r in got]
    assert len(ids) == len(set(ids)) == 80, "an id is missing or appears twice"
    assert {r["id"]: r for r in got} == {r["id"]: r for r in want}  # greedy: the same records as the uninterrupted run
    assert sorted(p.name for p in (tmp_path/"killed").iterdir()) == ["outputs.jsonl"]  # no shard or temporary left
    print(f"\ncrash/teacher: {s['kills']} kill points ({s['torn']} with a torn half line appended), {len(got)} records "
          f"checked against the uninterrupted run ({s['ref_seconds']} s); the last resume found {s['last_resumed']} done")

def test_crash_logit_cache(tmp_path):
    import torch
    from safetensors.torch import load_file
    s = drive("cache", tmp_path, seed=SEED, kills=KILLS)
    assert s["kills"] == KILLS and s["finished_early"] == 0 and s["tmp_left"] and s["unindexed"], s  # the write windows were hit
    got, want = (json.loads((tmp_path/d/"index.json").read_text()) for d in ("cache", "ref_cache"))
    assert got == want  # same shards holding the same ids, same metadata
    ids = [i for v in got["shards"].values() for i in v]
    assert len(ids) == len(set(ids)) == 80, "an example is missing or cached twice"
    assert sorted(p.name for p in (tmp_path/"cache").iterdir()) == sorted([*got["shards"], "index.json"])  # no orphan, no .tmp
    rows = 0
    for shard in got["shards"]:
        a, b = load_file(tmp_path/"cache"/shard), load_file(tmp_path/"ref_cache"/shard)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), shard
        rows += sum(len(v) for k, v in a.items() if k.endswith(".ids"))
    print(f"\ncrash/logit cache: {s['kills']} kill points, {len(ids)} examples ({rows} target positions) bitwise equal to "
          f"the uninterrupted run; {s['tmp_left']} kills left a temporary file and {s['unindexed']} a shard not yet in the index, "
          "all gone after the resume")

def test_crash_data_stage(tmp_path):
    s = drive("data", tmp_path, seed=SEED, kills=10, n=12_000)
    ref = {f: (tmp_path/"ref"/f).read_bytes() for f in ("train.jsonl", "val.jsonl", "stats.json")}
    rows, kinds = 0, set()
    for st in s["states"]:
        out = tmp_path/st["out"]
        outputs = [f for f in st["files"] if f in ref]
        # nothing else appears but temporaries and the killed run's lock file (taken over by the next run, with a warning)
        assert set(st["files"]) - set(ref) <= {f for f in st["files"] if f.endswith(".tmp") or f == LOCK_NAME}, st
        for f in outputs:  # an output file is complete or absent, never half written
            assert (out/f).read_bytes() == ref[f], (st, f)
            rows += ref[f].count(b"\n")
        if "stats.json" in outputs: assert set(outputs) == set(ref), st  # stats.json is renamed last
        kinds.add("complete" if len(outputs) == 3 else "none" if not outputs else "partial")
    rerun = tmp_path/s["rerun"]
    assert sorted(p.name for p in rerun.iterdir()) == sorted(ref)  # the rerun swept the temporaries and the lock away
    assert all((rerun/f).read_bytes() == b for f, b in ref.items())
    killed = sum(st["result"] == "killed" for st in s["states"])
    assert killed >= 8 and "partial" in kinds, s["states"]  # the kills on a rename land between train/val/stats
    tmp = sum(any(f.endswith(".tmp") for f in st["files"]) for st in s["states"])
    print(f"\ncrash/data: {killed} kill points of {len(s['states'])} runs ({s['ref_seconds']} s uninterrupted), outcomes "
          f"{sorted(kinds)}, {rows} output lines checked complete; {tmp} kills left temporaries, swept by the rerun of {s['rerun']}")

def test_crash_training_resume(tmp_path, demo_assets):
    "`qwen-kd train` SIGKILLed after checkpoint-6, resumed with `--set resume=true`: the losses of steps 7-12 are the uninterrupted run's."
    import yaml
    from qwen_kd.demo import demo_config
    from qwen_kd.data import DataConfig, prepare_data
    prepare_data(DataConfig(grpo=str(demo_assets["grpo"]), sft=str(demo_assets["sft"]), out=str(tmp_path/"mixed"), size=60))
    def config(name):
        c = demo_config(demo_assets, tmp_path/name)
        c["data"]["out"] = str(tmp_path/"mixed")
        c["train"].update(mode="seqkd", target="reference", max_steps=12, save_steps=6, logging_steps=1, batch_size=4,
                          grad_accum=1, max_length=64, precision="fp32")
        (tmp_path/f"{name}.yaml").write_text(yaml.safe_dump(c))
        return tmp_path/f"{name}.yaml"
    train = lambda cfg, *a: subprocess.Popen([sys.executable, "-c", "from qwen_kd.cli import main; main()", "train", "--config",
                                              str(cfg), *a], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ref = train(config("ref")); killed = train(config("killed"))
    state = tmp_path/"killed"/"student_kd"/"checkpoint-6"/"trainer_state.json"
    t0 = time.time()
    while True:
        try: json.loads(state.read_text()); break  # written last, and whole: the checkpoint is complete
        except (FileNotFoundError, ValueError): pass
        assert killed.poll() is None, killed.stderr.read()[-3000:]
        assert time.time() - t0 < 600; time.sleep(0.02)
    killed.send_signal(signal.SIGKILL); killed.wait()
    assert not (tmp_path/"killed"/"student_kd"/"kd_config.json").exists(), "finished before it was killed"
    ckpt6 = {p.name: p.stat().st_mtime_ns for p in state.parent.iterdir()}
    resumed = train(config("killed"), "--set", "resume=true")
    for p in (ref, resumed): assert p.wait(900) == 0, p.stderr.read()[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in state.parent.iterdir()} == ckpt6  # resumed from it, not rerun from step 1
    loss = lambda d: {h["step"]: h["loss"] for h in json.loads((d/"student_kd"/"checkpoint-12"/"trainer_state.json").read_text())["log_history"] if "loss" in h}
    want, got = loss(tmp_path/"ref"), loss(tmp_path/"killed")
    assert sorted(got) == list(range(1, 13)) and sorted(want) == list(range(1, 13))
    for step in range(7, 13): assert abs(got[step] - want[step]) < 1e-5, (step, got[step], want[step])
    print(f"\ncrash/train: 1 kill point (after checkpoint-6), losses of steps 7-12 equal to the uninterrupted run's "
          f"(max |diff| {max(abs(got[s] - want[s]) for s in range(7, 13)):.1e})")

if __name__ == "__main__":
    kind, work, kw = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    print(json.dumps({"teacher": drive_teacher, "cache": drive_cache, "data": drive_data}[kind](work, **kw)))

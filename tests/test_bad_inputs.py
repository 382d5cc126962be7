"""The bad-input corpus: every mistake a user can make in their files or config comes back from `qwen-kd` as exit 2
and one line that names the culprit and the fix — no traceback, no partial output.

Each case is a folder in tests/bad_inputs/ holding the files it needs and a `case.yaml`:

    about: what the user did wrong, in words
    argv: [data, --grpo, "{case}/grpo.json", ...]   # the command line, placeholders filled (see `places`)
    expect: ["{case}/grpo.json:3", "invalid JSON"]   # substrings of the one error line: the culprit and the fix
    config: config.yaml      # optional: a template in the case folder, filled and written to {config}
    setup: out_is_file       # optional: out_is_file | out_is_dir (what {out} is before the run)
    enospc: true             # optional: every fsync fails with ENOSPC, as on a full disk (in process only)
    subprocess: true         # optional: run a real `qwen-kd` process instead of `main()` in process
    stdout: "^teacher: .*\n$"  # optional: a regex stdout must match in full; without it stdout must be empty

Most cases run in process (`qwen_kd.cli.main`, output captured at the file-descriptor level with capfd, so a write
to fd 1 or 2 from C code or a child counts too); the ones marked `subprocess` prove the same end to end. "Nothing
written" covers every folder a case names (the places it uses: mixed data, models, LoRAs, tokenizers in the cache;
content hashes before and after), the whole demo and tokenizer cache and the assets built here (paths, sizes, mtimes),
the working folder and the case folder.
"""
import errno, json, os, re, subprocess, sys
from pathlib import Path
import pytest
import yaml
from conftest import tree_hash

CASES_DIR = Path(__file__).parent/"bad_inputs"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p/"case.yaml").exists())

def test_bad_input_corpus_size():
    "The issue asks for at least 30 cases, spread over every stage and the config."
    assert len(CASES) >= 30, len(CASES)
    stages = {c.split("_")[0] for c in CASES}
    assert stages >= {"data", "teacher", "train", "eval", "config"}, stages

@pytest.fixture(scope="module")
def places(demo_assets, tmp_path_factory) -> dict:
    "Paths the cases refer to: the demo assets, a prepared mix, and a few broken models built here."
    import torch
    from qwen_kd.data import DataConfig, prepare_data
    from qwen_kd.demo import cache_dir, qwen_tokenizer, tiny_qwen2
    root = tmp_path_factory.mktemp("bad_input_assets")
    qwen_tokenizer("qwen2.5"); qwen_tokenizer("qwen1.5")
    prepare_data(DataConfig(grpo=str(demo_assets["grpo"]), sft=str(demo_assets["sft"]), out=str(root/"mixed"), size=40))
    # the student's tokenizer with two ids swapped: same size, but it disagrees with the teacher on shared ids
    swapped = root/"swapped_tokenizer"
    qwen_tokenizer("qwen1.5").save_pretrained(swapped)
    tj = json.loads((swapped/"tokenizer.json").read_text())
    v = tj["model"]["vocab"]
    a, b = (k for k, i in v.items() if i in (0, 1))
    v[a], v[b] = v[b], v[a]
    (swapped/"tokenizer.json").write_text(json.dumps(tj))
    # a LoRA made for another, narrower base: its matrices cannot fit the demo teacher
    from peft import LoraConfig, get_peft_model
    other = tiny_qwen2(hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64)
    get_peft_model(other, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")).save_pretrained(root/"other_lora")
    cfg = json.loads((root/"other_lora"/"adapter_config.json").read_text())
    (root/"other_lora"/"adapter_config.json").write_text(json.dumps({**cfg, "base_model_name_or_path": "Qwen/Qwen2-0.5B"}))
    # a model and an adapter that hold only pickle weights
    pk = root/"pickle_model"
    small = tiny_qwen2(hidden=16, layers=1, heads=2, kv_heads=1, intermediate=32)
    small.config.save_pretrained(pk); torch.save(small.state_dict(), pk/"pytorch_model.bin")
    qwen_tokenizer("qwen1.5").save_pretrained(pk)
    pl = root/"pickle_lora"  # refused before anything is loaded, so a small adapter does (test_safety loads a real one)
    import shutil
    shutil.copytree(root/"other_lora", pl)
    from safetensors.torch import load_file
    torch.save(load_file(pl/"adapter_model.safetensors"), pl/"adapter_model.bin"); (pl/"adapter_model.safetensors").unlink()
    p = {k: str(v) for k, v in demo_assets.items()}
    return {**p, "mixed": str(root/"mixed"), "tokenizer": str(cache_dir()/"tokenizers"/"qwen2.5"), "swapped_tokenizer": str(swapped),
            "other_lora": str(root/"other_lora"), "pickle_model": str(pk), "pickle_lora": str(pl),
            "assets_root": str(root), "demo_root": str(Path(demo_assets["student"]).parent)}  # these two: for snapshots

def fill(s: str, ph: dict) -> str:
    for k, v in ph.items(): s = s.replace("{" + k + "}", v)
    return s

def setup_case(case: str, places: dict, tmp: Path) -> dict:
    "Read a case and set it up in `tmp`: its config written, {out} made a file or folder if asked, placeholders filled."
    d = CASES_DIR/case
    c = yaml.safe_load((d/"case.yaml").read_text())
    ph = {**places, "case": str(d), "tmp": str(tmp), "out": str(tmp/"out"), "config": str(tmp/"config.yaml")}
    if c.get("config"): (tmp/"config.yaml").write_text(fill((d/c["config"]).read_text(), ph))
    if c.get("setup") == "out_is_file": (tmp/"out").write_text("not a folder\n")
    if c.get("setup") == "out_is_dir": (tmp/"out").mkdir()
    c["argv"], c["expect"] = [fill(a, ph) for a in c["argv"]], [fill(e, ph) for e in c["expect"]]
    return c

def run_case(c: dict, tmp: Path, capfd, monkeypatch) -> tuple[int, str, str]:
    "Run a set-up case with `tmp` as the working folder; returns (exit code, stdout, stderr)."
    argv = c["argv"]
    if c.get("subprocess"):
        r = subprocess.run([sys.executable, "-c", "from qwen_kd.cli import main; main()", *argv], capture_output=True, text=True,
                           cwd=tmp, env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}, timeout=300)
        return r.returncode, r.stdout, r.stderr
    from qwen_kd.cli import main
    monkeypatch.chdir(tmp)
    if c.get("enospc"):
        def full(fd): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, "fsync", full)
    capfd.readouterr()  # drop what the fixtures printed
    with pytest.raises(SystemExit) as e: main(argv)
    monkeypatch.undo()
    out, err = capfd.readouterr()
    return e.value.code, out, err

def named_places(case: str, places: dict) -> dict[str, Path]:
    "The shared folders a case names in case.yaml or its config template (for a file, its folder)."
    d = CASES_DIR/case
    text = "".join(p.read_text() for p in d.iterdir() if p.suffix == ".yaml")
    paths = {places[k] for k in re.findall(r"\{(\w+)\}", text) if k in places}
    return {p: Path(p) if Path(p).is_dir() else Path(p).parent for p in sorted(paths)}

def mtimes(root: Path) -> dict:
    "Every path under `root` with its size and mtime: catches a new, removed or rewritten file without reading it."
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}

def snapshot(case: str, places: dict, tmp: Path) -> dict:
    "Content hashes of the working folder, the case folder and every shared folder the case names; mtimes of the caches."
    from qwen_kd.demo import cache_dir
    snap = {str(p): tree_hash(p) for p in {tmp, CASES_DIR/case, *named_places(case, places).values()}}
    for r in (places["demo_root"], places["assets_root"], cache_dir()/"tokenizers"): snap[f"mtimes {r}"] = mtimes(Path(r))
    return snap

@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, places, tmp_path, capfd, monkeypatch):
    "Exit 2; stderr is one line `qwen-kd: error: ...` naming the culprit and the fix; stdout empty; nothing written anywhere."
    c = setup_case(case, places, tmp_path)
    before = snapshot(case, places, tmp_path)
    code, out, err = run_case(c, tmp_path, capfd, monkeypatch)
    lines = [l for l in err.splitlines() if l.strip()]
    assert "Traceback" not in err, err[-3000:]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("qwen-kd: error: "), (code, err[-3000:])
    for want in c["expect"]: assert want in lines[0], (want, lines[0])
    assert re.fullmatch(c.get("stdout", ""), out), f"{case}: printed to stdout before failing: {out[-2000:]!r}"
    after = snapshot(case, places, tmp_path)
    for k in before:
        changed = sorted(p for p in set(before[k]) | set(after[k]) if before[k].get(p) != after[k].get(p))
        assert not changed, f"{case}: wrote to {k}: {changed[:10]}"
    if c.get("setup") == "out_is_file": assert (tmp_path/"out").read_text() == "not a folder\n"

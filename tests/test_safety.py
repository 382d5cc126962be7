"""Safe loading: no checkpoint or config gets to run code, and nothing is written outside the configured outputs.

- pickle weights (`.bin`, `.pt`, ...) are refused unless `allow_pickle: true`, and even then loaded with weights_only
- a model's own Python code (`auto_map`) is never imported unless `trust_remote_code: true`
- YAML is read with `safe_load`: a `!!python/...` tag is an error, not a call
- the package source holds no unsafe call (`torch.load` without weights_only=True, `yaml.load`, `pickle.load`, ...)
- every stage writes only under its configured output, whatever the example ids look like
"""
import ast, json, os, shutil
from pathlib import Path
import pytest
import torch
from conftest import tree

PKG = Path(__file__).parent.parent/"qwen_kd"

# --- the source: no unsafe call anywhere in the package -----------------------------------------------------------

def unsafe_calls(source: str, where: str = "<src>") -> list[str]:
    "Unsafe calls in Python source: torch.load without weights_only=True, yaml.load/unsafe_load/full_load, pickle/marshal"
    " loads, eval/exec, and trust_remote_code/allow_pickle/weights_only given a literal that turns the guard off."
    bad = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call): continue
        f, name = node.func, ast.unparse(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        at = f"{where}:{node.lineno}: {ast.unparse(node)[:80]}"
        if name.endswith("torch.load") or name == "load" and isinstance(f, ast.Name):
            if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True): bad.append(at)
        if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "pickle.load", "pickle.loads",
                    "marshal.loads", "eval", "exec", "dill.load", "joblib.load"): bad.append(at)
        for k, off in (("trust_remote_code", True), ("allow_pickle", True), ("weights_only", False)):
            if isinstance(kw.get(k), ast.Constant) and kw[k].value is off: bad.append(at)
    return bad

def test_safety_scanner_finds_unsafe_calls():
    "The scanner itself: each unsafe form is found, the safe forms are not."
    src = ("import torch, yaml, pickle\ntorch.load(p)\ntorch.load(p, weights_only=False)\nyaml.load(s)\npickle.loads(b)\n"
           "m = f(p, trust_remote_code=True)\neval('1')\ncheck_weights(p, allow_pickle=True)\n"
           "torch.load(p, weights_only=True)\nyaml.safe_load(s)\nf(p, trust_remote_code=cfg.trust_remote_code)\n")
    assert sorted({int(b.split(":")[1]) for b in unsafe_calls(src)}) == [2, 3, 4, 5, 6, 7, 8]

def test_safety_package_source_is_clean():
    files = sorted(PKG.glob("*.py"))
    assert len(files) >= 8
    bad = [b for p in files for b in unsafe_calls(p.read_text(), p.name)]
    assert not bad, "unsafe calls in the package:\n" + "\n".join(bad)

def test_safety_defaults_are_safe():
    "Every config and loader defaults to running no foreign code."
    import inspect
    from qwen_kd.teacher import TeacherConfig, load_model, load_tokenizer, apply_lora, check_weights
    from qwen_kd.train import KDConfig
    assert TeacherConfig().trust_remote_code is False and TeacherConfig().allow_pickle is False
    assert KDConfig().trust_remote_code is False
    for fn in (load_model, load_tokenizer, apply_lora, check_weights):
        for k in ("trust_remote_code", "allow_pickle"):
            if k in inspect.signature(fn).parameters: assert inspect.signature(fn).parameters[k].default is False, (fn, k)

# --- pickle weights ---------------------------------------------------------------------------------------------

class Trap:
    "A pickle payload that makes a folder when unpickled without weights_only: proof that code ran."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (os.mkdir, (self.marker,))

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    "A tiny Qwen2 model saved as safetensors, with its tokenizer."
    from qwen_kd.demo import tiny_qwen2, qwen_tokenizer
    d = tmp_path_factory.mktemp("tiny")/"model"
    tiny_qwen2(hidden=16, layers=1, heads=2, kv_heads=1, intermediate=32).save_pretrained(d)
    qwen_tokenizer("qwen1.5").save_pretrained(d)
    return d

def test_safety_pickle_weights_refused_unless_allowed(tiny_dir, tmp_path):
    from safetensors.torch import load_file
    from qwen_kd.core import QwenKDError
    from qwen_kd.teacher import load_model, check_weights
    pk = tmp_path/"pickled"; shutil.copytree(tiny_dir, pk)
    sd = load_file(pk/"model.safetensors"); (pk/"model.safetensors").unlink()
    torch.save(sd, pk/"pytorch_model.bin")
    with pytest.raises(QwenKDError, match="pytorch_model.bin: pickle weights can run code when loaded; convert to safetensors or set allow_pickle: true"):
        load_model(str(pk))
    m = load_model(str(pk), allow_pickle=True)  # the user said yes: it loads, with the same weights
    assert torch.equal(m.state_dict()["lm_head.weight"], sd["lm_head.weight"])
    # a booby-trapped pickle is never unpickled with code: next to safetensors it is ignored; allowed alone, weights_only stops it
    trap = tmp_path/"trapped"; shutil.copytree(tiny_dir, trap)
    torch.save({"x": Trap(tmp_path/"PWNED")}, trap/"pytorch_model.bin")
    load_model(str(trap))
    (trap/"model.safetensors").unlink()
    with pytest.raises(QwenKDError, match="pickle weights"): check_weights(trap)
    with pytest.raises(Exception): load_model(str(trap), allow_pickle=True)
    assert not (tmp_path/"PWNED").exists(), "a pickle ran code"

def test_safety_pickle_adapter_refused(demo_assets, tmp_path):
    from safetensors.torch import load_file
    from qwen_kd.core import QwenKDError
    from qwen_kd.teacher import TeacherConfig, load_teacher
    lora = tmp_path/"lora"; shutil.copytree(demo_assets["teacher_lora"], lora)
    torch.save(load_file(lora/"adapter_model.safetensors"), lora/"adapter_model.bin"); (lora/"adapter_model.safetensors").unlink()
    cfg = TeacherConfig(base=str(demo_assets["teacher_base"]), lora=str(lora), quantization="none")
    with pytest.raises(QwenKDError, match="adapter_model.bin: pickle weights .* set allow_pickle: true"): load_teacher(cfg)
    cfg.allow_pickle = True
    model, tok = load_teacher(cfg)
    assert any("lora_A" in n for n, _ in model.named_parameters())

# --- remote code ------------------------------------------------------------------------------------------------

CODE = "from pathlib import Path\nPath(__file__).with_name('RAN').write_text('remote code ran')\n"

def test_safety_remote_code_never_imported(tiny_dir, tmp_path):
    "A model folder with its own code in auto_map: refused for an unknown architecture, ignored for a known one."
    from qwen_kd.core import QwenKDError
    from qwen_kd.teacher import load_model, load_tokenizer, TeacherConfig, load_teacher
    d = tmp_path/"custom"; shutil.copytree(tiny_dir, d)
    for f in ("configuration_custom.py", "modeling_custom.py", "tokenization_custom.py"): (d/f).write_text(CODE)
    cfg = json.loads((d/"config.json").read_text())
    auto = {"AutoConfig": "configuration_custom.C", "AutoModelForCausalLM": "modeling_custom.M"}
    (d/"config.json").write_text(json.dumps({**cfg, "auto_map": auto}))
    m = load_model(str(d))  # model_type qwen2: transformers' own class, the folder's code untouched
    assert type(m).__name__ == "Qwen2ForCausalLM"
    (d/"config.json").write_text(json.dumps({**cfg, "model_type": "qkd_custom", "auto_map": auto}))
    for load in (lambda: load_model(str(d)), lambda: load_tokenizer(str(d)),
                 lambda: load_teacher(TeacherConfig(base=str(d), quantization="none"))):
        with pytest.raises(QwenKDError, match="needs its own code .* trust_remote_code: true"): load()
    assert not (d/"RAN").exists() and not list(d.glob("__pycache__")), "the model's code was imported"

def test_safety_yaml_is_safe_load(tmp_path, capsys):
    "A YAML config with a python tag is refused as invalid YAML; the call it names never happens."
    from qwen_kd.cli import main
    (tmp_path/"c.yaml").write_text(f"train:\n  student: !!python/object/apply:os.mkdir ['{tmp_path/'PWNED'}']\n")
    with pytest.raises(SystemExit) as e: main(["train", "--config", str(tmp_path/"c.yaml")])
    assert e.value.code == 2 and "invalid YAML" in capsys.readouterr().err
    assert not (tmp_path/"PWNED").exists()

# --- outputs only under the configured output directory ------------------------------------------------------------

def outside(root: Path, out: Path) -> dict:
    "Everything under `root` except `out` and what lies under it."
    return {k: v for k, v in tree(root).items() if not (root/k).is_relative_to(out)}

def test_safety_outputs_stay_in_out(demo_assets, tmp_path, monkeypatch):
    "The demo pipeline (every stage, logit cache on) run from another folder writes under `out` only."
    import yaml
    from qwen_kd.demo import demo_config
    from qwen_kd.pipeline import load_config, run_pipeline
    out, cwd = tmp_path/"out", tmp_path/"cwd"
    cwd.mkdir()
    c = demo_config(demo_assets, out)
    c["data"].update(size=12)
    c["teacher"].update(max_new_tokens=6, cache_logits="sample", cache_k=4)
    c["train"].update(max_steps=1, batch_size=4, save_steps=1, max_length=64, precision="fp32")
    c["eval"].update(max_new_tokens=4, models={"student_after": {"base": str(out/"student_kd")}})
    (tmp_path/"config.yaml").write_text(yaml.safe_dump(c))
    before, repo = tree(tmp_path), tree(PKG.parent/"nbs")
    monkeypatch.chdir(cwd)
    run_pipeline(load_config(tmp_path/"config.yaml"), log=lambda *a: None)
    assert outside(tmp_path, out) == before, "a stage wrote outside out/"
    assert tree(PKG.parent/"nbs") == repo
    made = {p.relative_to(out).parts[0] for p in out.rglob("*")}
    assert made == {"mixed", "teacher", "student_kd", "eval"}, made

def test_safety_ids_are_not_paths(demo_assets, tmp_path):
    "Example ids that look like paths stay data: pseudo-labels and the logit cache keep them, and no file is named by one."
    from qwen_kd.core import to_jsonl, QwenKDError
    from qwen_kd.teacher import TeacherConfig, generate_pseudo_labels, load_sparse_targets, read_done
    ids = ["../escape", "a/b", "/abs/path", "..\\win", "x" * 300]
    exs = [{"id": i, "source": "grpo", "messages": [{"role": "user", "content": f"What is {n} + 1?"}]} for n, i in enumerate(ids)]
    (tmp_path/"train.jsonl").write_text(to_jsonl(exs))
    out = tmp_path/"out"
    cfg = TeacherConfig(base=str(demo_assets["teacher_base"]), lora=str(demo_assets["teacher_lora"]), quantization="none",
                        data=str(tmp_path/"train.jsonl"), out=str(out/"teacher"/"outputs.jsonl"), max_new_tokens=4,
                        cache_logits="sample", cache_k=4)
    before = tree(tmp_path)
    assert generate_pseudo_labels(cfg, progress=False)["cached"] == len(ids)
    assert outside(tmp_path, out) == before
    assert sorted(read_done(out/"teacher"/"outputs.jsonl")) == sorted(ids)
    for i in ids: assert load_sparse_targets(out/"teacher"/"logits", i)["ids"].shape[1] == 4
    names = {p.name for p in out.rglob("*")}
    assert names == {"teacher", "outputs.jsonl", "logits", "index.json", "shard-00000.safetensors"}, names
    index = json.loads((out/"teacher"/"logits"/"index.json").read_text())  # an index edited to point elsewhere is refused
    index["shards"] = {"../../outside.safetensors": ids}
    (out/"teacher"/"logits"/"index.json").write_text(json.dumps(index))
    with pytest.raises(QwenKDError, match="unexpected shard name"): load_sparse_targets(out/"teacher"/"logits", ids[0])

def test_safety_student_pickle_refused(tmp_path):
    "The train stage's student loader refuses pickle-only weights unless allow_pickle, like the teacher's."
    from qwen_kd.demo import tiny_qwen2
    from qwen_kd.core import QwenKDError
    from qwen_kd.train import KDConfig, load_student
    import torch
    m = tiny_qwen2(hidden=16, layers=1, heads=2, kv_heads=1, intermediate=32)
    m.save_pretrained(tmp_path); (tmp_path/"model.safetensors").unlink()
    torch.save(m.state_dict(), tmp_path/"pytorch_model.bin")
    assert (tmp_path/"pytorch_model.bin").exists() and not list(tmp_path.glob("*.safetensors"))
    with pytest.raises(QwenKDError, match="pickle weights can run code"): load_student(KDConfig(student=str(tmp_path)))
    assert load_student(KDConfig(student=str(tmp_path), allow_pickle=True)).config.hidden_size == 16

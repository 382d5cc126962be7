"The data stage against real files: every input shape, every kind of malformed input, exact mixes, and memory at scale."
import json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest
from qwen_kd.cli import main
from qwen_kd.data import DataConfig, prepare_data, load_examples, dedup, read_jsonl, prompt_messages, reference, mix_size, _norm

FIX = Path(__file__).parent/"fixtures"
sys.path.insert(0, str(FIX))
from make_fixtures import BAD_FILES

def run_cli(capsys, *args) -> tuple[int, str]:
    "Run `qwen-kd` in process; returns (exit code, stderr)."
    with pytest.raises(SystemExit) as e: main([str(a) for a in args])
    return e.value.code, capsys.readouterr().err

def write_jsonl(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path

# --- every shape: the CLI writes the library's canonical records -------------------------------------------

GOOD = sorted(p.name for p in (FIX/"data").iterdir())

@pytest.mark.parametrize("name", GOOD)
def test_shape_cli_matches_library(tmp_path, capsys, name):
    src = "sft" if name.startswith("sft") else "grpo"
    other = FIX/"data"/("grpo_prompt.json" if src == "sft" else "sft_alpaca.json")
    files = {"grpo": other, "sft": other, src: FIX/"data"/name}
    args = ["data", "--grpo", files["grpo"], "--sft", files["sft"], "--out", tmp_path/"cli", "--val-frac", "0",
            "--grpo-share", "1" if src == "grpo" else "0"]
    code, err = run_cli(capsys, *args)
    assert code == 0, err
    got = sorted(read_jsonl(tmp_path/"cli"/"train.jsonl"), key=lambda e: e["id"])
    want = sorted(dedup(load_examples(FIX/"data"/name, src))[0], key=lambda e: e["id"])
    assert got == want and len(got) >= 2
    prepare_data(DataConfig(grpo=str(files["grpo"]), sft=str(files["sft"]), out=str(tmp_path/"lib"), val_frac=0,
                            grpo_share=1.0 if src == "grpo" else 0.0))
    for f in ("train.jsonl", "val.jsonl", "stats.json"):
        assert (tmp_path/"cli"/f).read_bytes() == (tmp_path/"lib"/f).read_bytes(), f

def test_shapes_content():
    "Spot checks of the canonical form of each shape (the notebook checks the mapping rules in detail)."
    g = load_examples(FIX/"data"/"grpo_gsm8k.jsonl", "grpo")[0]
    assert g["answer"] == "5" and g["messages"][-1] == {"role": "assistant", "content": "3 + 2 = 5\n#### 5"}
    b = load_examples(FIX/"data"/"grpo_bom.jsonl", "grpo")[0]
    assert b["messages"][0]["content"] == "Café: how many letters?"  # the BOM is stripped, not part of the text
    c = load_examples(FIX/"data"/"grpo_prompt.csv", "grpo")
    assert [e["answer"] for e in c] == ["6", "9"] and c[1]["messages"][0]["content"] == "Triple 3, please."
    assert [e["answer"] for e in load_examples(FIX/"data"/"grpo_gsm8k.arrow", "grpo")] == ["4", "10"]
    assert reference(load_examples(FIX/"data"/"sft_chat.parquet", "sft")[1]) == "m o o n"
    ch = load_examples(FIX/"data"/"sft_chat.jsonl", "sft")
    assert ch[0]["messages"][0]["role"] == "system" and ch[1]["meta"] == {"orig_id": "c2"} and len(ch[2]["messages"]) == 4

def test_schema_forced(tmp_path, capsys):
    code, err = run_cli(capsys, "data", "--grpo", FIX/"data"/"grpo_prompt.json", "--sft", FIX/"data"/"sft_chat.jsonl",
                        "--out", tmp_path/"out", "--schema", "prompt,alpaca")
    assert code == 2 and "sft_chat.jsonl:1: field 'instruction' is missing" in err and not (tmp_path/"out").exists()
    code, err = run_cli(capsys, "data", "--grpo", FIX/"data"/"grpo_prompt.json", "--sft", FIX/"data"/"sft_chat.jsonl",
                        "--out", tmp_path/"out", "--schema", "prompt,chat")
    assert code == 0, err

# --- malformed input: exit 2, one line naming file and line, nothing written ---------------------------------

BAD = sorted(p.name for p in (FIX/"bad_data").iterdir())
LINES = {**{k: v[1] for k, v in BAD_FILES.items()}, "bad_row.parquet": 2}

def test_enough_bad_fixtures(): assert len(BAD) >= 15 and set(BAD) == set(LINES)

@pytest.mark.parametrize("name", BAD)
def test_bad_input_exits_2(tmp_path, capsys, name):
    out = tmp_path/"out"
    code, err = run_cli(capsys, "data", "--grpo", FIX/"bad_data"/name, "--sft", FIX/"data"/"sft_alpaca.json", "--out", out)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("qwen-kd: error:"), err
    where = f"{FIX/'bad_data'/name}" + (f":{LINES[name]}" if LINES[name] else "")
    assert where + ":" in lines[0] or (LINES[name] is None and name in lines[0]), (where, lines[0])
    assert not out.exists()

ROW_ERRORS = {"invalid_jsonl.jsonl": "invalid_json", "not_utf8.jsonl": "not_utf8", "prompt_not_string.jsonl": "wrong_type",
              "empty_prompt.jsonl": "empty_field", "gsm8k_missing_answer.jsonl": "missing_field",
              "no_user_message.jsonl": "no_user_message", "duplicate_id.jsonl": "duplicate_id", "record_not_object.jsonl": "not_object",
              "torn_last_line.jsonl": "invalid_json", "bad_row.parquet": "missing_field", "bad_row.csv": "missing_field"}

@pytest.mark.parametrize("name,reason", sorted(ROW_ERRORS.items()))
def test_skip_invalid_counts_drops(tmp_path, capsys, name, reason):
    code, err = run_cli(capsys, "data", "--grpo", FIX/"bad_data"/name, "--sft", FIX/"data"/"sft_alpaca.json",
                        "--out", tmp_path/"out", "--skip-invalid")
    assert code == 0, err
    st = json.loads((tmp_path/"out"/"stats.json").read_text())
    assert st["dropped"][reason] == {"grpo": 1}, st["dropped"]
    assert f"{name}:{LINES[name]}" in st["skipped_examples"][0]

def test_skip_invalid_does_not_skip_file_errors(tmp_path, capsys):
    for name in ("invalid_json_array.json", "one_object.json", "unrecognised_shape.jsonl"):
        code, err = run_cli(capsys, "data", "--grpo", FIX/"bad_data"/name, "--sft", FIX/"data"/"sft_alpaca.json",
                            "--out", tmp_path/"out", "--skip-invalid")
        assert code == 2 and name in err and not (tmp_path/"out").exists(), err

# --- mixing: exact counts, the seed's rule, determinism -------------------------------------------------------

@pytest.fixture(scope="module")
def thousand(tmp_path_factory):
    d = tmp_path_factory.mktemp("k")
    g = write_jsonl(d/"g.jsonl", [{"prompt": f"grpo question {i}", "answer": str(i)} for i in range(1000)])
    s = write_jsonl(d/"s.jsonl", [{"instruction": f"sft task {i}", "output": f"done {i}"} for i in range(1000)])
    s500 = write_jsonl(d/"s500.jsonl", [{"instruction": f"sft task {i}", "output": f"done {i}"} for i in range(500)])
    return g, s, s500

def counts(out): return json.loads((out/"stats.json").read_text())["counts"]

def test_share_mode_exact(tmp_path, capsys, thousand):
    g, s, _ = thousand
    assert run_cli(capsys, "data", "--grpo", g, "--sft", s, "--out", tmp_path/"a", "--size", "1000")[0] == 0
    c = counts(tmp_path/"a")
    assert (c["grpo"], c["sft"], c["train"] + c["val"]) == (700, 300, 1000)
    ex = read_jsonl(tmp_path/"a"/"train.jsonl") + read_jsonl(tmp_path/"a"/"val.jsonl")
    assert len({e["id"] for e in ex}) == 1000 and sum(e["source"] == "grpo" for e in ex) == 700  # no repeats
    assert run_cli(capsys, "data", "--grpo", g, "--sft", s, "--out", tmp_path/"b")[0] == 0
    c = counts(tmp_path/"b")  # no --size: the largest mix, limited by GRPO: round(0.7·1429) = 1000
    assert (c["grpo"], c["sft"]) == (1000, 429)

def test_per_source_mode_is_the_seeds_rule(tmp_path, capsys, thousand):
    g, s, s500 = thousand
    assert run_cli(capsys, "data", "--grpo", g, "--sft", s, "--out", tmp_path/"a", "--mode", "per_source")[0] == 0
    assert (counts(tmp_path/"a")["grpo"], counts(tmp_path/"a")["sft"]) == (700, 300)
    assert run_cli(capsys, "data", "--grpo", g, "--sft", s500, "--out", tmp_path/"b", "--mode", "per_source")[0] == 0
    assert (counts(tmp_path/"b")["grpo"], counts(tmp_path/"b")["sft"]) == (700, 150)

def test_upsample(tmp_path, capsys, thousand):
    g, _, s500 = thousand
    code, err = run_cli(capsys, "data", "--grpo", g, "--sft", s500, "--out", tmp_path/"a", "--size", "3000")
    assert code == 2 and "allow upsampling" in err and not (tmp_path/"a").exists()
    assert run_cli(capsys, "data", "--grpo", g, "--sft", s500, "--out", tmp_path/"a", "--size", "3000", "--allow-upsample")[0] == 0
    st = json.loads((tmp_path/"a"/"stats.json").read_text())
    assert (st["counts"]["grpo"], st["counts"]["sft"], st["repeats"]) == (2100, 900, 1500)

def test_same_seed_byte_identical(tmp_path, thousand):
    "Two real `qwen-kd data` processes with the same seed write the same bytes; another seed does not."
    g, s, _ = thousand
    def run(out, seed):
        r = subprocess.run([sys.executable, "-c", "from qwen_kd.cli import main; main()", "data", "--grpo", str(g), "--sft", str(s),
                            "--out", str(out), "--seed", str(seed)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return [(out/f).read_bytes() for f in ("train.jsonl", "val.jsonl", "stats.json")]
    a, b, c = run(tmp_path/"a", 5), run(tmp_path/"b", 5), run(tmp_path/"c", 6)
    assert a == b and a[0] != c[0]

def test_no_val_prompt_in_train(tmp_path):
    "Prompts repeated within and across files (up to case and spaces) are dropped, so train and val never share one."
    g = write_jsonl(tmp_path/"g.jsonl", [{"prompt": f"Question {i % 300}", "answer": "1"} for i in range(600)])
    s = write_jsonl(tmp_path/"s.jsonl", [{"instruction": f"question  {i}" if i % 2 else f"Task {i}", "output": "x"} for i in range(600)])
    st = prepare_data(DataConfig(grpo=str(g), sft=str(s), out=str(tmp_path/"m"), val_frac=0.3))
    assert st["dropped"]["duplicate_prompt"] == {"grpo": 300, "sft": 150}
    key = lambda e: tuple(_norm(m["content"]) for m in prompt_messages(e))
    tr, va = (read_jsonl(tmp_path/"m"/f) for f in ("train.jsonl", "val.jsonl"))
    assert len(va) > 50 and not ({key(e) for e in tr} & {key(e) for e in va})
    assert {e["source"] for e in va} == {"grpo", "sft"}  # stratified: both sources held out

def test_length_policy_counts(tmp_path, capsys):
    from qwen_kd.demo import qwen_tokenizer, cache_dir
    qwen_tokenizer("qwen2.5")
    g = write_jsonl(tmp_path/"g.jsonl", [{"prompt": "word " * n, "solution": "ok " * r, "answer": "1"} for n, r in [(2, 2), (3, 40), (80, 1), (4, 3)]])
    s = write_jsonl(tmp_path/"s.jsonl", [{"instruction": f"task {i}", "output": "done"} for i in range(4)])
    tokdir = cache_dir()/"tokenizers"/"qwen2.5"
    for policy, dropped, truncated in [("truncate", {"prompt_too_long": {"grpo": 1}}, {"grpo": 1}),
                                       ("drop", {"prompt_too_long": {"grpo": 1}, "response_too_long": {"grpo": 1}}, {})]:
        code, err = run_cli(capsys, "data", "--grpo", g, "--sft", s, "--out", tmp_path/policy, "--tokenizer", tokdir,
                            "--max-length", "40", "--length-policy", policy, "--grpo-share", "0.5")
        assert code == 0, err
        st = json.loads((tmp_path/policy/"stats.json").read_text())
        assert st["dropped"] == dropped and st["truncated"] == truncated and st["token_lengths"]["grpo"]["max"] > 0
        assert st["available"]["grpo"] == (3 if policy == "truncate" else 2)

# --- scale: 200,000 lines, streamed ---------------------------------------------------------------------------

def test_200k_lines_peak_rss(tmp_path):
    "Mixing a 200,000-line JSONL keeps peak RSS growth (over the post-import baseline) under 300 MB."
    g, s = tmp_path/"g.jsonl", tmp_path/"s.jsonl"
    with open(g, "w") as f:
        for i in range(200_000):
            f.write(json.dumps({"prompt": f"Problem {i}: what is {i} times 7? Explain each step.", "solution": f"{i} * 7 = {i*7}",
                                "answer": str(i * 7)}) + "\n")
    with open(s, "w") as f:
        for i in range(60_000): f.write(json.dumps({"instruction": f"Reverse word {i}.", "input": f"w{i}", "output": f"{i}w"}) + "\n")
    # ru_maxrss survives fork+exec on Linux (the child starts with pytest's peak, which hides any growth), so the
    # child reads its own high-water mark, VmHWM, which exec resets; ru_maxrss is reported next to it.
    code = textwrap.dedent(f"""
        import gc, json, resource
        from qwen_kd.data import DataConfig, prepare_data
        hwm = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
        gc.collect()
        base, base_ru = hwm(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        st = prepare_data(DataConfig(grpo={str(g)!r}, sft={str(s)!r}, out={str(tmp_path/'m')!r}))
        peak, peak_ru = hwm(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"growth_mb": (peak - base) / 1024, "ru_maxrss_growth_mb": (peak_ru - base_ru) / 1024,
                          "base_mb": base / 1024, "counts": st["counts"]}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"\n200k-line JSONL: peak RSS growth {res['growth_mb']:.1f} MB over a {res['base_mb']:.1f} MB post-import baseline "
          f"(ru_maxrss growth {res['ru_maxrss_growth_mb']:.1f} MB), counts {res['counts']}")
    n = mix_size(200_000, 60_000, 0.7)  # 200,001: round(0.7·n) = 140,001 GRPO + 60,000 SFT
    assert (res["counts"]["grpo"], res["counts"]["sft"]) == (round(0.7 * n), n - round(0.7 * n)) == (140_001, 60_000)
    assert 1 < res["growth_mb"] < 300  # > 1: the measurement sees the run at all
    with open(tmp_path/"m"/"train.jsonl") as f: first = json.loads(f.readline())
    assert first["source"] in ("grpo", "sft") and first["messages"][0]["role"] == "user"

def test_system_prompt_reaches_every_record(tmp_path, capsys):
    code, err = run_cli(capsys, "data", "--grpo", FIX/"data"/"grpo_prompt.json", "--sft", FIX/"data"/"sft_chat.jsonl",
                        "--out", tmp_path/"m", "--system-prompt", "Be brief.", "--val-frac", "0", "--grpo-share", "0.5")
    assert code == 0, err
    exs = read_jsonl(tmp_path/"m"/"train.jsonl")
    assert exs and all(e["messages"][0] == {"role": "system", "content": "Be brief."} for e in exs if e["source"] == "grpo")
    assert all(e["messages"][0]["role"] == "system" for e in exs)  # chat records keep their own system turn

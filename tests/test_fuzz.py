"""Generated bad inputs: thousands of data files, YAML configs and command lines, made by `hypothesis` and run in
process through the CLI's entry point `qwen_kd.cli.main`. Every case must end in a valid result (exit 0, complete
outputs that parse) or in exit 2 with exactly one `qwen-kd: error:` line on stderr and nothing written — never a
traceback, never partial output (the case folder is compared byte for byte before and after).

The cases favour the cheapest stage entry points: `qwen-kd data` (with a tiny tokenizer now and then), and the config
and flag checks of `train`, `teacher`, `eval`, `run` and `vram`, which stop before any model is loaded (the models they
name do not exist). Every path a case can write to is relative to its own temporary folder.

Seeded (`derandomize=True`), so CI runs the same cases every time: 2,000 by default, split over the tests below by
`SHARE`; `QWEN_KD_FUZZ_EXAMPLES=20000 pytest -k fuzz` runs more (still seeded), `QWEN_KD_FUZZ_SEED=<n>` other ones.
A failing case is printed (hypothesis shrinks it first); with `QWEN_KD_FUZZ_SAVE=1` it is also saved under
tests/fuzz_examples/, where `test_fuzz_examples_replay` replays every kept case. Run with `-s` to see the counts.
"""
import csv, hashlib, io, json, os, string, tempfile, time
from collections import Counter
from pathlib import Path
import pytest
import yaml
from hypothesis import HealthCheck, given, note, seed, settings, strategies as st
from hypothesis.control import currently_in_test_context

TOTAL = int(os.environ.get("QWEN_KD_FUZZ_EXAMPLES", "2000"))
SEED = int(os.environ.get("QWEN_KD_FUZZ_SEED", "17"))
SHARE = {"data_json": 0.34, "data_columnar": 0.14, "data_tokenizer": 0.04, "config": 0.28, "flags": 0.20}
EXAMPLES = Path(__file__).parent/"fuzz_examples"
COUNTS, OUTCOMES, SECONDS, MESSAGES, SLOWEST = Counter(), Counter(), Counter(), Counter(), []

def fuzz_settings(name: str):
    "Seeded settings for one generator: its share of TOTAL examples, no deadline, no example database."
    return settings(max_examples=max(5, round(TOTAL * SHARE[name])), deadline=None, derandomize=SEED == 17,
                    database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                           HealthCheck.large_base_example])

# --- running one case ---------------------------------------------------------------------------------------------

LOCK = ".qwen-kd.lock"

def snapshot(root: Path) -> dict:
    "Every file and folder under `root`: relative path → sha1 of the bytes (None for a folder)."
    return {str(p.relative_to(root)): None if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}

def save_case(files: dict, argv: list, why: str) -> Path:
    "Keep a failing case as a fixture: its files and a case.yaml with the command line."
    d = EXAMPLES/("new-" + hashlib.sha1(json.dumps([sorted(files), argv]).encode("utf-8", "surrogatepass")).hexdigest()[:10])
    for name, data in files.items(): (d/"files"/name).parent.mkdir(parents=True, exist_ok=True); (d/"files"/name).write_bytes(data)
    (d/"case.yaml").write_text(yaml.safe_dump({"about": why, "argv": argv, "exit": 2, "expect": []}, allow_unicode=True))
    return d

def run_case(stage: str, files: dict, argv: list, capfd, outputs=(), allow_success: bool = True) -> tuple[int, str]:
    """Write `files` into a fresh folder, run `main(argv)` there and check the outcome; returns (exit code, stderr).
    `outputs`: the files a success may add or change (relative paths); anything else must stay as it was."""
    from qwen_kd.cli import main
    generated = currently_in_test_context()  # False when a kept example is replayed
    if generated: note(f"argv={argv!r} files={ {k: v[:300] for k, v in files.items()} !r}")
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for name, data in files.items():
            (root/name).parent.mkdir(parents=True, exist_ok=True); (root/name).write_bytes(data)
        before, cwd = snapshot(root), os.getcwd()
        capfd.readouterr()
        os.chdir(root)
        try:
            try: main(argv); code = 0
            except SystemExit as e: code = e.code
            except BaseException:
                if os.environ.get("QWEN_KD_FUZZ_SAVE"): save_case(files, argv, f"{stage}: traceback")
                raise
        finally: os.chdir(cwd)
        out, err = capfd.readouterr()
        after = snapshot(root)
        try: check_outcome(code, err, before, after, root, outputs, allow_success, "[data] done" in out)
        except AssertionError:
            if os.environ.get("QWEN_KD_FUZZ_SAVE"): save_case(files, argv, f"{stage}: exit {code}")
            raise
    COUNTS[stage] += 1; OUTCOMES[stage, code] += 1; SECONDS[stage] += time.time() - t0
    if code == 2: MESSAGES[stage, " ".join(err.split(": ")[-1].split()[:5])[:60]] += 1
    SLOWEST.append((round(time.time() - t0, 2), stage, [a[:40] for a in argv][:8], files.get("c.yaml", b"")[:400]))
    SLOWEST.sort(reverse=True); del SLOWEST[5:]
    return code, err

def check_outcome(code, err: str, before: dict, after: dict, root: Path, outputs, allow_success: bool,
                  finished: bool = False):
    """Exit 2 with one error line and nothing changed, or exit 0 with only the expected outputs written, whole.
    `finished`: a stage of a multi-stage `run` finished before another failed; its outputs (whole) may stay."""
    assert "Traceback" not in err, err[-3000:]
    lines = [l for l in err.splitlines() if l.strip()]
    left = [p for p in after if p.endswith(".tmp") or Path(p).name == LOCK]
    assert not left, f"left behind: {left}"
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("qwen-kd: error: "), err[-3000:]
        if not finished:
            assert after == before, f"partial output: {sorted(set(after.items()) ^ set(before.items()))[:6]}"
            return
    else: assert code == 0 and allow_success, (code, err[-3000:])
    assert code == 2 or all(l.startswith("qwen-kd: warning: ") for l in lines), err[-3000:]
    changed = {p for p in set(after) | set(before) if after.get(p) != before.get(p)}
    files = {p for p in changed if after.get(p) is not None}
    if outputs == DATA_OUT and files:  # the data stage's three files, in whichever folder the case named
        folder = Path(sorted(files)[0]).parent
        outputs = tuple(str(folder/Path(o).name) for o in DATA_OUT)
    parents = {str(q) for o in outputs for q in Path(o).parents if str(q) != "."}
    assert changed <= set(outputs) | parents, f"unexpected writes: {sorted(changed - set(outputs) - parents)}"
    assert not {p for p in before if p not in after}, "an input disappeared"
    for o in outputs:
        p = root/o
        if o.endswith(".jsonl"):  # whole and valid, one record a line for any reader (str.splitlines too)
            text = p.read_text(encoding="utf-8")
            assert text.endswith("\n") or not text, "torn last line"
            lines = text.split("\n")[:-1]
            assert len(lines) == len(text.splitlines()), "a record holds a character some readers take for a line end"
            for l in lines: json.loads(l)
        if o.endswith(".json"): json.loads(p.read_text(encoding="utf-8"))

DATA_OUT = ("out/train.jsonl", "out/val.jsonl", "out/stats.json")

# --- building blocks: text, records, files --------------------------------------------------------------------------

ODD = ["", " ", "\t", "\n", "\r\n", "\u202e", "\ufeff", "\u200b", "e\u0301", "𝔘𝔫𝔦", "🙂", "\U0010ffff", "\x00",
       "\x7f", "\x1b[31m", "\u2028", "\u0085", "ﬁ", "İ", "ß", "\\", '"', "{", "[", "]", "#### 42", "####", "\\boxed{4}",
       "null", "NaN", "<|im_end|>", "<|endoftext|>", "Ⅻ", "\uffff", "\ufffd"]
SURROGATE = "\x01SURROGATE\x01"  # replaced in the serialised JSON by a lone `\ud800`-style escape
texts = st.one_of(st.text(max_size=25), st.sampled_from(ODD), st.lists(st.sampled_from(ODD), max_size=4).map("".join),
                  st.just(SURROGATE))
good = st.one_of(st.sampled_from(["Tom has 3 apples. How many?", "What is 2+2?", "Réponds: 7×6 ?", "猫は何匹？",
                                  "Reverse 'abc'.", "x" * 200]),
                 st.text(alphabet=string.ascii_letters + " ?!.0123456789", min_size=1, max_size=30).filter(str.strip))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), texts)
jvals = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3), max_leaves=6)
ids = st.one_of(st.none(), st.sampled_from(["", "1", "dup", "dup", "a"]), st.integers(-1, 2), texts, jvals)
txt = lambda: st.one_of(good, good, good, texts, jvals)  # mostly valid, sometimes not
roles = st.sampled_from(["user", "assistant", "system", "tool", "", "User", None])

def rarely(draw, n: int = 6) -> bool:
    "True about once in `n` draws (hypothesis favours the simplest choice, here False)."
    return draw(st.sampled_from([False] * (n - 1) + [True]))

def rec(**fields): return st.fixed_dictionaries({k: v for k, v in fields.items() if not k.startswith("opt_")},
                                                optional={k[4:]: v for k, v in fields.items() if k.startswith("opt_")})

messages = st.lists(st.one_of(rec(role=roles, content=txt()), rec(role=st.just("user"), content=good), jvals),
                    max_size=4)
records = {
    "grpo": st.one_of(rec(prompt=txt(), opt_answer=st.one_of(good, st.integers(), jvals), opt_solution=txt(),
                          opt_id=ids, opt_extra=jvals),
                      rec(question=txt(), answer=st.one_of(good.map(lambda s: s + " #### 4"), txt()), opt_id=ids),
                      rec(prompt=good, answer=good), rec(prompt=good, answer=good), jvals),
    "sft": st.one_of(rec(instruction=txt(), opt_input=txt(), opt_output=txt(), opt_id=ids),
                     rec(messages=st.one_of(messages, jvals), opt_answer=jvals, opt_id=ids),
                     rec(instruction=good, output=good), rec(instruction=good, output=good), jvals)}

INSERTS = [b"\x00", b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\\ud800", b"\\udfff", b"\n", b"\r\n", b"{", b"}", b"[",
           b"]", b",", b'"', b"\xed\xa0\x80", b"\xc0\x80", b"[" * 3000, b"9" * 5000, b"NaN", b"-Infinity", b"1e999",
           b'{"prompt": "x"}\n', b'{"id": "dup", "prompt": "p"}\n', b"a" * 300_000, b"\t", b"\\", b"\x1b[31m",
           "\u2028".encode(), b'"' + "é".encode() * 1000 + b'"', b"\r"]

@st.composite
def mutated(draw, raw: bytes, inserts=INSERTS, edits=(0, 0, 1, 1, 2, 3)) -> bytes:
    "`raw` with a few edits (none, often): a flipped bit, an inserted snippet, a cut, a deleted span, a duplicated line."
    for _ in range(draw(st.sampled_from(edits))):
        op, at = draw(st.sampled_from(["flip", "insert", "insert", "cut", "delete", "dup"])), draw(st.integers(0, len(raw)))
        if op == "flip" and raw: at = min(at, len(raw) - 1); raw = raw[:at] + bytes([raw[at] ^ (1 << draw(st.integers(0, 7)))]) + raw[at + 1:]
        elif op == "insert": raw = raw[:at] + draw(st.sampled_from(inserts)) + raw[at:]
        elif op == "cut": raw = raw[:at]
        elif op == "delete": raw = raw[:at] + raw[at + draw(st.integers(1, 20)):]
        elif op == "dup":
            lines = raw.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1)); lines.insert(i, lines[i]); raw = b"\n".join(lines)
    return raw

def lone_surrogates(raw: bytes, draw) -> bytes:
    "Put a lone surrogate escape (or a valid pair) where a record holds the SURROGATE marker."
    return raw.replace(b"\\u0001SURROGATE\\u0001", draw(st.sampled_from([b"\\ud800", b"x\\udc00", b"\\ud83d\\ude00",
                                                                          b"\\udbff\\udbff"])))

unicode = st.text(min_size=1, max_size=40).filter(str.strip)  # any character but a surrogate
clean = {"grpo": st.one_of(rec(prompt=st.one_of(good, unicode), answer=st.one_of(good, unicode)),
                           rec(question=unicode, answer=unicode.map(lambda s: s + " #### 4"))),
         "sft": st.one_of(rec(instruction=st.one_of(good, unicode), output=st.one_of(good, unicode)),
                          rec(messages=st.tuples(unicode, unicode).map(lambda t: [{"role": "user", "content": t[0]},
                                                                                  {"role": "assistant", "content": t[1]}])))}

@st.composite
def json_file(draw, source: str, valid: bool = False) -> tuple[str, bytes]:
    "(file name, bytes) of a JSON array or JSON Lines file of drawn records, perhaps mutated (`valid`: never)."
    if valid: recs = draw(st.lists(clean[source], min_size=1, max_size=8))
    else: recs = draw(st.lists(records[source], max_size=8))
    ascii_ = draw(st.booleans())
    if draw(st.booleans()):
        raw = json.dumps(recs, ensure_ascii=ascii_, indent=draw(st.sampled_from([None, 1]))).encode("utf-8")
        name = draw(st.sampled_from(["g.json", "g.json", "g.txt", "g.jsonl"]))
    else:
        raw = "".join(json.dumps(r, ensure_ascii=ascii_) + "\n" for r in recs).encode("utf-8")
        name = draw(st.sampled_from(["g.jsonl", "g.jsonl", "g.json"]))
    return name, raw if valid else draw(mutated(lone_surrogates(raw, draw)))

def _cell(v) -> str|None:
    return v if isinstance(v, str) or v is None else json.dumps(v)

@st.composite
def columnar_file(draw, source: str) -> tuple[str, bytes]:
    "(file name, bytes) of a parquet, CSV or TSV file of drawn records, perhaps mutated."
    recs = [r if isinstance(r, dict) else {"value": r} for r in draw(st.lists(records[source], max_size=6))]
    recs = [{k.replace(SURROGATE, "s"): (v.replace(SURROGATE, "s") if isinstance(v, str) else v) for k, v in r.items()}
            for r in recs]
    fmt = draw(st.sampled_from(["parquet", "parquet", "csv", "tsv"]))
    if fmt == "parquet":
        import pyarrow as pa, pyarrow.parquet as pq
        def write(rows) -> bytes:
            buf = io.BytesIO(); pq.write_table(pa.Table.from_pylist(rows), buf)
            return buf.getvalue()
        try: raw = write(recs)  # mixed types, empty structs...: pyarrow cannot store them, text it is
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            raw = write([{k: _cell(v) for k, v in r.items()} for r in recs])
        if rarely(draw, 3): raw = draw(mutated(raw, [b"\x00", b"\xff" * 8, b"PAR1"]))
        return "g.parquet", raw
    keys = list(dict.fromkeys(k for r in recs for k in r))
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",")
    w.writerow(keys)
    for r in recs: w.writerow([_cell(r.get(k)) or "" for k in keys])
    raw = buf.getvalue().encode("utf-8", "replace")
    return f"g.{fmt}", draw(mutated(raw, INSERTS[:12] + [b'"', b",", b"\t", b'""', b"\n\n"]))

def valid_file(source: str) -> bytes:
    "A small valid file for the source the case does not fuzz."
    if source == "grpo":
        recs = [{"prompt": f"Tom has {i} apples and gets 2. How many?", "answer": str(i + 2)} for i in range(12)]
    else: recs = [{"instruction": f"Reverse the word w{i}.", "output": f"{i}w"} for i in range(12)]
    return "".join(json.dumps(r) + "\n" for r in recs).encode()

DATA_FLAGS = {  # flag: (valid values, invalid ones)
    "--grpo-share": (["0", "0.3", "0.7", "1", "0.5"], ["1.5", "-0.1", "nan", "inf", "x", ""]),
    "--val-frac": (["0", "0.1", "0.5", "0.99", "1e-300"], ["1", "-1", "nan"]),
    "--size": (["1", "3", "10", "null"], ["0", "-5", "1000000000000000000000", "1.5", "ten"]),
    "--seed": (["0", "1", "-1", "99999999999999999999999"], ["x", "1.5"]),
    "--mode": (["share", "per_source"], ["halves"]),
    "--schema": (["auto", "prompt", "alpaca", "chat", "gsm8k", "prompt,alpaca", "gsm8k,chat"], ["chat,chat,chat", ",", "x"]),
    "--system-prompt": (["Be brief.", "", "é" * 3000, "a\nb", "\u202e🙂"], ["\x00", "\udcff"]),
    "--max-length": (["2", "16", "1024", "10000000000000000000"], ["1", "0", "-3"]),
    "--length-policy": (["truncate", "drop"], ["cut"])}
BOOL_FLAGS = ["--skip-invalid", "--no-skip-invalid", "--allow-upsample"]

@st.composite
def data_flags(draw) -> list:
    "A few of `qwen-kd data`'s flags, with values valid or not."
    argv = []
    for f in draw(st.lists(st.sampled_from(sorted(DATA_FLAGS)), max_size=3, unique=True)):
        valid, invalid = DATA_FLAGS[f]
        argv += [f, draw(st.sampled_from(valid * 3 + invalid))]
    return argv + draw(st.lists(st.sampled_from(BOOL_FLAGS), max_size=2, unique=True))

@st.composite
def data_case(draw, maker) -> tuple[dict, list]:
    "Files and argv of one `qwen-kd data` case: one source made by `maker`, the other valid, some flags."
    fuzzed = draw(st.sampled_from(["grpo", "sft"]))
    name, raw = draw(maker(fuzzed))
    other = "s.jsonl" if fuzzed == "grpo" else "g2.jsonl"
    files = {name: raw, other: valid_file("sft" if fuzzed == "grpo" else "grpo")}
    if rarely(draw, 4):  # a previous run's outputs, which a failed run must leave alone
        files.update({o: b'{"old": true}\n' for o in DATA_OUT})
    paths = {"grpo": name, "sft": other} if fuzzed == "grpo" else {"grpo": other, "sft": name}
    return files, ["data", "--grpo", paths["grpo"], "--sft", paths["sft"], "--out", "out", *draw(data_flags())]

# --- the fuzz tests: data files -------------------------------------------------------------------------------------

@fuzz_settings("data_json")
@seed(SEED)
@given(case=data_case(json_file))
def test_fuzz_data_json(case, capfd):
    "JSON arrays and JSON Lines with mutated bytes, truncated records, wrong types, odd Unicode, huge lines, bad ids."
    run_case("data (json/jsonl)", *case, capfd, outputs=DATA_OUT)

@pytest.fixture(scope="module")
def datasets_cache(tmp_path_factory):
    "`datasets` caches every CSV it reads: keep the fuzz cases' caches out of ~/.cache."
    import datasets
    old, datasets.config.HF_DATASETS_CACHE = datasets.config.HF_DATASETS_CACHE, str(tmp_path_factory.mktemp("hf_datasets"))
    yield
    datasets.config.HF_DATASETS_CACHE = old

@fuzz_settings("data_columnar")
@seed(SEED)
@given(case=data_case(columnar_file))
def test_fuzz_data_columnar(case, capfd, datasets_cache):
    "Parquet (whole or with damaged bytes), CSV and TSV files of drawn records."
    run_case("data (parquet/csv/tsv)", *case, capfd, outputs=DATA_OUT)

@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory) -> str:
    "A byte-level BPE tokenizer of a few hundred tokens with Qwen's ChatML template: loads in milliseconds."
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import PreTrainedTokenizerFast
    from qwen_kd.demo import CHATML_TEMPLATE
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer, tk.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tk.train_from_iterator(["Tom has 3 apples. How many? Reverse the word."] * 10,
                           trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHATML_TEMPLATE
    path = tmp_path_factory.mktemp("tiny_tokenizer")
    tok.save_pretrained(path)
    return str(path)

@fuzz_settings("data_tokenizer")
@seed(SEED)
@given(case=data_case(lambda source: json_file(source, valid=True)),
       max_length=st.sampled_from(["2", "8", "24", "64", "64", "1024", "1024"]),
       policy=st.sampled_from(["truncate", "drop"]))
def test_fuzz_data_with_tokenizer(case, max_length, policy, capfd, tiny_tokenizer):
    "The data stage with length checks: valid records of any Unicode through a real (tiny) byte-level BPE and chat template."
    files, argv = case
    run_case("data + tokenizer", files, argv + ["--tokenizer", tiny_tokenizer, "--max-length", max_length,
                                                "--length-policy", policy], capfd, outputs=DATA_OUT)

# --- configs --------------------------------------------------------------------------------------------------------

PATHS = ["out", "o u t", "out\nx", "ø/ü", "x" * 300, "g.json", "g.json/sub", ".", "", "sub/../out2", "\udcff", "-",
         "a" * 100 + "/" + "b" * 100, "no_model", "no/such-model", "~", "out/"]
PATH_KEYS = {"grpo", "sft", "out", "tokenizer", "base", "lora", "data", "cache_dir", "student", "student_tokenizer",
             "teacher_outputs", "output_dir", "logit_cache"}

def field_values(f):
    "Values for a config field: ones of its type (from its choices, or the path palette for paths) and garbage."
    from qwen_kd.cli import _kinds
    kinds = _kinds(f)
    if f.name in PATH_KEYS: ok = st.sampled_from(PATHS)
    elif "choices" in f.metadata: ok = st.sampled_from(list(f.metadata["choices"]) + ["nope"])
    elif kinds == ["bool"]: ok = st.booleans()
    elif kinds == ["int"]: ok = st.one_of(st.integers(-3, 3000), st.sampled_from([10**30, "12", "1e3", "x"]))
    elif kinds == ["float"]: ok = st.one_of(st.floats(), st.sampled_from(["5e-5", "0.5", ".nan"]))
    elif kinds == ["dict"]:
        ok = st.one_of(st.dictionaries(st.sampled_from(["teacher", "a", "b c", "x/y"]),
                                       st.one_of(rec(base=st.sampled_from(PATHS), opt_lora=st.sampled_from(PATHS),
                                                     opt_quantization=st.sampled_from(["none", "4bit", "2bit"])), jvals),
                                       max_size=2),
                       st.dictionaries(st.sampled_from(["boxed", "x"]), st.sampled_from(["(\\d+)", "(", "[", 5]), max_size=2))
    else: ok = texts
    return st.one_of(ok, ok, ok, jvals)

@st.composite
def section(draw, name: str) -> dict:
    "Some keys of a section with drawn values, and maybe an unknown (misspelt) key."
    from dataclasses import fields
    from qwen_kd.pipeline import SECTIONS
    fs = {f.name: f for f in fields(SECTIONS[name])}
    keys = sorted(k for k in fs if k not in PATH_KEYS or rarely(draw, 4))  # paths now and then
    sec = {k: draw(field_values(fs[k])) for k in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))}
    if rarely(draw, 8): sec[draw(st.sampled_from(sorted(fs))) + draw(st.sampled_from(["s", "_", "x"]))] = 1
    return sec

BOMB = ("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
YAML_INSERTS = [b"\t", b": ", b"- ", b"&a ", b"*a", b"!!python/object/apply:os.system ['true']", b"!!binary AAA=",
                b"%YAML 1.1\n", b"---\n", b"...\n", b"? ", b"\xff", b"\xef\xbb\xbf", b"\x00", b"{", b"[", b"'", b'"',
                b"<<: *a\n", b"!!set {a, b}", b"2001-12-14", b"0o17", b"0x1F", b".inf", b"~", b"|\n  text\n",
                b"&x [*x]", b"[" * 2000]

@st.composite
def yaml_text(draw) -> bytes:
    "A pipeline YAML: drawn sections, perhaps anchors and aliases, a bomb, deep nesting, and mutated bytes."
    data = {"grpo": "g.jsonl", "sft": "s.jsonl", "out": "out"}
    data.update(draw(section("data")))
    cfg = {"data": data}
    for name in draw(st.lists(st.sampled_from(["teacher", "train", "eval"]), max_size=3, unique=True)):
        cfg[name] = draw(section(name))
    cfg.setdefault("teacher", {}).setdefault("base", "no_model")  # never a real model: the stages stop before loading
    cfg.setdefault("train", {}).setdefault("student", "no_model")
    shape = draw(st.sampled_from(["plain", "plain", "plain", "merge", "alias", "anchors", "bomb", "deep", "self", "odd_top"]))
    if shape == "odd_top": cfg[draw(st.sampled_from(["trian", "1", "Data", ""]))] = draw(jvals)
    flow = draw(st.sampled_from([False, None, True])) if shape in ("plain", "odd_top", "anchors") else False
    text = yaml.safe_dump(cfg, allow_unicode=draw(st.booleans()), default_flow_style=flow)
    if shape == "anchors": text = text.replace("data:", "data: &d", 1) + "eval: *d\n"  # eval gets data's keys
    if shape == "alias": text = text.replace("  out: out\n", "  out: &o out\n  system_prompt: *o\n", 1)
    if shape == "merge": text = text.replace("data:\n", "data:\n  <<: &b {seed: 3, val_frac: 0.2}\n", 1)
    if shape == "bomb": text = BOMB + text.replace("data:\n", "data:\n  system_prompt: *i\n", 1)
    if shape == "deep":
        n = draw(st.sampled_from([50, 400, 3000]))
        text = text.replace("data:\n", "data:\n  size: " + "[" * n + "]" * n + "\n", 1)
    if shape == "self": text = text.replace("data:\n", "data: &s\n  size: *s\n", 1)
    return draw(mutated(text.encode("utf-8", "surrogateescape"), YAML_INSERTS, edits=(0, 0, 0, 1, 2)))

CONFIG_COMMANDS = [["data", "--config", "c.yaml"], ["data", "--config", "c.yaml"], ["run", "c.yaml", "--stages", "data"],
                   ["vram", "--config", "c.yaml"], ["train", "--config", "c.yaml"], ["teacher", "--config", "c.yaml"],
                   ["eval", "--config", "c.yaml"]]
SETS = ["seed=3", "val_frac=0.2", "alpha=0.3", "size=[1", "=5", "seed", "out=" + "[" * 100, "k=v", "system_prompt=&a [*a]",
        "seed=*a", "mode=!!python/name:os.system"]

@fuzz_settings("config")
@seed(SEED)
@given(text=yaml_text(), cmd=st.sampled_from(CONFIG_COMMANDS),
       sets=st.lists(st.sampled_from(SETS), max_size=2))
def test_fuzz_config(text, cmd, sets, capfd):
    "YAML configs: wrong types, unknown keys and sections, anchors, merges, a bomb, deep nesting, damaged bytes."
    argv = cmd + [a for s in sets for a in ("--set", s)] if cmd[0] not in ("run",) else cmd
    files = {"c.yaml": text, "g.jsonl": valid_file("grpo"), "s.jsonl": valid_file("sft")}
    run_case(f"config ({cmd[0]})", files, argv, capfd, outputs=DATA_OUT if cmd[0] in ("data", "run") else (),
             allow_success=cmd[0] in ("data", "run", "vram"))

# --- command lines --------------------------------------------------------------------------------------------------

def command_options() -> dict:
    "Each subcommand's options: option → number of values (0 for switches) and its choices (or None)."
    from qwen_kd.cli import make_parser
    out = {}
    for cmd, p in make_parser()._subparsers._group_actions[0].choices.items():
        out[cmd] = {o: (a.nargs == 0, a.choices) for a in p._actions for o in a.option_strings if o not in ("-h", "--help")}
    return out

OPTIONS = command_options()
VALUES = ["0", "1", "-1", "0.5", "1e-5", "nan", "inf", "1e309", "99999999999999999999", "", " ", "null", "~", "true",
          "[1, 2]", "{a: 1}", "[", "a: [1", "&a [*a]", "\u202e", "é", "\udcff", "x" * 5000, "a\nb", "teacher=no_model",
          "t=no_model+no_lora,s=no_model", "=", ",", "bad name=x"] + PATHS
JUNK = ["--nope", "-x", "--", "--set", "k=v", "--config", "--force", "--help-me", "-", "--grpo=g.jsonl"]

@st.composite
def command_line(draw) -> list:
    "A subcommand and a few of its options with values valid or not, now and then a stray token."
    cmd = draw(st.sampled_from(["data", "data", "data", "vram", "train", "teacher", "eval", "run"]))
    argv = [cmd]
    if cmd == "data" and not rarely(draw, 4): argv += ["--grpo", "g.jsonl", "--sft", "s.jsonl", "--out", "out"]
    if cmd == "run": argv.append(draw(st.sampled_from(["c.yaml", "nope.yaml", "g.jsonl", ""])))
    if cmd in ("vram", "train", "teacher", "eval") and draw(st.booleans()): argv += ["--config", "c.yaml"]
    opts = OPTIONS[cmd]
    for o in draw(st.lists(st.sampled_from(sorted(opts)), max_size=4)):
        switch, choices = opts[o]
        argv.append(o)
        if not switch: argv.append(draw(st.sampled_from(list(choices or []) + VALUES)))
    if rarely(draw, 4): argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(JUNK)))
    return argv

CONFIG = yaml.safe_dump({"data": {"grpo": "g.jsonl", "sft": "s.jsonl", "out": "out"}, "teacher": {"base": "no_model"},
                         "train": {"student": "no_model"}}).encode()

@fuzz_settings("flags")
@seed(SEED)
@given(argv=command_line())
def test_fuzz_flags(argv, capfd):
    "Flag combinations of every subcommand but demo: values of the wrong type, out of range, odd text, stray tokens."
    files = {"c.yaml": CONFIG, "g.jsonl": valid_file("grpo"), "s.jsonl": valid_file("sft")}
    ok = argv[0] in ("data", "run", "vram")  # the others name no existing model: they cannot succeed
    run_case(f"flags ({argv[0]})", files, argv, capfd, outputs=DATA_OUT if argv[0] in ("data", "run") else (),
             allow_success=ok)

# --- the alias bomb ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["config file", "--set"])
def test_fuzz_alias_bomb(where, tmp_path, capfd, monkeypatch):
    "Billion laughs (10^9 values from a few hundred bytes), as a config or a --set value: one line in < 2 s, < 50 MB."
    import tracemalloc
    from qwen_kd.cli import main
    levels = "[" + ", ".join(["&a [x, x, x, x, x, x, x, x, x, x]"] + [f"&{c} [{', '.join(['*' + p] * 10)}]"
                                                                   for p, c in zip("abcdefgh", "bcdefghi")]) + "]"
    cfg = "data:\n  grpo: g.jsonl\n  sft: s.jsonl\n  out: out\n"
    (tmp_path/"c.yaml").write_text(cfg + (f"  system_prompt: {levels}\n" if where == "config file" else ""))
    argv = ["data", "--config", "c.yaml"] + (["--set", f"system_prompt={levels}"] if where == "--set" else [])
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    tracemalloc.start(); t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e: main(argv)
    secs, peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    lines = [l for l in capfd.readouterr().err.splitlines() if l.strip()]
    assert e.value.code == 2 and len(lines) == 1, lines
    assert "refused: its aliases expand to more than 100,000 values" in lines[0], lines[0]
    assert secs < 2 and peak < 50 * 2**20, (secs, peak)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    print(f"\nalias bomb ({where}): refused in {secs * 1000:.0f} ms, peak {peak / 2**20:.1f} MB traced")

# --- the cases kept from earlier runs, and the count ------------------------------------------------------------------

def kept_cases() -> list:
    "The kept examples; one whose bug lives in another module is an xfail (strict: it fails once fixed, to be unmarked)."
    out = []
    for d in sorted(p for p in EXAMPLES.iterdir() if (p/"case.yaml").exists()) if EXAMPLES.exists() else []:
        why = yaml.safe_load((d/"case.yaml").read_text(encoding="utf-8")).get("xfail")
        out.append(pytest.param(d.name, marks=pytest.mark.xfail(reason=why, strict=True)) if why else d.name)
    return out

@pytest.mark.parametrize("case", kept_cases())
def test_fuzz_examples_replay(case, capfd):
    "Every failing case found, kept as a fixture: it now ends in its expected exit code, one line, nothing else written."
    d = EXAMPLES/case
    c = yaml.safe_load((d/"case.yaml").read_text(encoding="utf-8"))
    files = {str(p.relative_to(d/"files")): p.read_bytes() for p in sorted((d/"files").rglob("*")) if p.is_file()}
    code, err = run_case("kept examples", files, c["argv"], capfd, outputs=c.get("outputs", ()),
                         allow_success=c["exit"] == 0)
    assert code == c["exit"], (code, err)
    for want in c.get("expect", []): assert want in err, (want, err)

def test_fuzz_count():
    "At least 2,000 generated cases when every generator ran (run with -s for the counts by stage and their time)."
    gens = ("data (json/jsonl)", "data (parquet/csv/tsv)", "data + tokenizer")
    if not all(COUNTS[g] for g in gens) or not any(k.startswith("config") for k in COUNTS) \
       or not any(k.startswith("flags") for k in COUNTS):
        pytest.skip("run the whole file to count")
    total = sum(v for k, v in COUNTS.items() if k != "kept examples")
    rows = [f"{k:<26} {v:>6} cases {SECONDS[k]:7.1f} s  exit 0: {OUTCOMES[k, 0]:>5}  exit 2: {OUTCOMES[k, 2]:>5}"
            for k, v in sorted(COUNTS.items())]
    print("\nfuzz: " + f"{total} generated cases\n" + "\n".join(rows))
    print("slowest:", *SLOWEST, sep="\n  ")
    if os.environ.get("QWEN_KD_FUZZ_MESSAGES"):
        print("\n".join(f"{n:>5} {k}" for k, n in MESSAGES.most_common(int(os.environ["QWEN_KD_FUZZ_MESSAGES"]))))
    assert total >= min(2000, TOTAL) * 0.95, total

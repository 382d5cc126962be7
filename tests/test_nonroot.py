"""Permission errors as a user meets them: an input they may not read, an output folder they may not write. Each ends
in one `qwen-kd: error:` line naming the path, and nothing is written anywhere.

Tests here often run as root, for whom permission bits deny nothing; so the command runs in a child process that
drops to the unprivileged user `nobody` first. The child is forked from this process (it already holds the package
in memory: the interpreter itself may sit under a folder `nobody` cannot enter, like /root/.pyenv), calls `main`
and reports its exit code, stdout and stderr. Not root (a CI runner), the child keeps the user it has.
"""
import json, os, pwd, shutil, stat, tempfile, traceback
from pathlib import Path
import pytest

def unprivileged() -> tuple[int, int]|None:
    "(uid, gid) of `nobody` when running as root; None otherwise (the current user is unprivileged already)."
    if os.geteuid() != 0: return None
    try: pw = pwd.getpwnam("nobody")
    except KeyError: pytest.skip("running as root and there is no user 'nobody' to drop to")
    return pw.pw_uid, pw.pw_gid

def run_as_user(argv: list, cwd: Path) -> tuple[int, str, str]:
    "Fork, drop root (to nobody) in the child, run `main(argv)` there in `cwd`; returns (exit code, stdout, stderr)."
    import qwen_kd.cli  # in memory before the fork: the child may not be allowed to read the package's files
    ids, (r_out, w_out), (r_err, w_err) = unprivileged(), os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            import sys
            os.dup2(w_out, 1); os.dup2(w_err, 2)
            sys.stdout = open(1, "w", closefd=False, errors="backslashreplace")  # pytest's capture is not fd 1, 2
            sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")
            if ids:
                os.setgroups([]); os.setgid(ids[1]); os.setuid(ids[0])
                os.environ["HOME"] = str(cwd)
            assert os.geteuid() != 0
            os.chdir(cwd)
            try: qwen_kd.cli.main(argv)
            except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
        except BaseException: traceback.print_exc()
        finally:
            import sys
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)  # no cleanup of the parent's state (pytest, temporary folders) in the child
    os.close(w_out); os.close(w_err)
    with os.fdopen(r_out) as o, os.fdopen(r_err) as e: out, err = o.read(), e.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out, err

def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_mode, None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}

@pytest.fixture
def world(tmp_path_factory):
    "A folder the unprivileged user can enter: readable inputs, a folder it may write, one it may not."
    from qwen_kd.demo import make_demo_data
    root = Path(tempfile.mkdtemp(prefix="qwen_kd_nonroot_"))
    try:
        root.chmod(0o755)
        files = make_demo_data(root/"data", 30, 30)
        (root/"data").chmod(0o755)
        for f in files.values(): f.chmod(0o644)
        (root/"writable").mkdir(); (root/"writable").chmod(0o777)
        (root/"readonly").mkdir(); (root/"readonly").chmod(0o555)
        yield root, files
    finally: shutil.rmtree(root)

def one_line(code: int, err: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert "Traceback" not in err, err[-3000:]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("qwen-kd: error: "), (code, err[-3000:])
    return lines[0]

def test_nonroot_unreadable_input(world):
    "An input file its owner kept to themselves: one line naming it; the output folder made for the lock is gone."
    root, files = world
    files["grpo"].chmod(0o000)
    before = snapshot(root)
    code, out, err = run_as_user(["data", "--grpo", str(files["grpo"]), "--sft", str(files["sft"]),
                                  "--out", str(root/"writable"/"mixed")], root)
    assert one_line(code, err) == (f"qwen-kd: error: permission denied: {files['grpo']} "
                                   "(check its permissions or choose another path)")
    assert snapshot(root) == before, "something was written"

def test_nonroot_unreadable_config(world):
    "A config file it may not read: one line naming it, nothing written."
    root, files = world
    cfg = root/"c.yaml"
    cfg.write_text(f"data:\n  grpo: {files['grpo']}\n  sft: {files['sft']}\n  out: {root/'writable'/'mixed'}\n")
    cfg.chmod(0o600)
    before = snapshot(root)
    code, out, err = run_as_user(["data", "--config", str(cfg)], root)
    assert one_line(code, err) == f"qwen-kd: error: permission denied: {cfg} (check its permissions or choose another path)"
    assert snapshot(root) == before

@pytest.mark.parametrize("where", ["new folder inside", "the folder itself"])
def test_nonroot_unwritable_output(world, where):
    "An output folder it may not write (to be made inside a read-only folder, or read-only itself): one line, no writes."
    root, files = world
    out = root/"readonly"/"mixed" if where == "new folder inside" else root/"readonly"
    before = snapshot(root)
    code, _, err = run_as_user(["data", "--grpo", str(files["grpo"]), "--sft", str(files["sft"]), "--out", str(out)],
                               root)
    line = one_line(code, err)
    assert line.startswith(f"qwen-kd: error: permission denied: {out}") and "(check its permissions" in line, line
    assert snapshot(root) == before

def test_nonroot_succeeds_where_allowed(world):
    "The same user, a folder it may write: the stage runs (the denials above are the permissions, not the setup)."
    root, files = world
    code, out, err = run_as_user(["data", "--grpo", str(files["grpo"]), "--sft", str(files["sft"]),
                                  "--out", str(root/"writable"/"mixed")], root)
    assert code == 0, err[-3000:]
    made = root/"writable"/"mixed"
    assert sorted(p.name for p in made.iterdir()) == ["stats.json", "train.jsonl", "val.jsonl"]
    if unprivileged(): assert made.stat().st_uid == pwd.getpwnam("nobody").pw_uid  # written by nobody, not root
    assert json.loads((made/"stats.json").read_text())["counts"]["train"] > 0

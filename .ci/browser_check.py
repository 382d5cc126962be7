"""Open the notebooks in a real JupyterLab in headless Chromium, Run All Cells, and report per notebook: cells, seconds,
error outputs, stderr outputs, images; where a notebook shows a widget with a Run button (03c_playground), click it
and check that the widget's summary gains a run. Screenshots go to `_preview/shots/`. Not part of CI (minutes per
notebook on a small CPU). Usage: `python .ci/browser_check.py [NAME ...]` (default: every notebook).

Needs `jupyterlab` and `playwright` (pip; installed here if missing) and Debian's `chromium` (`apt-get install -y
chromium`, done here if missing and allowed); Playwright's own browser download is not used. The notebooks run on
copies in a temporary folder, so the committed ones are never modified."""
import argparse, importlib.util, json, os, re, secrets, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
RUN_ALL = 'li.lm-Menu-item[data-command="runmenu:run-all"]'
SAVE = 'li.lm-Menu-item[data-command="docmanager:save"]'

def ensure_prereqs():
    "pip-install jupyterlab and playwright if missing; apt-get install Debian's chromium if missing."
    for mod in ("jupyterlab", "playwright"):
        if importlib.util.find_spec(mod) is None:
            print(f"installing {mod} (pip)", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", mod], check=True)
    if not Path(CHROMIUM).exists():
        print("installing chromium (apt-get)", flush=True)
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(sudo + ["apt-get", "install", "-y", "chromium"], env=env).returncode:
            subprocess.run(sudo + ["apt-get", "update"], env=env, check=True)
            subprocess.run(sudo + ["apt-get", "install", "-y", "chromium"], env=env, check=True)

def workdir() -> Path:
    """A temporary nbs/ beside links to the rest of the repo (notebooks read `../configs`, `../benchmarks`); each
    notebook is copied into it just before it is checked (`check`), so a long run checks the current versions."""
    d = Path(tempfile.mkdtemp(prefix="qwen_kd_browser_"))
    for p in ROOT.iterdir():
        if p.name not in ("nbs", ".git", "_preview", "_proc"): (d/p.name).symlink_to(p)
    shutil.copytree(ROOT/"nbs", d/"nbs", ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", ".last_*"))
    settings = d/".lab"/"settings"/"@jupyterlab"
    # every cell in the DOM (no virtual scrolling), no news or update pop-ups
    for ext, val in (("notebook-extension/tracker", {"windowingMode": "none"}),
                     ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False})):
        f = settings/f"{ext}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True); f.write_text(json.dumps(val))
    (d/".lab"/"workspaces").mkdir()
    return d

def free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def start_lab(root: Path, port: int, token: str) -> subprocess.Popen:
    "`jupyter lab` on `root`, headless, logging to root/.lab/lab.log; returns once it answers."
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "JUPYTERLAB_SETTINGS_DIR": str(root/".lab"/"settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root/".lab"/"workspaces")}
    env.pop("MPLBACKEND", None)  # the kernel's inline backend draws figures into the notebook
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False"]
    if os.geteuid() == 0: cmd.append("--allow-root")
    log = open(root/".lab"/"lab.log", "w")
    lab = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(180):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2); return lab
        except OSError: time.sleep(1)
        if lab.poll() is not None: break
    stop_lab(lab)
    raise SystemExit(f"jupyter lab did not start; see {root/'.lab'/'lab.log'}")

def stop_lab(lab: subprocess.Popen):
    "Stop the server we started (it shuts its kernels down); its process group if it does not exit."
    if lab.poll() is not None: return
    lab.terminate()  # SIGTERM: the server shuts its kernels down and exits
    try: lab.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(lab.pid, signal.SIGTERM); lab.wait(30)

def shutdown_kernels(port: int, token: str):
    "Delete every session (and its kernel): one notebook's models are gone before the next starts."
    base = f"http://127.0.0.1:{port}/api/sessions"
    for s in json.load(urllib.request.urlopen(f"{base}?token={token}")):
        urllib.request.urlopen(urllib.request.Request(f"{base}/{s['id']}?token={token}", method="DELETE"))

STATS = r"""() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return null;
  const code = [...nb.querySelectorAll('.jp-CodeCell')];
  const src = c => ((c.querySelector('.jp-InputArea-editor .cm-content') || {}).innerText || '').trim();
  const prompt = c => ((c.querySelector('.jp-InputPrompt') || {}).innerText || '').trim();
  const stderr = [...nb.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')];
  const tb = stderr.filter(o => /^-{20,}\s*\n|Traceback \(most recent call last\)/.test(o.innerText));
  return {cells: nb.querySelectorAll('.jp-Cell').length, code: code.length,
          running: code.filter(c => prompt(c).includes('*')).length,
          not_run: code.filter(c => src(c) && !/\[\d+\]/.test(prompt(c))).length,
          errors: tb.length, stderr: stderr.length - tb.length,
          images: nb.querySelectorAll('.jp-OutputArea-output img').length,
          error_text: tb.map(o => o.innerText.slice(0, 400)),
          stderr_text: stderr.filter(o => !tb.includes(o)).map(o => o.innerText.slice(0, 200))};
}"""

def kernel_status(page) -> str:
    return page.evaluate("() => [...document.querySelectorAll('.jp-StatusBar-Widget')].map(x => x.innerText).join(' ')")

def dismiss_dialogs(page):
    "Accept any dialog JupyterLab raises (e.g. a kernel choice); a kernelspec'd notebook should raise none."
    for b in page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").all():
        if b.is_visible(): b.click()

def wait_idle(page, timeout: float, t0: float):
    "Until no cell is queued or running and the kernel is idle, twice in a row."
    calm = 0
    while time.time() - t0 < timeout:
        s, st = page.evaluate(STATS), kernel_status(page)
        calm = calm + 1 if s and s["running"] == 0 and "Idle" in st else 0
        if calm >= 2: return True
        dismiss_dialogs(page); time.sleep(2)
    return False

def menu(page, label: str, item: str):
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{label}$")).click()
    page.locator(item).click()

def summary_lines(box) -> int:
    "Runs listed in the playground's summary (an HTML widget, one run per `<br>`-separated line)."
    html = box.locator(".widget-html-content").last.inner_html().strip()
    return len([l for l in re.split(r"<br\s*/?>", html) if l.strip()])

def click_widget_run(page, shots: Path, name: str, timeout: float) -> str | None:
    "Click the Run button of a widget that lists its runs; None if the notebook shows no such widget."
    run = page.locator("button.jupyter-button", has_text=re.compile(r"^\s*Run\s*$"))
    boxes = page.locator(".widget-vbox", has=run).filter(has=page.locator(".widget-html-content"))
    if boxes.count() == 0: return None
    box = boxes.last
    box.scroll_into_view_if_needed()
    before, t0 = summary_lines(box), time.time()
    box.locator("button.jupyter-button", has_text=re.compile(r"^\s*Run\s*$")).last.click()
    after = before
    while time.time() - t0 < timeout:
        time.sleep(3)
        after = summary_lines(box)
        if after > before: break
    box.screenshot(path=str(shots/f"{name}_widget.png"))
    ok = "ok" if after > before else "FAILED"
    return f"{ok}: runs {before} -> {after} in {time.time() - t0:.0f} s"

def saved_outputs(path: Path) -> dict:
    "Error and image outputs in the notebook as JupyterLab saved it (a cross-check of what the page showed)."
    nb = json.loads(path.read_text())
    outs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    return {"saved_errors": sum(o["output_type"] == "error" for o in outs),
            "saved_images": sum(any(k.startswith("image/") for k in o.get("data", {})) for o in outs)}

def check(ctx, base: str, token: str, wd: Path, name: str, shots: Path, timeout: float) -> dict:
    "Open, Run All, wait, count, screenshot, click the widget's Run (if any), save the copy and re-read it."
    path = wd/"nbs"/f"{name}.ipynb"
    shutil.copy2(ROOT/"nbs"/f"{name}.ipynb", path)
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{base}/lab/tree/nbs/{name}.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    t0 = time.time()
    while "Idle" not in kernel_status(page) and time.time() - t0 < 180: dismiss_dialogs(page); time.sleep(1)
    t0 = time.time()
    menu(page, "Run", RUN_ALL)
    done = wait_idle(page, timeout, t0)
    secs = time.time() - t0
    res = {"name": name, **(page.evaluate(STATS) or {}), "seconds": round(secs), "finished": done}
    page.screenshot(path=str(shots/f"{name}.png"))
    res["widget"] = click_widget_run(page, shots, name, timeout) if done else None
    mtime = path.stat().st_mtime
    menu(page, "File", SAVE)
    for _ in range(60):
        if path.stat().st_mtime != mtime: break
        time.sleep(1)
    time.sleep(1)
    res.update(saved_outputs(path))
    page.close()
    return res

def row(r: dict) -> str:
    w = r.get("widget") or "-"
    return (f"{r['name']:<18} {r.get('code', 0):>4}/{r.get('cells', 0):<4} {r.get('not_run', '?'):>7} "
            f"{r['seconds']:>7} "
            f"{r.get('errors', '?'):>6} {r['saved_errors']:>6} {r.get('stderr', '?'):>6} {r.get('images', '?'):>6} "
            f"{r['saved_images']:>6}  {w}" + ("" if r["finished"] else "   TIMED OUT"))

HEADER = (f"{'notebook':<18} {'code/all':>9} {'not run':>7} {'seconds':>7} {'errors':>6} {'saved':>6} {'stderr':>6} "
          f"{'images':>6} {'saved':>6}  widget Run click")

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="notebook names without .ipynb (default: all)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one notebook (or one widget run) may take")
    ap.add_argument("--keep", action="store_true", help="keep the temporary working copy (and lab.log)")
    a = ap.parse_args()
    names = a.names or sorted(p.stem for p in (ROOT/"nbs").glob("*.ipynb") if not p.name.startswith("_"))
    missing = [n for n in names if not (ROOT/"nbs"/f"{n}.ipynb").exists()]
    if missing: raise SystemExit(f"no such notebook: {missing}")
    ensure_prereqs()
    from playwright.sync_api import sync_playwright
    shots = ROOT/"_preview"/"shots"; shots.mkdir(parents=True, exist_ok=True)
    wd, port, token = workdir(), free_port(), secrets.token_hex(16)
    lab, results, t_all = start_lab(wd, port, token), [], time.time()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            ctx = browser.new_context(viewport={"width": 1280, "height": 1600})
            print(HEADER, flush=True)
            for n in names:
                try: r = check(ctx, f"http://127.0.0.1:{port}", token, wd, n, shots, a.timeout)
                except Exception as e:  # one notebook's failure is reported, the others still run
                    r = {"name": n, "seconds": 0, "finished": False, "saved_errors": "?", "saved_images": "?",
                         "widget": f"check failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"}
                results.append(r)
                print(row(r), flush=True)
                for t in r.get("error_text", []): print("    error:", t.replace("\n", "\n           "), flush=True)
                for t in r.get("stderr_text", []):
                    print("    stderr:", (t.strip().splitlines() or [""])[0][:150], flush=True)
                shutdown_kernels(port, token)
            browser.close()
    finally:
        stop_lab(lab)
        if a.keep: print(f"working copy: {wd}")
        else: shutil.rmtree(wd, ignore_errors=True)
    print(f"total {time.time() - t_all:.0f} s; screenshots in {shots}")
    bad = [r["name"] for r in results if not r["finished"] or r.get("errors") or r.get("not_run")
           or r["saved_errors"] or (r.get("widget") or "").startswith(("FAILED", "check failed"))]
    if bad: print(f"problems: {bad}")
    sys.exit(1 if bad else 0)

if __name__ == "__main__": main()

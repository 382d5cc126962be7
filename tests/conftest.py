import os
# Tests never download: a missing asset must fail at once, not hang on a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest

@pytest.fixture(scope="session")
def demo_assets():
    "The embedded default's data, teacher base + LoRA and student (built once, cached in ~/.cache/qwen_kd)."
    from qwen_kd.demo import build_demo_assets
    return build_demo_assets()

def tree(root) -> dict:
    "Every file and folder under `root` (relative path → size, None for folders): compares a folder before and after."
    from pathlib import Path
    root = Path(root)
    if not root.exists(): return {}
    if root.is_file(): return {".": root.stat().st_size}
    return {str(p.relative_to(root)): (None if p.is_dir() else p.stat().st_size) for p in sorted(root.rglob("*"))}

def tree_hash(root) -> dict:
    "`tree` with content: relative path → (size, sha256) for files, None for folders; a file itself if `root` is one."
    import hashlib
    from pathlib import Path
    def digest(p):
        with open(p, "rb") as f: return (p.stat().st_size, hashlib.file_digest(f, "sha256").hexdigest())
    root = Path(root)
    if not root.exists(): return {}
    if root.is_file(): return {".": digest(root)}
    return {str(p.relative_to(root)): (None if p.is_dir() else digest(p)) for p in sorted(root.rglob("*"))}

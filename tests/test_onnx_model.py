"""The bundled sentence encoder (all-MiniLM-L6-v2, int8 ONNX, base install): its model file is the
pinned one or is refused in one line; a copy of the pinned file at another path is the same model;
and a plain `pip install .` with no extras (no torch) ranks with the hybrid in `digest demo` and
`digest rank`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import ConfigError
from digest.pipeline import load_settings
from digest.ranking import minilm_onnx, semantic

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "digest" / "data" / "hf_daily_papers_2024-10-25.json"


def config(tmp_path: Path, model: Path) -> str:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "x.db"}"\n[ranking]\nmodel = "{model}"\n',
                   encoding="utf-8")
    return str(cfg)


def test_a_model_file_with_the_wrong_hash_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(minilm_onnx.bundled_file().read_bytes()[:-1] + b"\x00")  # one byte changed
    res = CliRunner().invoke(main, ["--config", config(tmp_path, bad), "status"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.output.count("\n") == 1 and res.output.startswith(f"Error: ranking.model: {bad}: sha256 ")
    assert f"is not the pinned all-MiniLM-L6-v2 int8 file ({minilm_onnx.SHA256[:16]}…)" in res.output
    assert not (tmp_path / "x.db").exists()  # refused before anything is opened
    with pytest.raises(minilm_onnx.ModelFileError, match=r"^\S+model\.onnx: sha256 [0-9a-f]{16}… is not the"):
        minilm_onnx.session(bad)  # and at load, whoever asks
    with pytest.raises(semantic.ModelError, match="is not the pinned"):
        semantic.Encoder(str(bad)).embed(["graph neural networks"])
    with pytest.raises(ConfigError, match="no such model file"):
        load_settings(config(tmp_path, tmp_path / "nowhere.onnx"))


def test_the_pinned_file_at_another_path_is_the_same_model(tmp_path):
    copy = tmp_path / "all-MiniLM-L6-v2.onnx"
    shutil.copyfile(minilm_onnx.bundled_file(), copy)
    settings = load_settings(config(tmp_path, copy))  # checked at start, and accepted
    enc = semantic.Encoder(settings.ranking.model)
    assert enc.key == semantic.DEFAULT.key == semantic.BUNDLED_KEY  # its vectors are the bundled ones'
    texts = ["Graph neural networks pass messages.", "Diffusion models denoise images."]
    assert np.allclose(enc.embed(texts), semantic.DEFAULT.embed(texts), atol=1e-6)


def test_the_tokenizer_truncates_and_pads_as_sentence_transformers_does():
    tok = minilm_onnx.tokenizer()
    short, long = tok.encode_batch(["graph neural networks", "word " * 1000])
    assert len(short.ids) == len(long.ids) == minilm_onnx.MAX_TOKENS  # padded to the batch's longest
    assert short.ids[:5] == tok.encode("graph neural networks").ids[:5] and sum(short.attention_mask) == 5
    assert long.ids[-1] == tok.token_to_id("[SEP]")


PAPERS = [
    ("arms", "Teaching Mechanical Arms to Grasp",
     "Mechanical arms learn to pick up and rearrange unfamiliar objects from a few demonstrations. "
     "Grasping policies transfer from simulation to real hardware."),
    ("dp", "Private Training at Scale", "Differential privacy bounds what a model reveals about one record."),
    ("gnn", "Message Passing on Graphs", "Graph neural networks aggregate features over neighbourhoods."),
]


def _offline() -> list[str]:
    """A prefix that runs a command in a network namespace of its own with only loopback up, when
    `unshare -n` works here (root on Linux), else nothing (HF_HUB_OFFLINE=1 is set either way)."""
    wrap = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    if shutil.which("unshare") and shutil.which("ip"):
        if subprocess.run([*wrap, "true"], capture_output=True).returncode == 0:
            return wrap
    return []


OFFLINE = _offline()


@pytest.fixture(scope="session")
def plain_install(tmp_path_factory) -> Path:
    """A venv with `pip install .` alone (no extras: no torch, no sentence-transformers), made once."""
    venv = tmp_path_factory.mktemp("plain-install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    build = tmp_path_factory.mktemp("plain-install-src")
    src = build / "src"  # a copy without the developer's .venv and build leftovers
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "demo",
                                                             "__pycache__", ".pytest_cache", "node_modules"))
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(src)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


@pytest.mark.slow
def test_a_plain_install_ranks_with_the_hybrid_in_demo_and_rank(plain_install, tmp_path):
    bin_ = plain_install / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {"HF_HUB_OFFLINE": "1", "PATH": f"{bin_}:{env.get('PATH', '')}"}

    def run(*args: str) -> str:  # with no network at all where this user may make a namespace for it
        done = subprocess.run([*OFFLINE, str(bin_ / "digest"), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    missing = subprocess.run([str(bin_ / "python"), "-c", "import torch"], capture_output=True, text=True)
    assert missing.returncode == 1 and "No module named 'torch'" in missing.stderr  # truly without torch
    demo = run("demo", "--dir", str(tmp_path / "demo"))
    assert "Ranked by hybrid (lexical + all-MiniLM-L6-v2, int8 ONNX), 135 papers embedded." in demo, demo
    listings = tmp_path / "papers.tsv"
    listings.write_text("paper_id\ttitle\tabstract\n" + "".join(f"{i}\t{t}\t{a}\n" for i, t, a in PAPERS),
                        encoding="utf-8")
    ranked = run("rank", "--listings", str(listings), "--topic", "robotic manipulation")
    assert ranked.splitlines()[-1] == "(ranked by hybrid (lexical + all-MiniLM-L6-v2, int8 ONNX))", ranked
    # a match by meaning alone (no word in common), explained by the sentence that matched
    lines = ranked.splitlines()
    assert lines[0] == "== robotic manipulation (1 of 3 papers)", ranked
    assert lines[1].endswith(f"  arms           {PAPERS[0][1]}"), ranked
    assert lines[2] == f"     Close in meaning to “robotic manipulation”: “{PAPERS[0][2].split('. ')[0]}.”"

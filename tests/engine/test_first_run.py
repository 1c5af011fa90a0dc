"""A first run that talks: a cold kernel cache is noticed, the compile is announced with its
progress, and progress lines on stderr are rewritten on a terminal and not repeated in a log."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from types import SimpleNamespace

from tests.helpers.paths import REPO

from codeup_tui.engine import kernel_cache
from codeup_tui.engine.cli.loading import StatusLine


def test_an_empty_numba_cache_is_cold_and_the_projects_is_not(tmp_path):
    code = "import codeup_tui.engine.kernel_cache as k; print(k.kernels_cold())"
    cold = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert cold.stdout.strip() == "True", cold.stderr


class SlowModel:
    """Evaluates slowly, as a first compile does."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tokenizer = SimpleNamespace(bos_id=1)
        self.evaluated: list[list[int]] = []
        self.was_reset = False

    def eval(self, ids):
        time.sleep(self.seconds)
        self.evaluated.append(list(ids))

    def reset(self):
        self.was_reset = True


def test_warm_up_says_it_compiles_with_progress(monkeypatch):
    monkeypatch.setattr(kernel_cache, "kernels_cold", lambda: True)
    said: list[str] = []
    model = SlowModel(0.7)
    assert kernel_cache.warm_up(model, said.append)
    assert said[0] == "compiling kernels, first run only…"
    assert any(line.startswith("compiling kernels, first run only: 0 compiled, ") for line in said[1:-1])
    assert said[-1].startswith("compiling kernels, first run only: done, ")
    assert model.evaluated == [[1, 1], [1]] and model.was_reset  # the batch and the one-token paths


def test_a_warm_cache_says_nothing(monkeypatch):
    monkeypatch.setattr(kernel_cache, "kernels_cold", lambda: False)
    said: list[str] = []
    assert not kernel_cache.warm_up(SlowModel(0), said.append)
    assert said == []


def test_status_line_in_a_log_prints_news_once():
    log = io.StringIO()
    line = StatusLine(log)
    for text in ("compiling kernels, first run only: 1 compiled, 1 s", "compiling kernels, first run only: 1 compiled, 2 s",
                 "compiling kernels, first run only: 2 compiled, 3 s",
                 "downloading x: 1.0 of ~98 MB, 2.0 MB/s", "downloading x: 1.0 of ~98 MB, 1.0 MB/s"):
        line(text)
    line.end()
    assert log.getvalue().splitlines() == ["compiling kernels, first run only: 1 compiled, 1 s",
                                           "compiling kernels, first run only: 2 compiled, 3 s",
                                           "downloading x: 1.0 of ~98 MB, 2.0 MB/s"]

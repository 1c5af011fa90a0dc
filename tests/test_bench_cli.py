"""`codeup bench`: runs and reports pp/tg numbers (table and JSON), refuses bad input with one
line, and says how to get llama-cpp-python when --compare-llama-cpp cannot have it.

No timing is asserted anywhere: only that numbers are there and make sense as numbers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, fixtures_or_skip


def codeup(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "engine.cli", "bench", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, stdin=subprocess.DEVNULL, env=env)


@pytest.fixture(scope="module")
def tiny_model():
    return str(fixtures_or_skip("tiny-llama", "tiny-llama-Q4_0.gguf"))


def test_bench_prints_a_table(tiny_model):
    proc = codeup("-m", tiny_model, "-p", "8", "-n", "4", "-r", "1", "-t", "1")
    assert proc.returncode == 0, proc.stderr
    rows = {m.group(1): float(m.group(2)) for m in re.finditer(r"^codeup\s+(pp8|tg4)\s+([\d.]+)", proc.stdout, re.M)}
    assert set(rows) == {"pp8", "tg4"} and all(v > 0 for v in rows.values()), proc.stdout
    assert "threads 1" in proc.stdout and "first token s" in proc.stdout and "peak RSS" in proc.stdout
    assert "llama.cpp" not in proc.stdout
    assert "bench: codeup: warm-up" in proc.stderr  # progress goes to stderr


def test_bench_json(tiny_model):
    proc = codeup("-m", tiny_model, "-p", "8", "-n", "4", "-r", "2", "-t", "1", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report["params"] == {"n_prompt": 8, "n_gen": 4, "tg_prompt": 8, "threads": 1, "n_ctx": 12,
                                "batch": 512, "reps": 2, "seed": 0}
    assert report["model"]["file_type"] == "Q4_0" and report["model"]["n_vocab"] == 4096
    ours = report["engines"]["codeup"]
    assert list(report["engines"]) == ["codeup"] and report["ratio"] is None
    for test, tokens in (("pp", 8), ("tg", 4)):
        s = ours[test]
        assert s["tokens"] == tokens and len(s["tokens_per_s"]) == 2
        assert 0 < s["min"] <= s["median"] <= s["max"] and s["stdev"] >= 0
    assert ours["threads"] == 1 and ours["load_s"] > 0 and ours["first_token_s"] > 0
    assert ours["peak_rss_bytes"] > 10 * 2**20


@pytest.mark.parametrize(
    "args,message",
    [
        (["-p", "0"], "-p 0: must be at least 1"),
        (["-n", "0"], "-n 0: must be at least 1"),
        (["-r", "0"], "-r 0: must be at least 1"),
        (["-t", "0"], "-t 0: must be at least 1"),
        (["-c", "8"], "-c 8: the tests need a context of at least 16"),
        (["-p", "x"], "invalid int value"),
        (["-m", "/nonexistent/model.gguf"], "/nonexistent/model.gguf: no such file"),
        (["-m", str(REPO / "README.md")], "not a GGUF or GGML model file"),
        (["--llama-cpp-python", sys.executable], "--llama-cpp-python goes with --compare-llama-cpp"),
    ],
)
def test_bad_input_is_one_line(tiny_model, args, message):
    proc = codeup("-m", tiny_model, "-p", "8", "-n", "8", *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr


def test_compare_without_llama_cpp_is_one_clear_line(tiny_model, tmp_path):
    # A llama_cpp that cannot be imported, whatever this machine has installed.
    fake = tmp_path / "llama_cpp"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('simulated: no libllama')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    proc = codeup("-m", tiny_model, "-p", "8", "-n", "4", "-r", "1", "--compare-llama-cpp", env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("codeup: error: --compare-llama-cpp needs llama_cpp"), proc.stderr
    assert "pip install 'codeup-tui[bench]'" in lines[-1]
    assert not any(line.startswith("codeup: error") for line in lines[:-1])


def test_compare_when_llama_cpp_is_not_installed(tiny_model, monkeypatch, capsys):
    from engine.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    code = main(["bench", "-m", tiny_model, "-p", "8", "-n", "4", "--compare-llama-cpp", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "codeup: error: --compare-llama-cpp needs llama_cpp, which is not installed: install the bench extra "
        "(pip install 'codeup-tui[bench]', which brings llama-cpp-python)"
    )


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python (the bench extra) is not installed")
def test_compare_with_llama_cpp(tiny_model):
    proc = codeup("-m", tiny_model, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--compare-llama-cpp", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert list(report["engines"]) == ["codeup", "llama.cpp"]
    assert report["engines"]["llama.cpp"]["pp"]["median"] > 0
    assert report["ratio"]["pp"] > 0 and report["ratio"]["tg"] > 0

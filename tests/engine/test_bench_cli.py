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

from tests.helpers.paths import REPO, fixtures_or_skip


def codeup(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "bench", *args], capture_output=True,
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
                                "batch": 512, "reps": 2, "seed": 0, "depth": 0}
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
        (["-p", "-1"], "-p -1: must be at least 0"),
        (["-n", "-1"], "-n -1: must be at least 0"),
        (["-d", "-5"], "-d -5: must be at least 0"),
        (["-p", "0", "-n", "0"], "-p 0 and -n 0: nothing to measure"),
        (["-t", "1,x"], "-t 1,x: expected numbers like 1,2 or ranges"),
        (["-t", "4-1"], "-t 4-1: 4-1 is an empty or endless range"),
        (["-d", "0,1-100000"], "more than 1000 values"),
        (["-t", "1,0"], "-t 0: must be at least 1"),
        (["-r", "0"], "-r 0: must be at least 1"),
        (["-t", "0"], "-t 0: must be at least 1"),
        (["-c", "8"], "-c 8: the tests need a context of at least 16"),
        (["-p", "x"], "-p x: expected numbers"),
        (["-c", "20", "-d", "16"], "-c 20: the tests need a context of at least 24"),
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
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = codeup("-m", tiny_model, "-p", "8", "-n", "4", "-r", "1", "--compare-llama-cpp", env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("codeup: error: --compare-llama-cpp needs llama_cpp"), proc.stderr
    assert "pip install 'codeup-tui[bench]'" in lines[-1]
    assert not any(line.startswith("codeup: error") for line in lines[:-1])


def test_compare_when_llama_cpp_is_not_installed(tiny_model, monkeypatch, capsys):
    from codeup_tui.engine.cli import main

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


def test_lists_give_one_test_per_value_thread_count_and_depth(tiny_model):
    proc = codeup("-m", tiny_model, "-p", "8,16", "-n", "4", "-t", "1,2", "-d", "0,12", "-r", "1", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    want = [(test, t, d) for t in (1, 2) for d in (0, 12) for test in ("pp8", "pp16", "tg4")]
    got = [(r["test"].split(" @ ")[0], r["threads"], r["depth"]) for r in report["ratios"]]
    assert got == want
    assert [r["test"] for r in report["ratios"][3:6]] == ["pp8 @ d12", "pp16 @ d12", "tg4 @ d12"]
    assert all(r["codeup"] > 0 and r["llama.cpp"] is None and r["ratio"] is None for r in report["ratios"])
    assert len(report["runs"]) == 12
    for run, (test, t, d) in zip(report["runs"], want):
        p, ours = run["params"], run["engines"]["codeup"]
        assert (p["threads"], p["depth"], ours["threads"]) == (t, d, t)
        if test.startswith("pp"):
            assert p["n_prompt"] == int(test[2:]) and p["n_gen"] == 0 and ours["tg"] is None
            assert p["n_ctx"] == d + p["n_prompt"] and ours["pp"]["median"] > 0
        else:
            assert p["n_prompt"] == 0 and p["n_gen"] == 4 and ours["pp"] is None
            assert p["n_ctx"] == max(d, 8) + 4 and ours["tg"]["median"] > 0


def test_table_of_several_runs_names_the_depth(tiny_model):
    proc = codeup("-m", tiny_model, "-p", "8", "-n", "0", "-t", "1", "-d", "0,12", "-r", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "pp and tg at depth 12" in proc.stdout
    rows = re.findall(r"^(pp8(?: @ d12)?)\s+1\s+([\d.]+)$", proc.stdout, re.M)
    assert [r[0] for r in rows] == ["pp8", "pp8 @ d12"] and all(float(r[1]) > 0 for r in rows)
    assert "tg" not in proc.stdout.split("engine")[1]  # -n 0: no generation test


def test_depth_tokens_are_in_the_cache_when_measuring(tiny_model, monkeypatch, capsys):
    from codeup_tui.engine.cli import main
    from codeup_tui.engine.model import Model

    calls = []  # (tokens in the cache before the call, tokens evaluated)
    real_eval = Model.eval

    def spy(self, ids, **kw):
        calls.append((self.n_past, len(ids)))
        return real_eval(self, ids, **kw)

    monkeypatch.setattr(Model, "eval", spy)
    code = main(["bench", "-m", tiny_model, "-p", "8", "-n", "3", "-d", "20", "-r", "2", "-t", "1", "-q", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"]["depth"] == 20 and report["params"]["n_ctx"] == 28
    assert calls[0] == (0, 20)  # the cache filled once to the depth
    measured = calls[1:-1]  # then warm-up and repetitions; the last call is start-to-first-token's
    pp = [c for c in measured if c[1] == 8]
    tg = [c for c in measured if c[1] == 1]
    assert len(pp) == 3 and len(tg) == 1 + 2 * 3 and len(pp) + len(tg) == len(measured)
    assert all(start == 20 for start, _ in pp)  # every prompt measured after the depth tokens
    assert sorted({start for start, _ in tg}) == [20, 21, 22]  # generation continues after them
    assert calls[-1] == (0, 8)  # start to first token: a fresh load and the short prompt


def test_json_ratios_of_several_runs():
    from codeup_tui.engine.bench import BenchParams, BenchReport, EngineResult, Series, reports_json

    def result(engine, pp, tg):
        r = EngineResult(engine, "v", 2, pp=Series(64) if pp else None, tg=Series(16) if tg else None)
        for v in pp:
            r.pp.add(64 / v)
        for v in tg:
            r.tg.add(16 / v)
        return r

    model = {"path": "m.gguf"}
    a = BenchReport(BenchParams("m.gguf", n_prompt=64, n_gen=0, threads=2), model,
                    [result("codeup", [100.0, 90.0, 110.0], []), result("llama.cpp", [200.0, 200.0, 200.0], [])])
    b = BenchReport(BenchParams("m.gguf", n_prompt=0, n_gen=16, threads=1, depth=2000), model,
                    [result("codeup", [], [30.0]), result("llama.cpp", [], [20.0])])
    data = reports_json([a, b])
    assert data["ratios"] == [
        {"test": "pp64", "threads": 2, "depth": 0, "codeup": 100.0, "llama.cpp": 200.0, "ratio": 0.5},
        {"test": "tg16 @ d2000", "threads": 1, "depth": 2000, "codeup": 30.0, "llama.cpp": 20.0, "ratio": 1.5},
    ]
    assert [r["ratio"] for r in data["runs"]] == [{"pp": 0.5}, {"tg": 1.5}]
    assert data["runs"][1]["params"]["depth"] == 2000 and data["runs"][1]["engines"]["codeup"]["pp"] is None
    assert reports_json([a]) == a.to_json()  # one run: the report itself, as before


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python (the bench extra) is not installed")
def test_compare_with_llama_cpp_at_depth_gives_every_ratio(tiny_model):
    proc = codeup("-m", tiny_model, "-p", "8", "-n", "4", "-d", "0,8", "-r", "1", "-t", "1", "--compare-llama-cpp", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["ratios"]
    assert [r["test"] for r in rows] == ["pp8", "tg4", "pp8 @ d8", "tg4 @ d8"]
    assert all(r["llama.cpp"] > 0 and r["ratio"] > 0 for r in rows)

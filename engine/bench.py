"""Speed measurement: prompt processing and generation tokens/s, load time, start-to-first
token and peak memory, for this engine and (for comparison) llama.cpp through
llama-cpp-python — the `codeup bench` command's logic.

What is measured, per engine, on the same file, threads, context size and token ids:
- pp: `n_prompt` random token ids evaluated from an empty cache, in batches of `batch`
  tokens (llama.cpp's n_batch = n_ubatch); tokens/s = n_prompt / seconds.
- tg: a short prompt (`tg_prompt` tokens, not timed), then `n_gen` single-token evals of
  random ids (as llama-bench does: no sampling); tokens/s = n_gen / seconds.
- depth (llama-bench's -d): with `depth` > 0 the cache first holds `depth` random tokens
  (evaluated once, not timed), and pp and tg are measured after them (no short prompt
  then); each repetition drops what the previous one added and keeps those `depth`.
- n_prompt 0 or n_gen 0 leaves that test out (as llama-bench's -p 0 / -n 0).
- load: the first load in the process (file mapping, weight setup); llama.cpp: `Llama()`.
- first token (warm): after the measured repetitions, close the model, then time loading it
  again + evaluating the short prompt + picking the first generated token (argmax). Warm:
  the file is in the page cache and the JIT code is compiled or cached.
- peak RSS: the process's maximum resident set (getrusage). llama.cpp runs in a child
  process of its own, so each engine's peak is its own, and the two never share threads.

Repetitions of the two engines are interleaved (and their order alternates), so noise from
other work on the machine hits both alike. One warm-up run of each precedes them.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CodeupError, UsageError
from .openmp_env import environ_for_other_programs

TG_PROMPT_TOKENS = 8
BUSY_WARNING = 0.15  # other work taking more than this share of the CPUs makes numbers noisy
INSTALL_HINT = "install the bench extra (pip install 'codeup-tui[bench]', which brings llama-cpp-python)"


@dataclass(frozen=True)
class BenchParams:
    model: str
    n_prompt: int = 512
    n_gen: int = 128
    threads: int = 2
    reps: int = 3
    batch: int = 512
    n_ctx: int | None = None  # default: room for both tests
    tg_prompt: int = TG_PROMPT_TOKENS
    seed: int = 0
    depth: int = 0  # tokens already in the cache when pp and tg are measured
    mmap: bool = False  # ours: keep the weights mapped instead of reading them into memory

    @property
    def tg_prefix(self) -> int:
        """Tokens in the cache before the first timed generated token."""
        return self.depth if self.depth else self.tg_prompt

    @property
    def needed_context(self) -> int:
        return max(self.depth + self.n_prompt, self.tg_prefix + self.n_gen if self.n_gen else 0, 1)

    @property
    def context(self) -> int:
        return self.n_ctx if self.n_ctx is not None else self.needed_context

    def check(self) -> None:
        for flag, value, low in (("-p", self.n_prompt, 0), ("-n", self.n_gen, 0), ("-r", self.reps, 1),
                                 ("-t", self.threads, 1), ("-b", self.batch, 1), ("-d", self.depth, 0)):
            if value < low:
                raise UsageError(f"{flag} {value}: must be at least {low}")
        if self.threads > 1024:
            raise UsageError(f"-t {self.threads}: at most 1024 threads")
        if not self.n_prompt and not self.n_gen:
            raise UsageError("-p 0 and -n 0: nothing to measure")
        need = self.needed_context
        if self.n_ctx is not None and self.n_ctx < need:
            raise UsageError(f"-c {self.n_ctx}: the tests need a context of at least {need}")


@dataclass
class Series:
    """Tokens/s of each repetition."""

    tokens: int
    tokens_per_s: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.tokens_per_s.append(self.tokens / seconds if seconds > 0 else float("inf"))

    def summary(self) -> dict[str, Any]:
        v = self.tokens_per_s
        return {
            "tokens": self.tokens,
            "tokens_per_s": [round(x, 3) for x in v],
            "median": round(statistics.median(v), 3) if v else None,
            "min": round(min(v), 3) if v else None,
            "max": round(max(v), 3) if v else None,
            "stdev": round(statistics.stdev(v), 3) if len(v) > 1 else 0.0,
        }

    @property
    def median(self) -> float | None:
        return statistics.median(self.tokens_per_s) if self.tokens_per_s else None


@dataclass
class EngineResult:
    engine: str
    version: str
    threads: int
    load_s: float = 0.0
    first_token_s: float = 0.0
    peak_rss_bytes: int = 0
    pp: Series | None = None
    tg: Series | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["pp"] = self.pp.summary() if self.pp else None
        d["tg"] = self.tg.summary() if self.tg else None
        d["load_s"] = round(self.load_s, 4)
        d["first_token_s"] = round(self.first_token_s, 4)
        return d


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux: ru_maxrss is in KiB; macOS: bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _batches(tokens: list[int], batch: int):
    for i in range(0, len(tokens), batch):
        yield tokens[i : i + batch]


# ---- the engines ------------------------------------------------------------------------------
class CodeupRunner:
    """This engine, in this process."""

    name = "codeup"

    def __init__(self, p: BenchParams) -> None:
        self.p = p
        self.model = None

    def load(self) -> float:
        """Seconds until the model is ready to answer; then, untimed, until its weights are
        read into memory (the timed tests measure the steady state)."""
        elapsed = self._open()
        self.model.wait_in_memory()
        return elapsed

    def _open(self) -> float:
        from .model import load_model

        start = time.perf_counter()
        self.model = load_model(self.p.model, n_ctx=self.p.context, n_threads=self.p.threads, mmap=self.p.mmap)
        return time.perf_counter() - start

    def describe(self) -> dict[str, Any]:
        from . import __version__

        return {"version": __version__, "threads": self.model.threads.limit}

    def fill(self, tokens: list[int]) -> None:
        """An empty cache, then `tokens` evaluated (not timed): the depth of the tests."""
        self.model.reset()
        for part in _batches(tokens, self.p.batch):
            self.model.eval(part)

    def pp(self, tokens: list[int], keep: int = 0) -> float:
        m = self.model
        m.rewind(keep)
        start = time.perf_counter()
        for part in _batches(tokens, self.p.batch):
            m.eval(part)
        return time.perf_counter() - start

    def tg(self, prompt: list[int], tokens: list[int], keep: int = 0) -> float:
        m = self.model
        m.rewind(keep)
        if prompt:
            m.eval(prompt)
        start = time.perf_counter()
        for t in tokens:
            m.eval([t])
        return time.perf_counter() - start

    def first_token(self, prompt: list[int]) -> float:
        """Open, then a prompt's first token: the weights' copy into memory runs behind it."""
        self.close()
        start = time.perf_counter()
        self._open()
        logits = self.model.eval(prompt)
        int(np.argmax(logits[-1]))
        return time.perf_counter() - start

    def peak_rss(self) -> int:
        return peak_rss_bytes()

    def close(self) -> None:
        if self.model is not None:
            self.model.close()
            self.model = None
            gc.collect()


class LlamaCppRunner:
    """llama.cpp through llama-cpp-python, in this process (the worker's side)."""

    name = "llama.cpp"

    def __init__(self, p: BenchParams) -> None:
        import llama_cpp  # noqa: F401  (raises ImportError when absent)

        self.p = p
        self.llm = None

    def load(self) -> float:
        from llama_cpp import Llama

        start = time.perf_counter()
        try:
            self.llm = Llama(
                model_path=str(self.p.model), n_ctx=self.p.context, n_batch=self.p.batch,
                n_ubatch=self.p.batch, n_threads=self.p.threads, n_threads_batch=self.p.threads,
                n_gpu_layers=0, flash_attn=False, use_mmap=True, logits_all=False, verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise UsageError(f"llama.cpp cannot load {self.p.model}: {e}") from None
        return time.perf_counter() - start

    def describe(self) -> dict[str, Any]:
        import llama_cpp

        return {"version": f"llama-cpp-python {llama_cpp.__version__}", "threads": self.p.threads}

    def fill(self, tokens: list[int]) -> None:
        self.llm.reset()
        self.llm.eval(tokens)

    def _rewind(self, keep: int) -> None:
        # llama-cpp-python's own way to keep a prefix (Llama.generate's prompt reuse): the
        # next eval() drops the cache from n_tokens on
        self.llm.n_tokens = keep

    def pp(self, tokens: list[int], keep: int = 0) -> float:
        llm = self.llm
        self._rewind(keep)
        start = time.perf_counter()
        llm.eval(tokens)  # in n_batch pieces
        return time.perf_counter() - start

    def tg(self, prompt: list[int], tokens: list[int], keep: int = 0) -> float:
        llm = self.llm
        self._rewind(keep)
        if prompt:
            llm.eval(prompt)
        start = time.perf_counter()
        for t in tokens:
            llm.eval([t])
        return time.perf_counter() - start

    def first_token(self, prompt: list[int]) -> float:
        self.close()
        start = time.perf_counter()
        self.load()
        self.llm.eval(prompt)
        ptr = self.llm._ctx.get_logits_ith(-1)
        int(np.argmax(np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),))))
        return time.perf_counter() - start

    def peak_rss(self) -> int:
        return peak_rss_bytes()

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()
            self.llm = None
            gc.collect()


class RemoteRunner:
    """A runner in a child process (`python -m codeup_tui.engine.bench`), driven over a pipe, one JSON
    line per call. Keeps llama.cpp's threads and memory apart from ours."""

    name = "llama.cpp"

    def __init__(self, p: BenchParams, python: str | None = None) -> None:
        self.p = p
        self._stderr = tempfile.TemporaryFile(mode="w+")
        env = environ_for_other_programs()  # llama.cpp's OpenMP as its users run it
        # That Python may lack codeup-tui (--llama-cpp-python): it is shown the folder that
        # holds this engine as codeup_tui's (the checkout, or site-packages/codeup_tui).
        package_dir = str(Path(__file__).resolve().parent.parent)
        start = ("import runpy, sys, types; package = types.ModuleType('codeup_tui'); "
                 f"package.__path__ = [{package_dir!r}]; sys.modules['codeup_tui'] = package; "
                 "runpy.run_module('codeup_tui.engine.bench', run_name='__main__', alter_sys=True)")
        try:
            self.proc = subprocess.Popen(
                [python or sys.executable, "-c", start], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env,
            )
        except OSError as e:
            raise UsageError(f"cannot start the llama.cpp worker: {e.strerror or e}") from None
        self.call("init", params=asdict(p))

    def call(self, cmd: str, **args) -> Any:
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.proc.wait()
            self._stderr.seek(0)
            tail = [x for x in self._stderr.read().strip().splitlines() if x.strip()][-1:]
            raise CodeupError(f"the llama.cpp worker stopped (status {code}){': ' + tail[0] if tail else ''}")
        reply = json.loads(line)
        if "error" in reply:
            self.close()
            raise CodeupError(reply["error"])
        return reply.get("value")

    def load(self) -> float:
        return self.call("load")

    def describe(self) -> dict[str, Any]:
        return self.call("describe")

    def fill(self, tokens: list[int]) -> None:
        self.call("fill", tokens=tokens)

    def pp(self, tokens: list[int], keep: int = 0) -> float:
        return self.call("pp", tokens=tokens, keep=keep)

    def tg(self, prompt: list[int], tokens: list[int], keep: int = 0) -> float:
        return self.call("tg", prompt=prompt, tokens=tokens, keep=keep)

    def first_token(self, prompt: list[int]) -> float:
        return self.call("first_token", prompt=prompt)

    def peak_rss(self) -> int:
        return self.call("peak_rss")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def _worker_main() -> None:
    """The child side of RemoteRunner: a llama.cpp runner answering one JSON line per call."""
    # Protocol on a private copy of stdout; whatever C code prints goes to stderr instead.
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    runner = None
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.pop("cmd")
        if cmd == "quit":
            break
        try:
            if cmd == "init":
                try:
                    runner = LlamaCppRunner(BenchParams(**msg["params"]))
                except ImportError as e:
                    raise UsageError(f"--compare-llama-cpp needs llama_cpp, which cannot be imported ({e}): {INSTALL_HINT}") from None
                value = None
            elif cmd in ("pp", "tg", "first_token", "fill"):
                value = getattr(runner, cmd)(**msg)
            else:
                value = getattr(runner, cmd)()
            reply = {"value": value}
        except CodeupError as e:
            reply = {"error": str(e)}
        except Exception as e:  # reported to the parent as one line
            reply = {"error": f"llama.cpp worker: {type(e).__name__}: {e}"}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()
    if runner is not None:
        runner.close()


# ---- the measurement ----------------------------------------------------------------------------
@dataclass
class BenchReport:
    params: BenchParams
    model: dict[str, Any]
    results: list[EngineResult]
    # Share of all CPUs busy (with other work: this process is idle then) in the half second
    # before the measurement and after it; None where /proc/stat is not available.
    cpu_busy: tuple[float | None, float | None] = (None, None)

    def ratio(self) -> dict[str, float] | None:
        """Ours / llama.cpp, medians."""
        if len(self.results) < 2:
            return None
        ours, ref = self.results[0], self.results[1]
        out = {}
        for test in ("pp", "tg"):
            a, b = getattr(ours, test), getattr(ref, test)
            if a is not None and b is not None:
                out[test] = round(a.median / b.median, 4) if a.median and b.median else None
        return out

    def to_json(self) -> dict[str, Any]:
        p = self.params
        return {
            "model": self.model,
            "params": {
                "n_prompt": p.n_prompt, "n_gen": p.n_gen, "tg_prompt": p.tg_prefix, "threads": p.threads,
                "n_ctx": p.context, "batch": p.batch, "reps": p.reps, "seed": p.seed, "depth": p.depth,
            },
            "machine": {
                "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                "cpu_busy_before": self.cpu_busy[0],
                "cpu_busy_after": self.cpu_busy[1],
            },
            "engines": {r.engine: r.to_json() for r in self.results},
            "ratio": self.ratio(),
        }


def describe_model(path: str) -> dict[str, Any]:
    from .formats import open_model_file

    with open_model_file(path) as mf:
        tok = mf.tokenizer
        hp = mf.hparams
        return {
            "path": str(path),
            "name": mf.name,
            "format": mf.format_name,
            "file_type": mf.file_type_name,
            "file_bytes": mf.file_size,
            "n_params": mf.n_params,
            "n_vocab": hp.n_vocab if hp else (tok.n_vocab if tok else 0),
            "bos_id": tok.bos_id if tok else None,
        }


def bench_tokens(p: BenchParams, n_vocab: int, bos_id: int | None) -> tuple[list[int], list[int], list[int], list[int]]:
    """The token ids of the tests (the same for every engine): pp prompt, tg prompt, tg
    tokens, and the `depth` tokens in the cache before them (BOS first where there is one)."""
    rng = np.random.default_rng(p.seed)

    def ids(n: int, bos: bool) -> list[int]:
        out = [int(x) for x in rng.integers(0, n_vocab, n)]
        if bos and bos_id is not None and out:
            out[0] = bos_id
        return out

    pp, tg_prompt, tg = ids(p.n_prompt, True), ids(p.tg_prompt, True), ids(p.n_gen, False)
    depth = ids(p.depth, True)
    if depth:  # after the depth tokens, the tests continue a text: no second BOS
        pp = ids(p.n_prompt, False)
    return pp, tg_prompt, tg, depth


def run_bench(p: BenchParams, *, compare_llama_cpp: bool = False, llama_python: str | None = None,
              log=None) -> BenchReport:
    """Measure (see the module docstring). `log(text)` hears about progress."""
    import importlib.util

    p.check()
    say = log or (lambda _text: None)
    model = describe_model(p.model)  # a bad file fails here, with one line
    if compare_llama_cpp and llama_python is None and importlib.util.find_spec("llama_cpp") is None:
        raise UsageError(f"--compare-llama-cpp needs llama_cpp, which is not installed: {INSTALL_HINT}")
    busy_before = cpu_busy()  # while nothing of ours runs yet
    runners: list[Any] = []
    try:
        if compare_llama_cpp:
            remote = RemoteRunner(p, llama_python)  # fails fast when llama_cpp cannot be imported
            runners = [CodeupRunner(p), remote]
        else:
            runners = [CodeupRunner(p)]
        results = []
        for r in runners:
            say(f"{r.name}: loading")
            load_s = r.load()
            info = r.describe()
            results.append(EngineResult(r.name, info["version"], info["threads"], load_s=load_s,
                                        pp=Series(p.n_prompt) if p.n_prompt else None,
                                        tg=Series(p.n_gen) if p.n_gen else None))
        pp_tokens, tg_prompt, tg_tokens, depth_tokens = bench_tokens(p, model["n_vocab"], model["bos_id"])
        short_prompt = tg_prompt  # what start-to-first-token evaluates after loading
        if depth_tokens:
            tg_prompt = []  # generation continues after the depth tokens
            for r in runners:
                say(f"{r.name}: filling the cache to depth {p.depth}")
                r.fill(depth_tokens)
        at = f" at depth {p.depth}" if p.depth else ""
        for r in runners:
            say(f"{r.name}: warm-up")
            if p.n_prompt:
                r.pp(pp_tokens, p.depth)
            if p.n_gen:
                r.tg(tg_prompt, tg_tokens[:1], p.depth)
        for rep in range(p.reps):
            order = list(zip(runners, results))
            if rep % 2:
                order.reverse()  # alternate who goes first
            if p.n_prompt:
                for r, res in order:
                    say(f"{r.name}: pp{p.n_prompt}{at} rep {rep + 1}/{p.reps}")
                    res.pp.add(r.pp(pp_tokens, p.depth))
            if p.n_gen:
                for r, res in order:
                    say(f"{r.name}: tg{p.n_gen}{at} rep {rep + 1}/{p.reps}")
                    res.tg.add(r.tg(tg_prompt, tg_tokens, p.depth))
        for r, res in zip(runners, results):
            say(f"{r.name}: start to first token")
            res.first_token_s = r.first_token(short_prompt)
            res.peak_rss_bytes = r.peak_rss()
        for r in runners:
            r.close()  # idle before sampling the machine again
        return BenchReport(p, model, results, (busy_before, cpu_busy()))
    finally:
        for r in runners:
            try:
                r.close()
            except Exception:
                pass


# ---- the table ------------------------------------------------------------------------------------
def format_table(report: BenchReport) -> str:
    p, m = report.params, report.model
    lines = [
        f"model: {m['path']} ({m['format']}, {m['file_type']}, {_count(m['n_params'])} params, "
        f"{_size(m['file_bytes'])})",
        f"threads {p.threads}, n_ctx {p.context}, batch {p.batch}, reps {p.reps}, "
        + (f"pp and tg at depth {p.depth}" if p.depth else f"tg after a {p.tg_prompt}-token prompt")
        + f", cpus {os.cpu_count()}",
        "",
        f"{'engine':<10} {'test':<14} {'t/s median':>10} {'min':>9} {'max':>9} {'stdev':>8}",
    ]
    for test in ("pp", "tg"):
        for r in report.results:
            series = getattr(r, test)
            if series is None:
                continue
            s = series.summary()
            label = test_label(test, p)
            lines.append(f"{r.engine:<10} {label:<14} {s['median']:>10.2f} {s['min']:>9.2f} {s['max']:>9.2f} {s['stdev']:>8.2f}")
    lines += ["", f"{'engine':<10} {'threads':>7} {'load s':>8} {'first token s':>14} {'peak RSS':>10}  version"]
    for r in report.results:
        lines.append(
            f"{r.engine:<10} {r.threads:>7} {r.load_s:>8.3f} {r.first_token_s:>14.3f} "
            f"{_size(r.peak_rss_bytes):>10}  {r.version}"
        )
    before, after = report.cpu_busy
    if before is not None and after is not None:
        noisy = max(before, after) > BUSY_WARNING
        lines += ["", f"other work on the machine: {100 * before:.0f}% CPU busy before, {100 * after:.0f}% after"
                  + (" (expect noisy numbers)" if noisy else "")]
    ratio = report.ratio()
    if ratio:
        parts = [f"{test_label(t, p)} {v:.3f}x" for t, v in ratio.items() if v is not None]
        lines += ["", f"ratio codeup/llama.cpp (median t/s): {', '.join(parts)}"]
    return "\n".join(lines)


def test_label(test: str, p: BenchParams) -> str:
    """llama-bench's name of a test: pp512, tg128, tg128 @ d2000."""
    label = f"{test}{p.n_prompt if test == 'pp' else p.n_gen}"
    return f"{label} @ d{p.depth}" if p.depth else label


# ---- several configurations (lists of -p, -n, -t, -d) -------------------------------------------------
_RANGE = re.compile(r"(\d+)-(\d+)(?:([+*])(\d+))?")


def parse_int_list(flag: str, text: str) -> list[int]:
    """llama-bench's list forms, separated by commas: numbers ("1,2"), a range "first-last"
    (step 1), "first-last+step", or "first-last*mult" (first, first*mult, ... up to last)."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = _RANGE.fullmatch(part)
        if m:
            a, b, op, k = int(m[1]), int(m[2]), m[3] or "+", int(m[4] or 1)
            if b < a or (op == "+" and k < 1) or (op == "*" and (k < 2 or a < 1)):
                raise UsageError(f"{flag} {text}: {part} is an empty or endless range")
            while a <= b and len(values) <= 1000:
                values.append(a)
                a = a + k if op == "+" else a * k
        elif re.fullmatch(r"-?\d+", part):
            values.append(int(part))
        else:
            raise UsageError(f"{flag} {text}: expected numbers like 1,2 or ranges like 1-4, 0-2000+500, 16-256*2")
    if len(values) > 1000:
        raise UsageError(f"{flag} {text}: more than 1000 values")
    return values


def configurations(base: BenchParams, n_prompt: list[int], n_gen: list[int], threads: list[int],
                   depth: list[int]) -> list[BenchParams]:
    """One measurement per thread count and depth (in that order) and per test, as
    llama-bench: each -p value its own pp test, each -n value its own tg test. With one of
    each (the plain case) they share one run, as before."""
    from dataclasses import replace

    if len(n_prompt) == 1 and len(n_gen) == 1:
        tests = [(n_prompt[0], n_gen[0])]
    else:
        tests = [(n, 0) for n in n_prompt if n] + [(0, n) for n in n_gen if n]
    out = [replace(base, threads=t, depth=d, n_prompt=pp, n_gen=tg) for t in threads for d in depth for pp, tg in tests]
    for p in out:
        p.check()
    if not out:
        raise UsageError("-p 0 and -n 0: nothing to measure")
    return out


def reports_json(reports: list[BenchReport]) -> dict[str, Any]:
    """One report: its JSON as it always was. Several: {"runs": [each report's JSON],
    "ratios": one row per test with its ratio ours / llama.cpp (or null)}."""
    if len(reports) == 1:
        return reports[0].to_json()
    rows = []
    for r in reports:
        ratio = r.ratio() or {}
        for test in ("pp", "tg"):
            if getattr(r.results[0], test) is None:
                continue
            ours = getattr(r.results[0], test).median
            ref = getattr(r.results[1], test).median if len(r.results) > 1 else None
            rows.append({
                "test": test_label(test, r.params), "threads": r.params.threads, "depth": r.params.depth,
                "codeup": round(ours, 3) if ours is not None else None,
                "llama.cpp": round(ref, 3) if ref is not None else None,
                "ratio": ratio.get(test),
            })
    return {"runs": [r.to_json() for r in reports], "ratios": rows}


def format_summary(reports: list[BenchReport]) -> str:
    """The tests of several runs in one table (median t/s), with the ratios when compared."""
    data = reports_json(reports)["ratios"]
    compared = any(row["llama.cpp"] is not None for row in data)
    head = f"{'test':<16} {'threads':>7} {'codeup t/s':>11}"
    if compared:
        head += f" {'llama.cpp t/s':>14} {'ratio':>7}"
    lines = [head]
    for row in data:
        line = f"{row['test']:<16} {row['threads']:>7} {row['codeup']:>11.2f}"
        if compared:
            ref = f"{row['llama.cpp']:>14.2f}" if row["llama.cpp"] is not None else f"{'-':>14}"
            ratio = f"{row['ratio']:>6.3f}x" if row["ratio"] is not None else f"{'-':>7}"
            line += f" {ref} {ratio}"
        lines.append(line)
    return "\n".join(lines)


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), idle


def cpu_busy(interval: float = 0.5) -> float | None:
    """The share of all CPUs busy over `interval` seconds (Linux; None elsewhere). Called while
    this process is idle, it tells how much other work is running."""
    a = _cpu_times()
    if a is None:
        return None
    time.sleep(interval)
    b = _cpu_times()
    if b is None or b[0] <= a[0]:
        return None
    total, idle = b[0] - a[0], b[1] - a[1]
    return round(max(0.0, min(1.0, 1 - idle / total)), 3)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


if __name__ == "__main__":
    _worker_main()

"""Speculative decoding on code edits: tokens/s with and without drafting, and llama.cpp.

    python tests/bench/bench_speculative.py [--model FILE] [--threads 2] [--max-tokens 256]
        [--llama-python PYTHON]   # an interpreter with llama-cpp-python (the bench extra)
        [--json OUT.json] [--repeats 1] [--workload all|edit|open]
        [--save-answers ANSWERS.json] [--force-answers ANSWERS.json]
    python tests/bench/bench_speculative.py --cost-curve [--model FILE] [--depth 1000]

Two prompt sets, greedy, built from real files of this repository:
- edit: a file of 100-300 lines attached, with an instruction whose answer is the whole file
  back with a small change (rename a function, add docstrings, add type hints, fix a bound);
- open: explain code or write new code (little to copy from the prompt).
Per prompt and engine, interleaved (ours without drafting, ours with, llama.cpp plain,
llama.cpp with its prompt-lookup drafting `LlamaPromptLookupDecoding`): generated tokens,
generation tokens/s (prompt evaluation excluded), and our drafted/accepted counts. It also
checks that our greedy text with drafting equals the text without, for every prompt.
With `--repeats N` the four run N times in turn and each keeps its fastest run (the same
text every time): a noisy shared host stalls single runs, rarely the same engine N times.

Two engines (two checkouts) answer differently wherever their float sums differ, and the
self-speedup depends on how much of the answer copies the prompt. `--save-answers` keeps each
prompt's greedy answer (token ids); `--force-answers` makes our generation follow a saved
answer (the sampler still computes its own pick every step, then returns the saved token),
so two checkouts time the same steps on the same text (llama.cpp cannot be forced: not with
--llama-python; the lossless check is void then).

--cost-curve instead times one forward pass of k = 1, 2, 4, 8, 16 tokens after `--depth`
tokens of context (best of 5): T(k)/T(1) is what a verification step of k-1 drafted tokens
costs against a plain step.

Not a test: it is not collected by pytest (no test_ prefix) and takes minutes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

from codeup_tui.engine.default_model import ensure_default_model
from codeup_tui.engine.generate import Generator
from codeup_tui.engine.model import load_model
from codeup_tui.engine.openmp_env import environ_for_other_programs
from codeup_tui.engine.sampling import SamplingParams
from codeup_tui.engine.speculative import DraftParams

EDIT_INSTRUCTIONS = (
    "Rename the function {name} to {name}_v2 everywhere and give back the whole file.",
    "Add a one-line docstring to every function that lacks one and give back the whole file.",
    "Add type hints to every function signature and give back the whole file.",
    "Fix any off-by-one error in loops, then give back the whole file unchanged otherwise.",
)
OPEN_PROMPTS = (
    "Explain what a KV cache is in a transformer, in a few paragraphs.",
    "Write a Python function that parses an INI file into a dict of dicts, with tests.",
    "Write a bash script that finds the ten largest files under a folder.",
    "Explain the difference between a process and a thread.",
)


def edit_files() -> list[Path]:
    """Repository files of 100-300 lines, a few of each package."""
    picked = []
    for folder in ("engine", "engine/cli", "engine/tokenizer", "tui/edits", "tui"):
        for path in sorted((REPO / folder).glob("*.py")):
            lines = path.read_text().count("\n")
            if 100 <= lines <= 300 and path not in picked:
                picked.append(path)
                break
    return picked


def first_function(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("def "):
            return line[4:].split("(")[0]
    return "main"


def chatml(instruction: str, file: Path | None = None) -> str:
    """The default model's own format (ChatML). An edit's answer is started with the code
    fence, as edit-oriented assistants prime it: SmolLM2-135M otherwise answers an edit
    request with prose about the file."""
    user = instruction
    if file is not None:
        user += f"\n\n{file.relative_to(REPO)}\n```python\n{file.read_text()}```"
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n" + ("```python\n" if file else "")


def prompt_set() -> list[tuple[str, str]]:
    prompts = []
    for i, path in enumerate(edit_files()):
        instruction = EDIT_INSTRUCTIONS[i % len(EDIT_INSTRUCTIONS)].format(name=first_function(path.read_text()))
        prompts.append(("edit", chatml(instruction, path)))
    prompts += [("open", chatml(p)) for p in OPEN_PROMPTS]
    return prompts


LLAMA_WORKER = r"""
import json, sys, time
from llama_cpp import Llama
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding
args = json.loads(sys.argv[1])
plain = Llama(args["model"], n_ctx=args["n_ctx"], n_threads=args["threads"], n_batch=512, verbose=False)
# its drafting reads the logits of every drafted position: logits_all
lookup = Llama(args["model"], n_ctx=args["n_ctx"], n_threads=args["threads"], n_batch=512, verbose=False,
               logits_all=True, draft_model=LlamaPromptLookupDecoding(num_pred_tokens=10))
for line in sys.stdin:
    req = json.loads(line)
    llm = lookup if req["lookup"] else plain
    llm.reset()
    first = None
    n = 0
    start = time.perf_counter()
    text = ""
    for chunk in llm.create_completion(req["tokens"], max_tokens=req["max_tokens"], temperature=0.0,
                                       repeat_penalty=1.0, stream=True):
        choice = chunk["choices"][0]
        if choice["finish_reason"] is not None and not choice["text"]:
            continue  # the closing chunk carries no token
        if first is None:
            first = time.perf_counter()
        n += 1
        text += choice["text"]
    end = time.perf_counter()
    print(json.dumps({"tokens": n, "tps": (n - 1) / (end - first) if n > 1 else 0.0, "text": text}), flush=True)
"""


class LlamaCpp:
    def __init__(self, python: str, model: str, n_ctx: int, threads: int) -> None:
        args = json.dumps({"model": model, "n_ctx": n_ctx, "threads": threads})
        self.proc = subprocess.Popen([python, "-c", LLAMA_WORKER, args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=environ_for_other_programs())

    def run(self, tokens: list[int], max_tokens: int, lookup: bool) -> dict:
        self.proc.stdin.write(json.dumps({"tokens": tokens, "max_tokens": max_tokens, "lookup": lookup}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


class ForcedAnswer:
    """Within the block, the sampler returns `ids[i]` for the i-th generated token (after
    computing its own pick, so a step costs what it costs unforced); None: unforced."""

    def __init__(self, ids: list[int] | None, n_prompt: int) -> None:
        self.ids, self.n_prompt = ids, n_prompt

    def __enter__(self):
        from codeup_tui.engine import sampling

        self._sample = sampling.Sampler.sample
        if self.ids is not None:
            ids, n_prompt, sample = self.ids, self.n_prompt, self._sample

            def forced(sampler, logits, history=()):
                pick = sample(sampler, logits, history)
                i = len(history) - n_prompt
                return ids[i] if 0 <= i < len(ids) else pick

            sampling.Sampler.sample = forced
        return self

    def __exit__(self, *exc) -> None:
        from codeup_tui.engine import sampling

        sampling.Sampler.sample = self._sample


def ours(model, tokens: list[int], max_tokens: int, draft: DraftParams, forced: list[int] | None = None) -> dict:
    with ForcedAnswer(forced, len(tokens)):
        return _ours(model, tokens, max_tokens, draft)


def _ours(model, tokens: list[int], max_tokens: int, draft: DraftParams) -> dict:
    model.reset()
    handle = Generator(model, draft=draft).start(tokens, SamplingParams(temperature=0), max_tokens=max_tokens)
    text = handle.text()
    t = handle.result.timings
    # tokens/s of the generation after the first token, as measured for llama.cpp
    return {"tokens": t.generated_tokens, "tps": t.generation_tokens_per_second, "text": text,
            "drafted": t.drafted_tokens, "accepted": t.accepted_tokens, "ids": handle.result.tokens}


def cost_curve(model, depth: int, ks=(1, 2, 4, 8, 16), reps: int = 5) -> dict[int, float]:
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(0, model.info.n_vocab, size=depth + max(ks)).tolist()
    model.reset()
    for i in range(0, depth, 256):
        model.eval(ids[i : min(i + 256, depth)])
    best = {}
    for k in ks:
        times = []
        for _ in range(reps):
            model.rewind(depth)
            t0 = time.perf_counter()
            model.eval(ids[depth : depth + k], all_logits=True)
            times.append(time.perf_counter() - t0)
        best[k] = min(times)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--n-ctx", type=int, default=8192)
    ap.add_argument("--llama-python", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cost-curve", action="store_true")
    ap.add_argument("--depth", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds per prompt, interleaved; each engine's fastest counts (a shared host "
                         "stalls runs for seconds at a time)")
    ap.add_argument("--workload", choices=("all", "edit", "open"), default="all",
                    help="which prompts: the code edits, the open-ended ones, or both")
    ap.add_argument("--save-answers", default=None, help="write each prompt's greedy answer (token ids) here")
    ap.add_argument("--force-answers", default=None, help="follow the answers saved by --save-answers")
    args = ap.parse_args()
    if args.force_answers and args.llama_python:
        ap.error("--force-answers times our engine only: llama.cpp cannot follow a saved answer")
    forced_answers = None
    if args.force_answers:
        try:
            forced_answers = json.loads(Path(args.force_answers).read_text())
        except (OSError, ValueError) as e:
            ap.error(f"cannot read the answers in {args.force_answers}: {e}")
    saved_answers = []
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")
    model_path = args.model or str(ensure_default_model())
    model = load_model(model_path, n_ctx=args.n_ctx, n_threads=args.threads)
    model.wait_in_memory()  # the copy into memory (a core's work) is over before anything is timed
    if args.cost_curve:
        curve = cost_curve(model, args.depth)
        for k, seconds in curve.items():
            print(f"k={k:2}  {1000 * seconds:8.2f} ms  T(k)/T(1) = {seconds / curve[1]:.2f}")
        return 0
    llama = LlamaCpp(args.llama_python, model_path, args.n_ctx, args.threads) if args.llama_python else None
    rows = []
    for kind, prompt in prompt_set():
        if args.workload not in ("all", kind):
            continue
        tokens = model.tokenizer.encode(prompt, add_bos=model.tokenizer.add_bos, parse_special=True)
        row = {"kind": kind, "prompt_tokens": len(tokens)}
        forced = None
        if forced_answers is not None:
            forced = next((a["ids"] for a in forced_answers if a["kind"] == kind and a["prompt"] == tokens), None)
            if forced is None:
                ap.error(f"{args.force_answers} holds no answer to the {kind} prompt of {len(tokens)} tokens")
        texts = set()
        for _ in range(args.repeats):  # interleaved rounds; each engine keeps its fastest
            runs = {"off": ours(model, tokens, args.max_tokens, DraftParams(spec_type="none"), forced),
                    "on": ours(model, tokens, args.max_tokens, DraftParams(), forced)}
            answer = runs["off"]["ids"]
            texts.update(tuple(runs[key].pop("ids")) for key in ("off", "on"))
            if llama:
                runs["llama"] = llama.run(tokens, args.max_tokens, lookup=False)
                runs["llama_lookup"] = llama.run(tokens, args.max_tokens, lookup=True)
            for key, run in runs.items():
                if key not in row or run["tps"] > row[key]["tps"]:
                    row[key] = run
        row["lossless"] = len(texts) == 1  # every round, with drafting and without: one text
        rows.append(row)
        saved_answers.append({"kind": kind, "prompt": tokens, "ids": answer})
        on, off = row["on"], row["off"]
        line = (f"{kind:5} prompt {len(tokens):5}  tokens {on['tokens']:4}  accepted {on['accepted']:4}/{on['drafted']:<4} "
                f"ours {off['tps']:6.1f} -> {on['tps']:6.1f} tok/s (x{on['tps'] / off['tps']:.2f})  lossless {row['lossless']}")
        if llama:
            line += f"  llama.cpp {row['llama']['tps']:6.1f}, lookup {row['llama_lookup']['tps']:6.1f}"
        print(line, flush=True)
    if llama:
        llama.close()
    for kind in ("edit", "open"):
        sel = [r for r in rows if r["kind"] == kind]
        if not sel:
            continue
        speedup = statistics.median(r["on"]["tps"] / r["off"]["tps"] for r in sel)
        summary = f"{kind}: median with/without drafting x{speedup:.2f}"
        if llama:
            summary += (f", vs llama.cpp plain x{statistics.median(r['on']['tps'] / r['llama']['tps'] for r in sel):.2f}"
                        f", vs llama.cpp lookup x{statistics.median(r['on']['tps'] / r['llama_lookup']['tps'] for r in sel):.2f}")
        print(summary)
    if forced_answers is not None:
        print("answers forced to", args.force_answers, "(the lossless check does not apply)")
    else:
        print("greedy text with drafting == without:", all(r["lossless"] for r in rows))
    if args.save_answers:
        Path(args.save_answers).write_text(json.dumps(saved_answers))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

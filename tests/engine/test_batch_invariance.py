"""A token's logits do not depend on the batch it is evaluated in: one batch, one token at a
time and random chunks give the same bits, for every weight type; so regenerating an answer
at temperature 0 (the prompt cache re-evaluates the last prompt token alone) repeats it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.paths import FIXTURES, fixtures_or_skip
from tests.helpers.quant_matrices import random_matrix

from codeup_tui import engine
import codeup_tui.engine.generate  # noqa: F401 - engine.generate
from codeup_tui.engine.generate import Generator
from codeup_tui.engine.speculative import DraftParams
from codeup_tui.engine.llama import project
from codeup_tui.engine.quants import KERNELS
from codeup_tui.engine.sampling import SamplingParams

# every tiny-llama file: between them every weight type (F32 and F16 included)
TINY_FILES = sorted(p.name for p in (FIXTURES / "tiny-llama").glob("*.gguf")) or ["tiny-llama-Q4_1.gguf"]
# more than 16 positions: attention sums of a batch and of a lone token part from there
N_TOKENS = 20
CHUNK_SIZES = (1, 2, 3, 5, 9, 13)  # below, at and above the kernels' batch-size thresholds


def three_ways(model, tokens: list[int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits of `tokens` from one batch, one token at a time, and random chunks."""
    batch = model.logits(tokens)
    model.reset()
    alone = np.concatenate([model.eval([t]) for t in tokens])
    model.reset()
    rng = np.random.default_rng(seed)
    parts, i = [], 0
    while i < len(tokens):
        n = int(rng.choice(CHUNK_SIZES))
        parts.append(model.eval(tokens[i : i + n], all_logits=True))
        i += n
    return batch, alone, np.concatenate(parts)


def assert_same_bits(batch: np.ndarray, other: np.ndarray, what: str) -> None:
    if not np.array_equal(batch, other):
        rows = np.flatnonzero((batch != other).any(axis=1))
        pytest.fail(f"{what}: positions {rows.tolist()} differ from the whole batch's "
                    f"(max |difference| {float(np.abs(batch - other).max()):.3g})")


@pytest.mark.parametrize("ggml_type", list(KERNELS), ids=lambda t: t.name)
def test_every_kernel_gives_a_token_the_same_bits_in_any_batch(ggml_type):
    # the product the forward pass takes (activations rounded for the type, then the kernel)
    # for 70 tokens at once against the same tokens alone and in batches of other sizes (the
    # k-quant kernels take one or two tokens, and several, by different routes);
    # 203 rows: not a multiple of the kernels' row groups
    rng = np.random.default_rng(int(ggml_type))
    w = random_matrix(ggml_type, 203, 512, rng)
    x = rng.standard_normal((70, 512), dtype=np.float32)
    batch = project(w, x)
    for lo, hi in ((0, 1), (5, 6), (69, 70), (0, 2), (2, 5), (5, 9), (0, 8), (8, 17), (17, 30), (30, 70)):
        assert_same_bits(batch[lo:hi], project(w, x[lo:hi]), f"{ggml_type.name}, tokens {lo}..{hi - 1}")


@pytest.fixture(scope="module")
def tiny_tokens() -> list[int]:
    return json.loads(fixtures_or_skip("tiny-llama", "tiny-llama.json").read_text())["tokens"][:N_TOKENS]


@pytest.mark.parametrize("name", TINY_FILES)
def test_tiny_llama_logits_do_not_depend_on_the_batch(name, tiny_tokens):
    with engine.load_model(fixtures_or_skip("tiny-llama", name), n_ctx=32) as model:
        batch, alone, chunks = three_ways(model, tiny_tokens, seed=len(name))
    assert_same_bits(batch, alone, f"{name}, one token at a time")
    assert_same_bits(batch, chunks, f"{name}, random chunks")


def test_default_model_logits_do_not_depend_on_the_batch(default_model_file):
    with engine.load_model(default_model_file, n_ctx=64) as model:
        tokens = model.tokenizer.encode("def fib(n):\n    # the n-th Fibonacci number, iteratively\n    a, b = 0, 1\n")
        assert len(tokens) > 16
        batch, alone, chunks = three_ways(model, tokens, seed=1)
    assert_same_bits(batch, alone, "default model, one token at a time")
    assert_same_bits(batch, chunks, "default model, random chunks")


def test_regenerating_at_temperature_zero_repeats_the_answer(default_model_file, monkeypatch):
    # A prompt whose last token, evaluated alone, got other logits (by up to 0.5) than in
    # the batch of the first run when attention summed in llama.cpp's batch-dependent order.
    prompt = ("### Instruction:\nExplain this code.\n\n### Input:\n"
              "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = "
              "\n\n### Response:\n")
    monkeypatch.setattr(engine.generate, "CHUNK_SECONDS", 1e9)  # prompt chunks of 4, then 64
    with engine.load_model(default_model_file, n_ctx=256) as model:
        evaluate = model.eval
        seen: list[np.ndarray] = []  # the logits each generation samples from, in order

        def recording_eval(ids, **kw):
            logits = evaluate(ids, **kw)
            seen.append(logits[-1].copy())
            return logits

        model.eval = recording_eval
        gen = Generator(model, draft=DraftParams(spec_type="none"))  # one eval per token (drafting: tests/engine/test_speculative.py)
        first = gen.start(prompt, SamplingParams(temperature=0), max_tokens=24)
        first_text = first.text()  # waits for the end
        first_logits, seen[:] = seen[-25:-1], []
        second = gen.start(prompt, SamplingParams(temperature=0), max_tokens=24)
        second_text = second.text()
        second_logits = seen[-25:-1]
    n_prompt = first.result.timings.prompt_tokens
    assert n_prompt > 16
    # the first run evaluated the prompt in chunks; the second took it from the cache and
    # evaluated only its last token again, alone
    assert first.result.timings.prompt_evaluated == n_prompt and second.result.timings.prompt_evaluated == 1
    assert len(first.result.tokens) == 24
    assert second.result.tokens == first.result.tokens
    assert second_text == first_text
    # not just the same choices: the same distributions, bit for bit (the last prompt
    # token's logits first)
    assert len(second_logits) == 24
    for step, (a, b) in enumerate(zip(first_logits, second_logits)):
        assert np.array_equal(a, b), f"step {step}: max |difference| {float(np.abs(a - b).max()):.3g}"

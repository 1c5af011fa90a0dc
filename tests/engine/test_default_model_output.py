"""The default model (SmolLM2-135M-Instruct Q4_1) against llama.cpp on an Alpaca prompt
(../shared/fixtures/smollm2/alpaca-fib.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.paths import fixtures_or_skip

from codeup_tui import engine
from codeup_tui.engine.summation_order import LLAMA_CPP, summation_order


@pytest.fixture(scope="module")
def reference():
    return json.loads(fixtures_or_skip("smollm2", "alpaca-fib.json").read_text())


@pytest.fixture(scope="module")
def model(default_model_file):
    with engine.load_model(default_model_file) as m:
        yield m


def test_prompt_tokenizes_like_llama_cpp(model, reference):
    assert model.tokenizer.encode(reference["prompt"]) == reference["tokens"]


def top10_diff(model, reference):
    logits = model.logits(reference["tokens"])
    ids = np.array(reference["top10_ids"])
    ref = np.array(reference["top10_logits"], dtype=np.float32)
    ours = np.take_along_axis(logits, ids, axis=1)
    top1 = float((logits.argmax(axis=1) == ids[:, 0]).mean())
    diff = np.abs(ours - ref)
    print(f"top-1 agreement {top1:.3f}; top-10 |ours - llama.cpp|: mean {diff.mean():.3f}, "
          f"per-position mean max {diff.mean(axis=1).max():.3f}, max {diff.max():.3f}")
    return top1, diff


def test_next_token_distribution_at_every_prompt_position(model, reference):
    # batch-invariant attention (the default): every prompt position summed as llama.cpp
    # sums a lone token, while llama.cpp evaluated this prompt as one batch
    top1, diff = top10_diff(model, reference)
    assert top1 == 1.0
    assert diff.mean() <= 0.5


def test_next_token_distribution_in_llama_cpp_batch_order(model, reference):
    # with llama.cpp's own batch-dependent attention order the engine reproduces its
    # arithmetic for this Q4_1 model: the reference logits (stored to about 1e-4) agree to
    # their own precision
    with summation_order(LLAMA_CPP):
        top1, diff = top10_diff(model, reference)
    assert top1 == 1.0 and diff.max() <= 1e-3


def test_greedy_continuation_repeats_llama_cpp(model, reference):
    model.reset()
    logits = model.eval(reference["tokens"])
    generated = []
    for _ in range(len(reference["greedy"])):
        token = int(logits[-1].argmax())
        generated.append(token)
        logits = model.eval([token])
    same = 0
    for ours, theirs in zip(generated, reference["greedy"]):
        if ours != theirs:
            break
        same += 1
    print(f"greedy: {same} of {len(reference['greedy'])} tokens as llama.cpp")
    assert same == len(reference["greedy"])  # every token, one at a time, as llama.cpp
    text = model.tokenizer.decode(generated[:same])
    assert reference["greedy_text"].startswith(text)

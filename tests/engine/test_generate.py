"""Streaming generation: cancel, stop strings, prompt cache, limits, timings."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.helpers.paths import fixtures_or_skip

from codeup_tui import engine
from codeup_tui.engine.errors import UsageError
from codeup_tui.engine.generate import Generator, StopReason, StopStringFilter
from codeup_tui.engine.sampling import SamplingParams

GREEDY = SamplingParams(temperature=0)


@pytest.fixture(scope="module")
def reference():
    return json.loads(fixtures_or_skip("smollm2", "alpaca-fib.json").read_text())


@pytest.fixture(scope="module")
def generator(default_model_file):
    with engine.load_model(default_model_file, n_ctx=2048) as model:
        yield Generator(model)


# ---- the stop-string filter on its own ----------------------------------------------------

def test_stop_string_split_across_pieces_is_never_shown():
    f = StopStringFilter(["### Instruction:"])
    shown = []
    for piece in ["Done.\n\n#", "##", " Instr", "uction:", " more"]:
        text, hit = f.feed(piece)
        shown.append(text)
        if hit:
            break
    assert "".join(shown) == "Done.\n\n" and hit


def test_text_that_only_looks_like_a_stop_start_is_released():
    f = StopStringFilter(["### Instruction:"])
    out = [f.feed(p)[0] for p in ["a #", "# b", " ## c"]]
    assert "".join(out) + f.flush() == "a ## b ## c"


# ---- generation on the default model -----------------------------------------------------

def test_greedy_stream_reproduces_llama_cpp_and_equals_decode(generator, reference):
    pieces = []
    handle = generator.start(reference["prompt"], GREEDY, max_tokens=40, on_piece=pieces.append)
    streamed = list(handle)
    assert streamed == pieces  # the iterator and the callback see the same pieces
    result = handle.result
    assert result.stop_reason is StopReason.LIMIT and len(result.tokens) == 40
    assert result.tokens[:20] == reference["greedy"][:20]
    tok = generator.model.tokenizer
    assert "".join(streamed) == result.text == tok.decode(result.tokens, clean_spaces=False, strip_leading_space=False)
    t = result.timings
    assert t.prompt_tokens == len(reference["tokens"]) and t.generated_tokens == 40
    assert t.prompt_tokens_per_second > 0 and t.generation_tokens_per_second > 0


def test_stop_string_across_tokens_ends_the_answer(generator, reference):
    text = reference["greedy_text"]
    stop = "if n =="  # three tokens in the reference continuation
    handle = generator.start(reference["prompt"], GREEDY, max_tokens=40, stop=[stop])
    streamed = "".join(handle)
    assert handle.result.stop_reason is StopReason.STOP_STRING
    assert streamed == text[: text.index(stop)]
    assert "if" not in streamed


def test_prompt_cache_evaluates_only_new_tokens(generator, reference):
    model = generator.model
    model.reset()
    first = generator.start(reference["prompt"], GREEDY, max_tokens=8)
    answer = first.text()
    assert first.result.timings.prompt_evaluated == len(reference["tokens"])
    follow_up = reference["prompt"] + answer + "\n\n### Instruction:\nNow in one line.\n\n### Response:\n"
    n_new = len(generator.tokenize(follow_up))
    second = generator.start(follow_up, GREEDY, max_tokens=4)
    second.text()
    t = second.result.timings
    assert t.prompt_tokens == n_new
    # everything up to the end of the first answer came from the cache
    assert t.prompt_evaluated <= n_new - len(reference["tokens"]) - len(first.result.tokens) + 2
    # the same prompt again: only its last token is evaluated (its logits start the answer)
    third = generator.start(follow_up, GREEDY, max_tokens=1)
    third.text()
    assert third.result.timings.prompt_evaluated == 1


def test_same_seed_same_text(generator, reference):
    params = SamplingParams(temperature=0.9, seed=1234)
    a = generator.start(reference["prompt"], params, max_tokens=24).text()
    b = generator.start(reference["prompt"], params, max_tokens=24).text()
    c = generator.start(reference["prompt"], SamplingParams(temperature=0.9, seed=99), max_tokens=24).text()
    assert a == b and a != c


def test_cancel_takes_effect_within_one_token(generator, reference):
    cancel_after = 5
    handle_box = []

    def on_piece(_piece):
        if len(handle_box[0].result.tokens) >= cancel_after:
            handle_box[0].cancel()

    # start paused so the handle is stored before the first piece arrives
    generator.model.reset()
    handle = generator.start(reference["prompt"], GREEDY, max_tokens=200,
                             on_piece=lambda p: handle_box and on_piece(p))
    handle_box.append(handle)
    handle.text()
    assert handle.result.stop_reason is StopReason.CANCELLED
    assert cancel_after <= len(handle.result.tokens) <= cancel_after + 1


def test_cancel_during_a_long_prompt(generator):
    long_prompt = "def f(x):\n    return x\n" * 220  # about 2000 tokens
    generator.model.reset()
    handle = generator.start(long_prompt, GREEDY, max_tokens=10)
    deadline = time.monotonic() + 30
    while handle.timings().prompt_evaluated == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    live = handle.timings()
    assert 0 < live.prompt_evaluated < live.prompt_tokens  # timings are live
    t0 = time.monotonic()
    handle.cancel()
    # The whole prompt takes 10 s or more here; stopping within a few chunks is what counts
    # (the bound leaves room for a loaded CI machine).
    assert handle.wait(5.0), "the generation thread did not stop"
    assert time.monotonic() - t0 < 5.0
    assert handle.result.stop_reason is StopReason.CANCELLED
    assert handle.result.tokens == [] and handle.result.timings.prompt_evaluated < live.prompt_tokens


def test_full_context_stops_or_shifts(default_model_file, reference):
    with engine.load_model(default_model_file, n_ctx=64) as model:
        gen = Generator(model)
        stopped = gen.start(reference["prompt"], GREEDY, max_tokens=-1)
        stopped.text()
        assert stopped.result.stop_reason is StopReason.CONTEXT_FULL
        assert len(reference["tokens"]) + len(stopped.result.tokens) == 64 + 1
        shifted = gen.start(reference["prompt"], GREEDY, max_tokens=30, keep=8)
        shifted.text()
        assert shifted.result.stop_reason is StopReason.LIMIT and len(shifted.result.tokens) == 30
        assert model.n_past <= 64


def test_bad_requests_fail_before_starting(generator):
    with pytest.raises(UsageError, match="more than the context"):
        generator.start("word " * 3000, GREEDY)
    with pytest.raises(UsageError, match="empty"):
        generator.start([], GREEDY)
    with pytest.raises(UsageError, match="--keep"):
        generator.start("hello", GREEDY, keep=10**6)


def test_one_generation_at_a_time(generator, reference):
    generator.model.reset()
    first = generator.start(reference["prompt"], GREEDY, max_tokens=30)
    with pytest.raises(UsageError, match="already running"):
        generator.start("x", GREEDY)
    first.cancel()
    first.text()
    generator.start("x", GREEDY, max_tokens=1).text()  # free again


def test_handle_is_safe_from_another_thread(generator, reference):
    handle = generator.start(reference["prompt"], GREEDY, max_tokens=20)
    got = []
    reader = threading.Thread(target=lambda: got.extend(handle))
    reader.start()
    reader.join(30)
    assert "".join(got) == handle.result.text and handle.done

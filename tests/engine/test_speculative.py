"""Speculative decoding from the prompt (engine/speculative.py, engine/generate.py).

What a user relies on: drafting never changes the greedy text (token for token, on every
weight type), sampling keeps exactly the sampler's distribution, and stop strings, EOS, the
token limit and cancel behave as without drafting — while code that repeats the prompt is
accepted in long runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.paths import FIXTURES, fixtures_or_skip
from codeup_tui.engine.errors import UsageError
from codeup_tui.engine.generate import Generator, StopReason
from codeup_tui.engine.model import load_model
from codeup_tui.engine.sampling import Sampler, SamplingParams
from codeup_tui.engine.speculative import DraftParams, NgramIndex, PromptLookupDrafter, accept

OFF = DraftParams(spec_type="none")
GREEDY = SamplingParams(temperature=0)


# --- drafting ------------------------------------------------------------------------------


def test_ngram_index_continues_the_latest_earlier_occurrence():
    index = NgramIndex(2, 3)
    index.extend([1, 2, 3, 4, 9, 1, 2, 3, 5, 6])
    assert index.continuation([2, 3], 3) == [5, 6]  # the later of two occurrences
    assert index.continuation([1, 2, 3], 2) == [5, 6]
    assert index.continuation([3, 4], 5) == [9, 1, 2, 3, 5]
    assert index.continuation([7, 7], 3) == []


def test_drafter_prefers_the_longest_matching_ngram():
    drafter = PromptLookupDrafter(DraftParams(ngram_min=1, ngram_max=3, draft_max=4))
    # "5" alone was last followed by 8; "4 5" was followed by 6 7.
    drafter.reset([4, 5, 6, 7, 1, 5, 8, 2, 4, 5])
    drafter.observe(1, 1.0)
    drafter.observe(5, 1.0)  # batches cost what one token costs: guess all there is
    assert drafter.draft(room=10) == [6, 7, 1, 5]
    assert drafter.draft(room=2) == [6, 7]  # never past the room left in the context


def test_a_copy_is_followed_through_the_source_not_to_a_later_repeat():
    drafter = PromptLookupDrafter(DraftParams(ngram_min=2, ngram_max=2, draft_max=3))
    drafter.observe(1, 1.0)
    drafter.observe(4, 1.0)
    # a prompt holding "1 2 3" twice, and an answer that has copied its start again
    drafter.reset([1, 2, 3, 50, 5, 6, 1, 2, 3, 60, 7, 8, 1, 2, 3, 50])
    assert drafter.draft(room=10) == [5, 6, 1]  # from the prompt's first line
    drafter.feedback(3, 3)
    for token in (5, 6, 1, 2):  # accepted, then the model's own next token
        drafter.push(token)
    # "1 2" last occurred in the answer (followed by 3 50), but the copy has reached the
    # prompt's second line: 3 60 7
    assert drafter.draft(room=10) == [3, 60, 7]


def test_drafter_falls_back_to_earlier_answers():
    drafter = PromptLookupDrafter(DraftParams(draft_max=3))
    drafter.remember_answer([10, 11, 12, 13, 14])
    drafter.reset([1, 2, 10, 11])
    drafter.observe(1, 1.0)
    drafter.observe(4, 1.0)
    assert drafter.draft(room=10) == [12, 13, 14]


def _drafter_with(acceptance_runs, step_costs) -> PromptLookupDrafter:
    drafter = PromptLookupDrafter(DraftParams(draft_max=8))
    drafter.reset([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2])
    for batch, seconds in step_costs.items():
        drafter.observe(batch, seconds)
    for drafted, accepted in acceptance_runs:
        drafter.draft(room=100)
        drafter._last_n = 2
        drafter.feedback(drafted, accepted)
    return drafter


def test_guess_length_follows_acceptance_and_measured_step_costs():
    always_right = [(8, 8)] * 10
    cheap = {1: 1.0, 9: 1.8}  # memory-bound decoding: 8 more tokens cost 80% more
    assert len(_drafter_with(always_right, cheap).draft(room=100)) == 8
    mediocre = [(4, 2)] * 10  # about two in three guessed tokens right
    medium = len(_drafter_with(mediocre, cheap).draft(room=100))
    assert 1 < medium < 8
    dear = {1: 1.0, 9: 5.0}
    assert 0 < len(_drafter_with(mediocre, dear).draft(room=100)) < medium
    assert _drafter_with(mediocre, {1: 1.0, 9: 9.0}).draft(room=100) == []  # a plain step is faster


def test_wrong_guesses_stop_drafting_except_for_rare_probes():
    drafter = PromptLookupDrafter(DraftParams(draft_max=8))
    drafter.reset([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2])
    drafter.observe(1, 1.0)
    drafter.observe(2, 1.4)
    for _ in range(20):
        if drafter.draft(room=100):
            drafter.feedback(1, 0)
    drafts = [drafter.draft(room=100) for _ in range(PromptLookupDrafter.PROBE_EVERY)]
    assert sum(1 for d in drafts if d) == 1  # one probe per PROBE_EVERY guesses
    assert max(len(d) for d in drafts) == 1


def test_draft_params_are_checked():
    assert not DraftParams(draft_max=0).enabled
    assert not DraftParams(spec_type="none").enabled
    for bad in (dict(spec_type="eagle"), dict(draft_max=-1), dict(ngram_min=0), dict(ngram_min=5, ngram_max=4),
                dict(draft_min=9, draft_max=8)):
        with pytest.raises(UsageError):
            DraftParams(**bad)


# --- verification ------------------------------------------------------------------------------


def _logits_favouring(*tokens: int, vocab: int = 8) -> np.ndarray:
    rows = np.zeros((len(tokens), vocab), dtype=np.float32)
    for i, t in enumerate(tokens):
        rows[i, t] = 5.0
    return rows


def test_greedy_accepts_while_the_draft_equals_the_argmax():
    sampler = Sampler(GREEDY)
    # The model would say 3, 4, 6, 1: the draft 3, 4, 5 is right twice, then corrected to 6.
    assert accept(sampler, _logits_favouring(3, 4, 6, 1), [3, 4, 5], [0]) == [3, 4, 6]
    # All drafted tokens right: one more token comes from the last row.
    assert accept(sampler, _logits_favouring(3, 4, 5, 1), [3, 4, 5], [0]) == [3, 4, 5, 1]
    assert accept(sampler, _logits_favouring(2, 4, 5, 1), [3, 4, 5], [0]) == [2]


def test_greedy_verification_applies_the_penalties_to_the_drafted_history():
    sampler = Sampler(SamplingParams(temperature=0, repeat_penalty=10.0, repeat_last_n=-1))
    logits = np.array([[0, 0, 3, 2.9], [0, 0, 3, 2.9]], dtype=np.float32)
    # Drafted token 2 is accepted; after it, the penalty on 2 makes 3 the argmax.
    assert accept(sampler, logits, [2], [0]) == [2, 3]


def test_sampling_keeps_the_samplers_distribution():
    """The first token of a verification step is distributed as the sampler's choice from the
    first row, whatever is drafted (the speculative sampling rule for a deterministic draft)."""
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=1234)
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25]], dtype=np.float32))
    expected = np.array([0.5, 0.3, 0.15, 0.05])
    trials = 20000
    for guess in (0, 1, 3):
        sampler = Sampler(params)
        counts = np.zeros(4)
        for _ in range(trials):
            counts[accept(sampler, logits, [guess], [])[0]] += 1
        freq = counts / trials
        # 5 standard deviations of a binomial share: a wrong rule (always accepting the guess,
        # or drawing the correction from p with the guess left in) is far outside this.
        tolerance = 5 * np.sqrt(expected * (1 - expected) / trials)
        assert np.all(np.abs(freq - expected) <= tolerance), (guess, freq)


# --- lossless generation on real files -----------------------------------------------------------


def _fixture_models() -> list:
    if not (FIXTURES / "tiny-llama").is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason="reference fixtures (../shared) are absent"))]
    return sorted((FIXTURES / "tiny-llama").glob("tiny-llama-*.gguf"), key=lambda p: p.name)


def _greedy_pair(model, prompt, draft: DraftParams, **kw):
    results = []
    for params in (OFF, draft):
        model.reset()
        handle = Generator(model, draft=params).start(prompt, GREEDY, **kw)
        text = handle.text()
        results.append((text, handle.result.tokens, handle.result.stop_reason, handle.result.timings))
    return results


@pytest.mark.parametrize("path", _fixture_models(), ids=lambda p: getattr(p, "stem", "none"))
def test_greedy_text_with_drafting_equals_without_on_every_type(path, monkeypatch):
    # Whatever a tiny model's batches cost, guess as far as the match goes: this test is
    # about verification, not about when guessing pays.
    monkeypatch.setattr(PromptLookupDrafter, "best_length", lambda self, available, n: available)
    spec = __import__("json").loads(fixtures_or_skip("tiny-llama", "tiny-llama.json").read_text())
    model = load_model(path, n_ctx=256, n_threads=1)
    prompt = list(spec["tokens"])
    model.reset()
    plain = Generator(model, draft=OFF).start(prompt, GREEDY, max_tokens=48)
    plain.text()
    # A random-weight model rarely repeats its prompt, so the drafter is handed an earlier
    # "answer": the plain answer with every fifth token changed. Its guesses are then right
    # for a while and wrong at each change: both accepted and rejected drafts are verified.
    params = DraftParams(ngram_min=1, draft_max=8)
    earlier = [t if i % 5 != 4 else (t + 1) % 4096 for i, t in enumerate(plain.result.tokens)]
    gen = Generator(model, draft=params)
    gen._drafter_for(params).remember_answer(earlier)
    model.reset()
    drafted = gen.start(prompt, GREEDY, max_tokens=48)
    assert drafted.text() == plain.result.text
    assert drafted.result.tokens == plain.result.tokens
    assert drafted.result.stop_reason == plain.result.stop_reason
    t = drafted.result.timings
    assert 0 < t.accepted_tokens < t.drafted_tokens, t


@pytest.fixture(scope="module")
def default_model(default_model_file):
    return load_model(default_model_file, n_ctx=1024)


CODE = '''def moving_average(values, window):
    """The mean of each run of `window` consecutive values."""
    if window <= 0:
        raise ValueError("window must be positive")
    out = []
    total = sum(values[:window])
    out.append(total / window)
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        out.append(total / window)
    return out
'''


def _copy_prompt() -> str:
    return (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n### Instruction:\n"
        "Rewrite this Python function exactly, but rename it to sliding_mean.\n\n### Input:\n"
        f"```python\n{CODE}```\n\n### Response:\n"
    )


def test_default_model_edit_prompt_is_lossless_and_mostly_drafted(default_model):
    (t0, ids0, r0, _), (t1, ids1, r1, timings) = _greedy_pair(default_model, _copy_prompt(), DraftParams(), max_tokens=120)
    assert ids1 == ids0 and t1 == t0 and r1 == r0
    # A rewrite repeats its input: most guesses stand.
    assert timings.accepted_tokens >= 0.5 * timings.generated_tokens, timings


def test_stop_strings_limit_and_eos_behave_as_without_drafting(default_model):
    for kw in (dict(max_tokens=7), dict(max_tokens=200, stop=["return out"]), dict(max_tokens=120)):
        (t0, ids0, r0, _), (t1, ids1, r1, _) = _greedy_pair(default_model, _copy_prompt(), DraftParams(), **kw)
        assert (t1, ids1, r1) == (t0, ids0, r0), kw
    assert r0 in (StopReason.EOS, StopReason.LIMIT)


def test_penalised_greedy_is_lossless(default_model):
    params = SamplingParams(temperature=0, repeat_penalty=1.3, repeat_last_n=32)
    texts = []
    for draft in (OFF, DraftParams()):
        default_model.reset()
        texts.append(Generator(default_model, draft=draft).start(_copy_prompt(), params, max_tokens=60).text())
    assert texts[0] == texts[1]


def test_cancel_stops_within_one_verification_step(default_model):
    default_model.reset()
    pieces = []
    handle = None

    def on_piece(piece):
        pieces.append(piece)
        if len(pieces) == 3:
            handle.cancel()

    gen = Generator(default_model)
    handle = gen.start(_copy_prompt(), GREEDY, max_tokens=200, on_piece=on_piece)
    handle.text()
    assert handle.result.stop_reason is StopReason.CANCELLED
    assert len(handle.result.tokens) == 3  # no token is shown after the cancel


def test_sampling_with_a_seed_gives_the_same_text_with_drafting_as_without(default_model):
    params = SamplingParams(temperature=0.7, seed=7)
    results = []
    for draft in (OFF, DraftParams()):
        default_model.reset()
        handle = Generator(default_model, draft=draft).start(_copy_prompt(), params, max_tokens=60)
        results.append((handle.text(), handle.result.tokens, handle.result.timings))
    assert results[1][:2] == results[0][:2]
    t = results[1][2]
    assert t.generated_tokens > 0 and t.drafted_tokens > 0
    assert "accepted" in t.summary()

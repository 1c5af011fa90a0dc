"""The sampler chain (engine/sampling.py) against hand-computed distributions.

Most logits here are natural logs of chosen probabilities, so the softmax of a set of
candidates is just those probabilities renormalized, and every expected number below is
written out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from codeup_tui.engine.errors import CodeupError, UsageError
from codeup_tui.engine.sampling import (
    CHAIN,
    CHAIN_TEXT,
    Sampler,
    SamplingParams,
    apply_penalties,
    apply_temperature,
    min_p,
    softmax,
    top_k,
    top_p,
)

# Probabilities of an 8-token vocabulary (they sum to 1). Highest first the tokens are
# 1 (.35), 3 (.25), 4 (.20), 5 (.10), 6 (.04), 0 (.03), 7 (.02), 2 (.01).
WEIGHTS8 = [0.03, 0.35, 0.01, 0.25, 0.20, 0.10, 0.04, 0.02]
LOGITS8 = np.log(np.array(WEIGHTS8, dtype=np.float64)).astype(np.float32)

# Four tokens with probabilities .5, .25, .15, .10, already highest first.
IDS4 = np.array([10, 11, 12, 13])
LOGITS4 = np.log(np.array([0.5, 0.25, 0.15, 0.10])).astype(np.float32)


def params(**kw) -> SamplingParams:
    """Every filter off unless asked for: the tests turn on one step at a time."""
    base = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=1234)
    base.update(kw)
    return SamplingParams(**base)


# --- defaults and the documented chain ----------------------------------------------------


def test_defaults_are_llama_cpp_current_defaults():
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.min_p) == (0.8, 40, 0.95, 0.05)
    assert (p.repeat_penalty, p.repeat_last_n, p.frequency_penalty, p.presence_penalty) == (1.0, 64, 0.0, 0.0)
    assert p.seed is None and p.min_keep == 1


def test_chain_order_is_documented():
    assert CHAIN == ("penalties", "top_k", "top_p", "min_p", "temperature", "dist")
    assert CHAIN_TEXT == "penalties -> top_k -> top_p -> min_p -> temperature -> dist"


# --- each step on its own -----------------------------------------------------------------


def test_softmax_by_hand():
    probs = softmax(np.array([0.0, math.log(2.0), math.log(5.0), -np.inf], dtype=np.float32))
    np.testing.assert_allclose(probs, [1 / 8, 2 / 8, 5 / 8, 0.0], rtol=1e-6)
    assert probs[3] == 0.0


def test_top_k_keeps_the_k_highest_sorted_ties_to_the_lower_id():
    logits = np.array([1.0, 3.0, -2.0, 3.0, 0.5, 2.0], dtype=np.float32)
    ids, vals = top_k(logits, 3)
    assert ids.tolist() == [1, 3, 5]
    assert vals.tolist() == [3.0, 3.0, 2.0]
    assert top_k(logits, 1)[0].tolist() == [1]
    # A tie at the cut: the lower ids win.
    assert top_k(np.array([2.0, 1.0, 2.0, 2.0], dtype=np.float32), 2)[0].tolist() == [0, 2]
    # k <= 0 or k >= n: everything, sorted.
    assert top_k(logits, 0)[0].tolist() == [1, 3, 5, 0, 4, 2]
    assert top_k(logits, -1)[0].tolist() == [1, 3, 5, 0, 4, 2]
    assert top_k(logits, 99)[0].tolist() == [1, 3, 5, 0, 4, 2]


def test_top_p_keeps_the_shortest_prefix_reaching_p():
    # cumulative: .50, .75, .90, 1.0
    assert top_p(IDS4, LOGITS4, 0.7)[0].tolist() == [10, 11]
    assert top_p(IDS4, LOGITS4, 0.8)[0].tolist() == [10, 11, 12]
    assert top_p(IDS4, LOGITS4, 0.95)[0].tolist() == [10, 11, 12, 13]
    assert top_p(IDS4, LOGITS4, 0.3)[0].tolist() == [10]
    assert top_p(IDS4, LOGITS4, 0.0)[0].tolist() == [10]
    assert top_p(IDS4, LOGITS4, 1.0)[0].tolist() == [10, 11, 12, 13]
    # min_keep wins over p.
    assert top_p(IDS4, LOGITS4, 0.3, min_keep=3)[0].tolist() == [10, 11, 12]


def test_top_p_reaching_p_exactly_stops_there():
    # Four equal logits: .25 each, cumulative .25 .50 .75 1.0 exactly. llama.cpp keeps the
    # prefix once the sum is >= p, so p = .5 keeps two (ties in id order), not three.
    flat = np.zeros(4, dtype=np.float32)
    assert top_p(np.array([3, 0, 2, 1]), flat, 0.5)[0].tolist() == [0, 1]
    assert top_p(np.arange(4), flat, 0.75)[0].tolist() == [0, 1, 2]


def test_top_p_normalizes_over_the_candidates_it_is_given():
    # After a top_k of 2 the candidates are .5 and .25: renormalized 2/3 and 1/3, so
    # p = 0.6 keeps one token, where over all four (.5 < .6) it would keep two.
    assert top_p(IDS4[:2], LOGITS4[:2], 0.6)[0].tolist() == [10]
    assert top_p(IDS4, LOGITS4, 0.6)[0].tolist() == [10, 11]


def test_top_p_sorts_unsorted_candidates():
    ids, vals = top_p(IDS4[::-1], LOGITS4[::-1], 0.7)
    assert ids.tolist() == [10, 11]


def test_min_p_keeps_tokens_with_p_at_least_min_p_times_the_top():
    # p_max = .5: min_p .25 -> threshold .125 keeps .5, .25, .15; min_p .4 -> .2 keeps two.
    assert min_p(IDS4, LOGITS4, 0.25)[0].tolist() == [10, 11, 12]
    assert min_p(IDS4, LOGITS4, 0.4)[0].tolist() == [10, 11]
    assert min_p(IDS4, LOGITS4, 1.0)[0].tolist() == [10]
    assert min_p(IDS4, LOGITS4, 0.0)[0].tolist() == [10, 11, 12, 13]
    assert min_p(IDS4, LOGITS4, 0.9, min_keep=3)[0].tolist() == [10, 11, 12]


def test_min_p_keeps_the_candidates_order():
    ids = np.array([7, 3, 5, 2])
    logits = np.log(np.array([0.1, 0.5, 0.15, 0.25])).astype(np.float32)
    assert min_p(ids, logits, 0.25)[0].tolist() == [3, 5, 2]


def test_temperature_divides_the_logits():
    np.testing.assert_allclose(apply_temperature(np.array([2.0, 1.0, -1.0], dtype=np.float32), 0.5), [4.0, 2.0, -2.0])
    # T = 0.5 squares the probabilities: .8/.2 becomes .64/.04 -> .941176 / .058824.
    probs = softmax(apply_temperature(np.log(np.array([0.8, 0.2])).astype(np.float32), 0.5))
    np.testing.assert_allclose(probs, [0.64 / 0.68, 0.04 / 0.68], rtol=1e-5)
    # T <= 0 keeps only the (first) highest logit.
    assert apply_temperature(np.array([1.0, 3.0, 3.0], dtype=np.float32), 0.0).tolist() == [-np.inf, 3.0, -np.inf]


# --- penalties ------------------------------------------------------------------------------

PEN_LOGITS = np.array([2.0, -1.0, 0.5, 3.0, -2.0, 1.0], dtype=np.float32)
# Token 5 is outside a window of 4; token 0 is in it twice; 2 and 4 are not in it.
PEN_HISTORY = [5, 0, 1, 0, 3]


def test_repeat_penalty_divides_positive_multiplies_negative_once_per_token():
    out = apply_penalties(PEN_LOGITS, PEN_HISTORY, repeat_penalty=2.0, repeat_last_n=4)
    # 0: 2/2 = 1 (not 0.5: counted once); 1: -1*2 = -2; 3: 3/2 = 1.5; 5 is outside the window.
    assert out.tolist() == [1.0, -2.0, 0.5, 1.5, -2.0, 1.0]
    assert PEN_LOGITS.tolist() == [2.0, -1.0, 0.5, 3.0, -2.0, 1.0]  # the input is untouched


def test_repeat_penalty_window_sizes():
    whole = apply_penalties(PEN_LOGITS, PEN_HISTORY, repeat_penalty=2.0, repeat_last_n=-1)
    assert whole.tolist() == [1.0, -2.0, 0.5, 1.5, -2.0, 0.5]
    longer = apply_penalties(PEN_LOGITS, PEN_HISTORY, repeat_penalty=2.0, repeat_last_n=100)
    assert longer.tolist() == whole.tolist()
    last_one = apply_penalties(PEN_LOGITS, PEN_HISTORY, repeat_penalty=2.0, repeat_last_n=1)
    assert last_one.tolist() == [2.0, -1.0, 0.5, 1.5, -2.0, 1.0]
    off = apply_penalties(PEN_LOGITS, PEN_HISTORY, repeat_penalty=2.0, repeat_last_n=0)
    assert off.tolist() == PEN_LOGITS.tolist()
    assert apply_penalties(PEN_LOGITS, [], repeat_penalty=2.0).tolist() == PEN_LOGITS.tolist()


def test_repeat_penalty_leaves_a_zero_logit_at_zero():
    out = apply_penalties(np.array([0.0, 1.0], dtype=np.float32), [0], repeat_penalty=1.5)
    assert out.tolist() == [0.0, 1.0]


def test_frequency_and_presence_penalties_by_count():
    out = apply_penalties(
        PEN_LOGITS, PEN_HISTORY, repeat_last_n=4, frequency_penalty=0.5, presence_penalty=0.25
    )
    # 0 (twice): 2 - (2*.5 + .25) = .75; 1 (once): -1 - .75 = -1.75; 3 (once): 3 - .75 = 2.25.
    assert out.tolist() == [0.75, -1.75, 0.5, 2.25, -2.0, 1.0]


def test_repeat_then_frequency_and_presence():
    out = apply_penalties(
        PEN_LOGITS, np.array(PEN_HISTORY), repeat_penalty=2.0, repeat_last_n=4,
        frequency_penalty=0.5, presence_penalty=0.25,
    )
    # 0: 2/2 - 1.25 = -.25; 1: -1*2 - .75 = -2.75; 3: 3/2 - .75 = .75.
    assert out.tolist() == [-0.25, -2.75, 0.5, 0.75, -2.0, 1.0]


def test_penalties_change_what_the_sampler_picks():
    logits = np.array([1.0, 5.0, 3.0], dtype=np.float32)
    s = Sampler(params(temperature=0.0, repeat_penalty=2.0))
    assert s.sample(logits, []) == 1
    assert s.sample(logits, [1]) == 2  # 5 / 2 = 2.5 < 3
    s = Sampler(params(temperature=0.0, repeat_penalty=2.0, repeat_last_n=1))
    assert s.sample(logits, [1, 0]) == 1  # token 1 left the window


def test_history_token_outside_the_vocabulary_is_an_error():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        apply_penalties(PEN_LOGITS, [6], repeat_penalty=1.1)


# --- the whole chain ------------------------------------------------------------------------


def test_chain_by_hand():
    # top_k 5 -> 1,3,4,5,6 (sum .94); top_p .8 -> cumulative .35/.94 = .372, .60/.94 = .638,
    # .80/.94 = .851 -> 1,3,4; min_p .7 -> p >= .7 * .35 = .245 -> 1,3; temperature .5
    # squares: .1225, .0625 -> .1225/.185, .0625/.185.
    s = Sampler(params(top_k=5, top_p=0.8, min_p=0.7, temperature=0.5))
    ids, probs = s.distribution(LOGITS8)
    assert ids.tolist() == [1, 3]
    np.testing.assert_allclose(probs, [0.1225 / 0.185, 0.0625 / 0.185], rtol=1e-5)


def test_chain_defaults_on_the_small_vocabulary():
    # Defaults: top_k 40 (all 8), top_p .95 -> cumulative .35 .60 .80 .90 .94 .97 -> six
    # tokens; min_p .05 -> p >= .0175 keeps all six; temperature .8 -> p ** 1.25, renormalized.
    s = Sampler(SamplingParams(seed=1))
    ids, probs = s.distribution(LOGITS8)
    assert ids.tolist() == [1, 3, 4, 5, 6, 0]
    kept = np.array([0.35, 0.25, 0.20, 0.10, 0.04, 0.03]) ** 1.25
    np.testing.assert_allclose(probs, kept / kept.sum(), rtol=1e-5)


def test_top_p_comes_before_temperature():
    # If temperature ran first, T = 0.25 would make token 1 hold > 70% and top_p .7 keep it
    # alone; in llama.cpp's order top_p sees .35 .25 .20 (sum .80 >= .7) and keeps three.
    s = Sampler(params(top_p=0.7, temperature=0.25))
    assert s.distribution(LOGITS8)[0].tolist() == [1, 3, 4]


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_greedy_is_the_argmax(temperature):
    s = Sampler(params(temperature=temperature, top_k=3, top_p=0.5, min_p=0.5))
    assert s.sample(LOGITS8, []) == 1
    assert s.sample(np.array([0.0, 2.0, -1.0, 2.0], dtype=np.float32), []) == 1  # tie: lower id
    ids, probs = s.distribution(LOGITS8)
    assert ids.tolist() == [1] and probs.tolist() == [1.0]


def test_greedy_draws_no_random_numbers():
    flat = np.zeros(50, dtype=np.float32)
    a = Sampler(params(seed=5))
    b = Sampler(params(seed=5, temperature=0.0))
    for _ in range(10):
        b.sample(LOGITS8, [])
    b.params = a.params  # same stream position as a fresh sampler
    assert [a.sample(flat) for _ in range(20)] == [b.sample(flat) for _ in range(20)]


# Sampling frequencies. top_k 5 -> 1,3,4,5,6 (sum .94); top_p .9 -> cumulative .372 .638
# .851 .957 -> four tokens 1,3,4,5 with .35 .25 .20 .10 out of .90.
FREQ_CASES = [
    (1.0, {1: 0.35 / 0.9, 3: 0.25 / 0.9, 4: 0.20 / 0.9, 5: 0.10 / 0.9}),
    # T = 0.5 squares: .1225 .0625 .04 .01 out of .235 (top_p ran before the temperature).
    (0.5, {1: 0.1225 / 0.235, 3: 0.0625 / 0.235, 4: 0.04 / 0.235, 5: 0.01 / 0.235}),
]


@pytest.mark.parametrize("temperature,expected", FREQ_CASES)
def test_sampling_frequencies_match_the_distribution(temperature, expected):
    n_draws = 20000
    s = Sampler(params(top_k=5, top_p=0.9, temperature=temperature, seed=2024))
    counts = np.bincount([s.sample(LOGITS8) for _ in range(n_draws)], minlength=8)
    assert set(np.flatnonzero(counts).tolist()) == set(expected)  # nothing outside the kept set
    for token, p in expected.items():
        sigma = math.sqrt(p * (1 - p) / n_draws)
        assert abs(counts[token] / n_draws - p) < 5 * sigma, (token, counts[token] / n_draws, p)


# --- seeds ---------------------------------------------------------------------------------

FLAT = np.zeros(1000, dtype=np.float32)


def test_same_seed_same_tokens_different_seed_different_tokens():
    a = Sampler(params(seed=42))
    b = Sampler(params(seed=42))
    c = Sampler(params(seed=43))
    seq_a = [a.sample(FLAT) for _ in range(100)]
    assert seq_a == [b.sample(FLAT) for _ in range(100)]
    assert seq_a != [c.sample(FLAT) for _ in range(100)]
    assert len(set(seq_a)) > 50  # a flat distribution really is sampled


def test_reset_and_reseed_replay_the_stream():
    s = Sampler(params(seed=7))
    first = [s.sample(FLAT) for _ in range(30)]
    s.reset()
    assert [s.sample(FLAT) for _ in range(30)] == first
    s.reseed(8)
    other = [s.sample(FLAT) for _ in range(30)]
    assert other != first
    s.reseed(7)
    assert [s.sample(FLAT) for _ in range(30)] == first


@pytest.mark.parametrize("seed", [None, -1])
def test_random_seed_is_reported_and_reproducible(seed):
    s = Sampler(params(seed=seed))
    assert isinstance(s.seed, int) and s.seed >= 0
    again = Sampler(params(seed=s.seed))
    assert [s.sample(FLAT) for _ in range(30)] == [again.sample(FLAT) for _ in range(30)]


# --- the fast paths agree with a plain full sort ----------------------------------------------


def reference_distribution(x: np.ndarray, p: SamplingParams) -> tuple[list[int], np.ndarray]:
    """The chain written the slow, obvious way: sort everything, cut, renormalize."""
    order = np.lexsort((np.arange(x.size), -x))  # highest first, ties by lower id
    if p.top_k > 0:
        order = order[: p.top_k]
    vals = x[order].astype(np.float64)
    if p.top_p < 1.0:
        probs = np.exp(vals - vals[0]) / np.exp(vals - vals[0]).sum()
        keep = int(np.argmax(np.cumsum(probs) >= p.top_p)) + 1
        order, vals = order[:keep], vals[:keep]
    if p.min_p > 0.0:
        keep = vals >= vals[0] + math.log(p.min_p)
        order, vals = order[keep], vals[keep]
    e = np.exp((vals - vals[0]) / p.temperature)
    return order.tolist(), e / e.sum()


@pytest.mark.parametrize(
    "kw",
    [
        dict(top_k=40, top_p=0.95, min_p=0.05),
        dict(top_k=300, top_p=0.5, min_p=0.0),
        dict(top_k=0, top_p=0.9, min_p=0.0),
        dict(top_k=0, top_p=0.999, min_p=0.0),
        dict(top_k=0, top_p=1.0, min_p=0.2),
        dict(top_k=7, top_p=1.0, min_p=0.0),
    ],
)
def test_fast_paths_match_a_full_sort(kw):
    rng = np.random.default_rng(3)
    # 20000 logits, rounded so that there are many ties, plus a few masked tokens.
    x = np.round(rng.standard_normal(20000) * 2.0, 1).astype(np.float32)
    x[rng.integers(0, x.size, 50)] = -np.inf
    p = params(temperature=0.7, **kw)
    ids, probs = Sampler(p).distribution(x)
    ref_ids, ref_probs = reference_distribution(x, p)
    if kw["top_k"] > 0 or kw["top_p"] < 1.0:
        assert ids.tolist() == ref_ids
        np.testing.assert_allclose(probs, ref_probs, rtol=1e-5)
    else:  # no rank cut: the candidates stay in vocabulary order
        assert sorted(ids.tolist()) == sorted(ref_ids)
        np.testing.assert_allclose(probs[np.argsort(ids)], np.asarray(ref_probs)[np.argsort(ref_ids)], rtol=1e-5)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,value",
    [
        ("top_p", 1.5),
        ("top_p", -0.1),
        ("min_p", 2.0),
        ("min_p", -0.5),
        ("temperature", float("nan")),
        ("temperature", float("inf")),
        ("temperature", "hot"),
        ("repeat_penalty", 0.0),
        ("repeat_penalty", -1.1),
        ("repeat_last_n", -2),
        ("top_k", 2.5),
        ("top_k", True),
        ("seed", -5),
        ("seed", 1.5),
        ("min_keep", -1),
        ("frequency_penalty", float("-inf")),
        ("presence_penalty", None),
    ],
)
def test_bad_values_are_one_line_usage_errors(name, value):
    with pytest.raises(UsageError) as info:
        SamplingParams(**{name: value})
    message = str(info.value)
    assert name in message and "\n" not in message
    assert isinstance(info.value, CodeupError)


@pytest.mark.parametrize(
    "kw",
    [
        dict(temperature=-0.5),  # = greedy, as llama.cpp's --temp clamps to 0
        dict(temperature=0),
        dict(top_k=-1),
        dict(top_k=0),
        dict(top_p=0.0, min_p=1.0),
        dict(repeat_last_n=-1),
        dict(seed=-1),
        dict(seed=2**40),
        dict(min_keep=0),
        dict(frequency_penalty=-0.5, presence_penalty=-2),
        dict(repeat_penalty=np.float32(1.1), top_k=np.int64(20)),
    ],
)
def test_values_llama_cpp_accepts_are_accepted(kw):
    Sampler(SamplingParams(**kw)).sample(LOGITS8, [1, 2])


def test_unusable_logits_are_an_error():
    s = Sampler(params())
    with pytest.raises(ValueError):
        s.sample(np.array([0.0, np.nan, 1.0], dtype=np.float32))
    with pytest.raises(ValueError):
        s.sample(np.full(3, -np.inf, dtype=np.float32))
    with pytest.raises(ValueError):
        s.sample(np.zeros((2, 3), dtype=np.float32))

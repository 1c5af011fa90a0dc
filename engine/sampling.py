"""Choosing the next token from the logits, as llama.cpp's default sampler chain does.

The chain (``CHAIN``), in llama.cpp's current order (``common_sampler``; these steps have
kept this relative order since Dec 2023), without the samplers that are off by default
there (logit bias, DRY, typical, XTC, mirostat):

1. **penalties**: over the last ``repeat_last_n`` tokens of the context (prompt tokens
   included; -1 = the whole context, 0 = off), each distinct token's logit is divided by
   ``repeat_penalty`` if it is positive and multiplied by it otherwise (once per token,
   however often it occurs), then lowered by ``count * frequency_penalty + presence_penalty``.
2. **top_k**: keep the k highest logits, sorted in descending order (k <= 0: keep all).
3. **top_p**: softmax over what is left; keep the shortest prefix whose cumulative
   probability is >= top_p, and at least min_keep tokens (top_p = 1: off).
4. **min_p**: keep the tokens whose probability is >= min_p times the highest one, i.e.
   ``logit >= max_logit + ln(min_p)``, and at least min_keep tokens (min_p = 0: off).
5. **temperature**: divide the logits by the temperature.
6. **dist**: softmax, then one draw from it with ``numpy.random.Generator(PCG64(seed))``.

With a temperature of 0 or below the choice is greedy: the highest logit after the
penalties (ties go to the lowest token id). This is what llama.cpp does: its ``--temp``
clamps negative values to 0, and a temperature of 0 keeps only the argmax. A greedy step
draws no random number.

Ties between equal logits are broken towards the lower token id everywhere, so a result
depends only on the logits, the history and the seed. Each non-greedy step uses exactly
one random number, even when a single candidate is left, so the n-th sampled token always
uses the n-th number of the seed's stream.

Differences from llama.cpp that a user might notice: probabilities and cumulative sums
are computed in float64 (llama.cpp uses float32), so a token that sits exactly on a
top_p or min_p boundary may be kept by one and dropped by the other; the random stream
is numpy's PCG64, not ``std::mt19937``, so the same seed gives different text; and
penalize_nl / ignore_eos are not offered (both off in current llama.cpp).

``logit_bias`` (off unless given; the server's ``logit_bias`` field) adds a number to
chosen tokens' logits before everything else, where llama.cpp's chain has it; -inf bans a
token. A Sampler made with ``top_logprobs`` records, for each token it picks, its log
probability and the most likely alternatives (``TokenLogprob``): the log-softmax of the
model's logits as given, before any sampler changes them (what llama.cpp's server reports
by default, and what OpenAI's ``logprobs`` means).
"""

from __future__ import annotations

import math
import numbers
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import UsageError
from .settings import SAMPLING_SETTINGS, SETTINGS_BY_NAME, SettingError

#: The samplers applied to the logits, in order (see the module docstring).
CHAIN: tuple[str, ...] = ("penalties", "top_k", "top_p", "min_p", "temperature", "dist")
#: The chain as one line, e.g. for a log or the README.
CHAIN_TEXT = " -> ".join(CHAIN)

_DEFAULTS = {setting.name: setting.default for setting in SAMPLING_SETTINGS}

# Below this many candidates per kept token the block-maximum prefilter of _top_indices
# is not worth it.
_PREFILTER_GROUPS = 1024


@dataclass(frozen=True)
class SamplingParams:
    """The sampling options, with llama.cpp's current defaults (``common_params_sampling``);
    the defaults and ranges are engine/settings.py's.

    temperature: 0 or below = greedy (llama.cpp clamps a negative ``--temp`` to 0).
    top_k: <= 0 = all tokens. top_p, min_p: in [0, 1]; top_p = 1 and min_p = 0 turn them off.
    repeat_penalty: > 0; 1.0 = off (llama.cpp's default since March 2024; 1.1 before).
    repeat_last_n: tokens of the context the penalties look at; -1 = all, 0 = off.
    frequency_penalty, presence_penalty: any finite number; 0 = off.
    seed: None (or -1, llama.cpp's spelling) = a random seed from the OS; an int >= 0 = a
    reproducible stream. min_keep: top_p and min_p keep at least this many tokens (0 acts
    as 1, as in llama.cpp).
    """

    temperature: float = _DEFAULTS["temperature"]
    top_k: int = _DEFAULTS["top_k"]
    top_p: float = _DEFAULTS["top_p"]
    min_p: float = _DEFAULTS["min_p"]
    repeat_penalty: float = _DEFAULTS["repeat_penalty"]
    repeat_last_n: int = _DEFAULTS["repeat_last_n"]
    frequency_penalty: float = _DEFAULTS["frequency_penalty"]
    presence_penalty: float = _DEFAULTS["presence_penalty"]
    seed: int | None = _DEFAULTS["seed"]
    min_keep: int = 1
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit); -inf bans it

    def __post_init__(self) -> None:
        self.validate()
        for setting in SAMPLING_SETTINGS:  # as their kind: a JSON 40.0 is top_k 40
            object.__setattr__(self, setting.name, setting.check(getattr(self, setting.name)))

    def validate(self) -> None:
        """Raise UsageError, with one line naming the first bad value, if any is out of range
        (the ranges are engine/settings.py's, the same for every entry point)."""
        for setting in SAMPLING_SETTINGS:
            try:
                setting.check(getattr(self, setting.name))
            except SettingError as exc:
                raise UsageError(f"{setting.name} {exc}") from None
        min_keep = _integer("min_keep", self.min_keep)
        if min_keep < 0:
            raise UsageError(f"min_keep must be 0 or more, got {min_keep}")
        for pair in self.logit_bias:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise UsageError(f"logit_bias entries must be (token id, bias) pairs, got {pair!r}")
            if _integer("logit_bias token id", pair[0]) < 0:
                raise UsageError(f"logit_bias token id must be 0 or more, got {pair[0]}")
            bias = pair[1]
            if not (isinstance(bias, numbers.Real) and not isinstance(bias, bool)
                    and (math.isfinite(bias) or bias == -math.inf)):
                raise UsageError(f"logit_bias for token {pair[0]} must be a finite number or -inf, got {bias!r}")

    @property
    def greedy(self) -> bool:
        """True when the temperature makes every step take the highest logit."""
        return self.temperature <= 0.0

    @property
    def penalties_active(self) -> bool:
        return self.repeat_last_n != 0 and (
            self.repeat_penalty != 1.0 or self.frequency_penalty != 0.0 or self.presence_penalty != 0.0
        )


def _integer(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _check_seed(seed: object) -> None:
    try:
        SETTINGS_BY_NAME["seed"].check(seed)
    except SettingError as exc:
        raise UsageError(f"seed {exc}") from None


def _resolve_seed(seed: int | None) -> int:
    if seed is None or seed == -1:
        return secrets.randbits(32)
    return int(seed)


# --- the steps, as pure functions -------------------------------------------------------


def apply_logit_bias(logits: np.ndarray, bias: Iterable[tuple[int, float]]) -> np.ndarray:
    """A float32 copy of `logits` with each (token id, bias) added (-inf bans the token).
    ValueError for a token id outside the vocabulary."""
    out = np.array(logits, dtype=np.float32)
    for token, value in bias:
        if not 0 <= token < out.size:
            raise ValueError(f"logit_bias names token {token}, outside the vocabulary of {out.size}")
        out[token] += np.float32(value)
    return out


class TokenLogprob(NamedTuple):
    """A picked token's log probability, and the `top` most likely tokens with theirs
    (highest first; ties by the lower id)."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...]


def token_logprobs(logits: np.ndarray, token: int, top_n: int = 0) -> TokenLogprob:
    """The log-softmax (float64) of `logits` at `token`, and the `top_n` highest."""
    x = np.asarray(logits, dtype=np.float64)
    high = float(np.max(x))
    log_total = high + math.log(float(np.exp(x - high).sum()))
    top: tuple[tuple[int, float], ...] = ()
    if top_n > 0:
        ids = _top_indices(np.asarray(logits, dtype=np.float32), min(int(top_n), x.size))
        top = tuple((int(i), float(x[i]) - log_total) for i in ids)
    return TokenLogprob(int(token), float(x[token]) - log_total, top)


def apply_penalties(
    logits: np.ndarray,
    history: Sequence[int] | np.ndarray | Iterable[int],
    repeat_penalty: float = 1.0,
    repeat_last_n: int = 64,
    frequency_penalty: float = 0.0,
    presence_penalty: float = 0.0,
) -> np.ndarray:
    """A float32 copy of `logits` with the repetition, frequency and presence penalties applied.

    The window is the last `repeat_last_n` tokens of `history` (-1 = all of it, 0 = no
    penalties). Each distinct token in it, counted ``count`` times, gets
    ``logit / repeat_penalty`` if ``logit > 0`` else ``logit * repeat_penalty``, and then
    ``- (count * frequency_penalty + presence_penalty)``. Arithmetic is float32, as in llama.cpp.
    """
    out = np.array(logits, dtype=np.float32)
    if out.ndim != 1:
        raise ValueError(f"logits must be one-dimensional, got shape {out.shape}")
    if repeat_last_n == 0 or (repeat_penalty == 1.0 and frequency_penalty == 0.0 and presence_penalty == 0.0):
        return out
    if not isinstance(history, (np.ndarray, list, tuple)):
        history = list(history)
    window = history if repeat_last_n < 0 else history[-repeat_last_n:]
    window = np.asarray(window, dtype=np.int64)
    if window.size == 0:
        return out
    tokens, counts = np.unique(window, return_counts=True)
    if tokens[0] < 0 or tokens[-1] >= out.size:
        bad = tokens[0] if tokens[0] < 0 else tokens[-1]
        raise ValueError(f"history holds token {bad}, outside the vocabulary of {out.size}")
    values = out[tokens]
    penalty = np.float32(repeat_penalty)
    values = np.where(values > 0, values / penalty, values * penalty)
    values -= counts.astype(np.float32) * np.float32(frequency_penalty) + np.float32(presence_penalty)
    out[tokens] = values
    return out


def top_k(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest logits of the whole vocabulary: (token ids, logits), highest first.

    k <= 0 or k >= len(logits) keeps every token (sorted). Ties go to the lower token id.
    """
    x = np.asarray(logits, dtype=np.float32)
    ids = _top_indices(x, x.size if k <= 0 else min(int(k), x.size))
    return ids, x[ids]


def top_p(
    ids: np.ndarray, logits: np.ndarray, p: float, min_keep: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Nucleus filter: the shortest highest-first prefix whose probability sum is >= p.

    The probabilities are the softmax over the given candidates only (after top_k, as in
    llama.cpp). At least `min_keep` (and at least one) candidates are kept; p >= 1 keeps
    everything and leaves the order as it is. Candidates not sorted highest first are sorted.
    """
    ids, logits = np.asarray(ids), np.asarray(logits)
    if p >= 1.0 or ids.size == 0:
        return ids, logits
    ids, logits = _sorted(ids, logits)
    cumulative = np.cumsum(softmax(logits))
    return _cut_top_p(ids, logits, cumulative, p, min_keep)


def min_p(
    ids: np.ndarray, logits: np.ndarray, p: float, min_keep: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the candidates whose probability is at least `p` times the highest one.

    That is ``logit >= max_logit + ln(p)``; the order of the candidates is kept. If fewer
    than `min_keep` pass, the `min_keep` highest are kept (highest first). p <= 0 keeps all.
    """
    ids, logits = np.asarray(ids), np.asarray(logits)
    if p <= 0.0 or ids.size == 0:
        return ids, logits
    threshold = float(np.max(logits)) + math.log(p)
    keep = logits >= threshold
    if int(np.count_nonzero(keep)) >= max(1, min_keep):
        return ids[keep], logits[keep]
    ids, logits = _sorted(ids, logits)
    return ids[:min_keep], logits[:min_keep]


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """logits / temperature (float32). A temperature <= 0 leaves only the first highest logit
    finite (the others become -inf), as llama.cpp's temperature sampler does."""
    x = np.asarray(logits, dtype=np.float32)
    if temperature > 0.0:
        return x / np.float32(temperature)
    out = np.full_like(x, -np.inf)
    if x.size:
        i = int(np.argmax(x))
        out[i] = x[i]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities (float64) from logits; -inf logits get probability 0."""
    x = np.asarray(logits, dtype=np.float64)
    top = np.max(x)
    if not np.isfinite(top):
        raise ValueError(f"cannot take the softmax of logits whose maximum is {top}")
    e = np.exp(x - top)
    return e / e.sum()


def draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """The index of one draw from `probs` (need not be normalized), using one rng.random()."""
    cdf = np.cumsum(np.asarray(probs, dtype=np.float64))
    u = rng.random() * cdf[-1]
    i = int(np.searchsorted(cdf, u, side="right"))
    if i >= cdf.size:  # u rounded up to the total: take the last token with probability > 0
        i = int(np.flatnonzero(np.asarray(probs) > 0)[-1])
    return i


# --- the chain ---------------------------------------------------------------------------


class Sampler:
    """Picks tokens with the chain described in the module docstring.

    A Sampler holds only its random stream: the penalties look at the `history` passed to
    each call. Two Samplers made with the same seed give the same tokens for the same
    logits and histories. `seed` is the seed in use (drawn from the OS when the params
    have none), so a random run can be repeated.
    """

    def __init__(self, params: SamplingParams | None = None, *, top_logprobs: int | None = None) -> None:
        self.params = SamplingParams() if params is None else params
        self.params.validate()
        # with top_logprobs (0 or more): a TokenLogprob for each token `sample` picks, in order
        self.top_logprobs = top_logprobs
        self.logprobs: list[TokenLogprob] = []
        self.seed = _resolve_seed(self.params.seed)
        self._rng = np.random.Generator(np.random.PCG64(self.seed))

    def reset(self) -> None:
        """Restart the random stream from `seed`: the next tokens repeat the first ones."""
        self._rng = np.random.Generator(np.random.PCG64(self.seed))

    def reseed(self, seed: int | None = None) -> None:
        """Start a new random stream (None or -1 = a fresh random seed from the OS)."""
        _check_seed(seed)
        self.seed = _resolve_seed(seed)
        self.reset()

    def distribution(
        self, logits: np.ndarray, history: Sequence[int] | np.ndarray = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, probabilities) that the final draw chooses from, after the whole chain.

        Greedy parameters give the single argmax with probability 1.
        """
        params = self.params
        x = np.asarray(logits, dtype=np.float32)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"logits must be a non-empty one-dimensional array, got shape {x.shape}")
        if params.logit_bias:
            x = apply_logit_bias(x, params.logit_bias)
        if params.penalties_active:
            x = apply_penalties(
                x, history, params.repeat_penalty, params.repeat_last_n,
                params.frequency_penalty, params.presence_penalty,
            )
        top = x.max()  # NaN anywhere makes this NaN
        if not np.isfinite(top):
            raise ValueError(f"logits are not usable: their maximum is {top}")
        if params.greedy:
            return np.array([int(np.argmax(x))], dtype=np.int64), np.ones(1)

        min_keep = max(1, params.min_keep)
        n = x.size
        k = n if params.top_k <= 0 else min(params.top_k, n)
        if k < n:
            ids, vals = top_k(x, k)
            ids, vals = top_p(ids, vals, params.top_p, min_keep)
        elif params.top_p < 1.0:
            ids, vals = _top_p_of_all(x, float(top), params.top_p, min_keep)
        else:  # no truncation by rank: keep the vocabulary order, skip the sort
            ids, vals = np.arange(n, dtype=np.int64), x
        ids, vals = min_p(ids, vals, params.min_p, min_keep)
        return ids, softmax(apply_temperature(vals, params.temperature))

    def sample(self, logits: np.ndarray, history: Sequence[int] | np.ndarray = ()) -> int:
        """The next token id. `history` is every token of the context so far (prompt and
        generated), used by the penalties."""
        ids, probs = self.distribution(logits, history)
        token = int(ids[0]) if self.params.greedy else int(ids[draw(probs, self._rng)])
        self.record(logits, token)
        return token

    def record(self, logits: np.ndarray, token: int) -> None:
        """Note `token` as picked from `logits` (its log-probabilities, with top_logprobs)."""
        if self.top_logprobs is not None:
            self.logprobs.append(token_logprobs(logits, token, self.top_logprobs))


# --- helpers -----------------------------------------------------------------------------


def _sorted(ids: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates highest logit first, ties by lower id (returned as they are if already so)."""
    if logits.size < 2 or bool(np.all(logits[:-1] >= logits[1:])):
        # Already descending; a run of equal logits must still be in id order.
        if logits.size < 2 or not bool(np.any((logits[:-1] == logits[1:]) & (ids[:-1] > ids[1:]))):
            return ids, logits
    order = np.lexsort((ids, -logits))
    return ids[order], logits[order]


def _cut_top_p(
    ids: np.ndarray, logits: np.ndarray, cumulative: np.ndarray, p: float, min_keep: int
) -> tuple[np.ndarray, np.ndarray]:
    reached = np.flatnonzero(cumulative >= p)
    keep = ids.size if reached.size == 0 else int(reached[0]) + 1
    keep = min(ids.size, max(keep, min_keep, 1))
    return ids[:keep], logits[:keep]


def _top_p_of_all(x: np.ndarray, top: float, p: float, min_keep: int) -> tuple[np.ndarray, np.ndarray]:
    """top_p over the whole vocabulary without sorting all of it.

    The probabilities are normalized over every token; the highest m are taken (m = 256,
    then 8x more) until their sum reaches p, which proves the nucleus lies inside them.
    """
    n = x.size
    total = float(np.exp(x - np.float32(top)).sum(dtype=np.float64))
    m = min(n, max(256, min_keep))
    while True:
        ids = _top_indices(x, m)
        vals = x[ids]
        cumulative = np.cumsum(np.exp(vals.astype(np.float64) - top)) / total
        if cumulative[-1] >= p or m == n:
            return _cut_top_p(ids, vals, cumulative, p, min_keep)
        m = min(n, m * 8)


def _top_indices(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values of x (1 <= k <= x.size), largest first, ties by index."""
    n = x.size
    if k >= n:
        return np.argsort(-x, kind="stable")
    groups = max(_PREFILTER_GROUPS, 4 * k)
    candidates = None
    if 2 * groups <= n:
        # The k-th largest of the maxima of `groups` disjoint groups is <= the k-th largest
        # value overall, so every top-k value is >= it: filter with it before partitioning.
        rows = n // groups
        maxima = x[: rows * groups].reshape(rows, groups).max(axis=0)
        threshold = np.partition(maxima, groups - k)[groups - k]
        candidates = np.flatnonzero(x >= threshold)
    values = x if candidates is None else x[candidates]
    m = values.size
    if m > k:
        kth = np.partition(values, m - k)[m - k]
        above = np.flatnonzero(values > kth)
        equal = np.flatnonzero(values == kth)[: k - above.size]
        positions = np.concatenate((above, equal))
    else:
        positions = np.arange(m)
    ids = positions if candidates is None else candidates[positions]
    order = np.lexsort((ids, -x[ids]))
    return ids[order].astype(np.int64, copy=False)

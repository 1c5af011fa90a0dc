"""engine/batching.py: several sequences in one forward pass give each of them the same bits
as it gets alone, however its prompt is cut into chunks and whatever runs beside it; the
scheduler's greedy texts are the same alone and together, and a slot's cached prefix is
reused exactly. On the llama.cpp-made tiny-llama fixtures whose kernels are row-invariant
(F32, Q8_0, and a k-quant mix)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.helpers.paths import fixtures_or_skip
from codeup_tui.engine.attention import keys_at
from codeup_tui.engine.batching import BatchScheduler, SequenceChunk, SlotCache, forward_many
from codeup_tui.engine.model import load_model
from codeup_tui.engine.errors import UsageError
from codeup_tui.engine.sampling import SamplingParams

TYPES = ["F32", "Q8_0", "Q4_K_M"]
N_CTX = 256


@pytest.fixture(scope="module", params=TYPES)
def model(request):
    m = load_model(fixtures_or_skip("tiny-llama", f"tiny-llama-{request.param}.gguf"), n_ctx=N_CTX * 4)
    yield m
    m.close()


def slot_caches(model, n):
    return [SlotCache.empty(model.weights.hp, N_CTX) for _ in range(n)]


def keys_of(cache, n):
    """Every layer's keys of positions 0..n-1, (n_layer, n, n_head_kv, head_dim)."""
    return np.stack([keys_at(layer, 0, n) for layer in cache.k])


def sequences(n_vocab):
    rng = np.random.default_rng(7)
    # prompt lengths, and the tokens that follow (fed one at a time, as generated ones are)
    return [(rng.integers(1, n_vocab, size=p), rng.integers(1, n_vocab, size=6)) for p in (37, 5, 64, 2)]


def logits_alone(model, prompt, follow):
    """The whole prompt in one chunk, then one token at a time: the logits of each step."""
    cache = slot_caches(model, 1)[0]
    out = [forward_many(model.weights, [SequenceChunk(cache, prompt, 0, True)])[0]]
    for i, t in enumerate(follow):
        out.append(forward_many(model.weights, [SequenceChunk(cache, np.array([t]), len(prompt) + i, True)])[0])
    return out


def test_a_batch_of_sequences_gives_each_the_bits_it_gets_alone(model):
    seqs = sequences(model.info.n_vocab)
    alone = [logits_alone(model, p, f) for p, f in seqs]
    caches = slot_caches(model, len(seqs))
    # together: each prompt cut differently (a chunk of one token included), the sequences
    # starting at different steps, so prompt chunks and single tokens share the steps
    cuts = [[10, 1, 1, 1, 20, 4], [2, 3], [1, 1, 62], [2]]
    delay = [0, 3, 1, 5]
    plans = []
    for (prompt, follow), cut, d in zip(seqs, cuts, delay):
        steps, at = [None] * d, 0
        for size in cut:
            steps.append((prompt[at : at + size], at, at + size == len(prompt)))
            at += size
        for i, t in enumerate(follow):
            steps.append((np.array([t]), len(prompt) + i, True))
        plans.append(steps)
    together = [[] for _ in seqs]
    for step in range(max(len(p) for p in plans)):
        chunks, owners = [], []
        for i, plan in enumerate(plans):
            if step < len(plan) and plan[step] is not None:
                tokens, start, want = plan[step]
                chunks.append(SequenceChunk(caches[i], tokens, start, want))
                owners.append(i)
        for i, logits in zip(owners, forward_many(model.weights, chunks)):
            if logits is not None:
                together[i].append(logits)
    for i in range(len(seqs)):
        assert len(together[i]) == len(alone[i])
        for a, b in zip(alone[i], together[i]):
            assert np.array_equal(a, b), f"sequence {i} differs in a batch"
    # and the keys and values the slots hold are the bits of one whole-prompt evaluation of
    # the same tokens: generated tokens included, so a cached prefix is reusable as it is
    for i, (prompt, follow) in enumerate(seqs):
        whole = np.concatenate((prompt, follow))
        n = len(whole)
        held_k, held_v = keys_of(caches[i], n), caches[i].v[:, :n].copy()
        fresh = slot_caches(model, 1)[0]
        forward_many(model.weights, [SequenceChunk(fresh, whole, 0, True)])
        assert np.array_equal(held_k, keys_of(fresh, n)) and np.array_equal(held_v, fresh.v[:, :n]), f"sequence {i}"


def test_scheduler_texts_are_the_same_alone_and_together(model):
    rng = np.random.default_rng(3)
    prompts = [list(rng.integers(1, model.info.n_vocab, size=int(n))) for n in (5, 40, 2, 90, 17, 1)]
    greedy = SamplingParams(temperature=0)
    scheduler = BatchScheduler(model, 4)
    try:
        alone = []
        for p in prompts:
            alone.append(scheduler.submit(p, greedy, max_tokens=12).text())
        # again, all at once (two of them queued): the slots' caches now hold these prompts,
        # so most are reused; none of that may change a text
        handles = [scheduler.submit(p, greedy, max_tokens=12) for p in prompts]
        assert [h.text() for h in handles] == alone
        assert scheduler.most_in_step > 1
        # and on a fresh scheduler, nothing cached
        fresh = BatchScheduler(model, 4)
        try:
            handles = [fresh.submit(p, greedy, max_tokens=12) for p in reversed(prompts)]
            assert [h.text() for h in handles] == alone[::-1]
        finally:
            fresh.close()
        assert all(h.result.timings.generated_tokens == 12 or h.result.stop_reason.value == "eos" for h in handles)
    finally:
        scheduler.close()


def test_split_slots_share_the_model_cache_in_whole_tiles_or_hold_their_own(model):
    # keys are cached in tiles of 16 positions: a slot's share of the model's cache is a view
    # when it is whole tiles (1024 / 4), else each slot gets a cache of its own (1024 / 3 = 341)
    rng = np.random.default_rng(8)
    prompts = [list(rng.integers(1, model.info.n_vocab, size=int(n))) for n in (23, 3, 60)]
    greedy = SamplingParams(temperature=0)
    texts = {}
    for n_slots in (4, 3):
        scheduler = BatchScheduler(model, n_slots)
        try:
            shared = [np.shares_memory(s.cache.k, model.cache.k) for s in scheduler.slots]
            assert shared == [n_slots == 4] * n_slots
            assert [s.cache.n_ctx for s in scheduler.slots] == [model.n_ctx // n_slots] * n_slots
            texts[n_slots] = [h.text() for h in [scheduler.submit(p, greedy, max_tokens=10) for p in prompts]]
        finally:
            scheduler.close()
    assert texts[3] == texts[4]


def test_prompts_sent_together_to_an_idle_scheduler_are_read_in_one_step(model):
    rng = np.random.default_rng(5)
    greedy = SamplingParams(temperature=0)
    scheduler = BatchScheduler(model, 4)
    try:
        # one request first: the scheduler learns what a prompt token costs
        assert scheduler.submit(list(rng.integers(1, model.info.n_vocab, size=30)), greedy, max_tokens=1).wait(60)
        before = scheduler.steps
        handles = []
        for _ in range(4):  # a few milliseconds apart, as requests sent together reach a server
            handles.append(scheduler.submit(list(rng.integers(1, model.info.n_vocab, size=20)), greedy, max_tokens=1))
            time.sleep(0.002)
        assert all(h.wait(60) for h in handles)
        # the four prompts and their first tokens: one forward pass, not one per request
        assert scheduler.steps - before == 1
        assert [h.result.timings.generated_tokens for h in handles] == [1, 1, 1, 1]
    finally:
        scheduler.close()


def test_a_cancelled_request_frees_its_slot_and_a_queued_one_never_starts(model):
    scheduler = BatchScheduler(model, 1)
    try:
        running = scheduler.submit([1, 2, 3], SamplingParams(temperature=0), max_tokens=-1)
        queued = scheduler.submit([4, 5, 6], SamplingParams(temperature=0), max_tokens=5)
        assert running.next_piece(timeout=60) is not None
        assert scheduler.waiting == 1
        queued.cancel()
        assert queued.wait(60) and queued.result.stop_reason.value == "cancelled" and not queued.started
        running.cancel()
        assert running.wait(60) and running.result.stop_reason.value == "cancelled"
        after = scheduler.submit([7, 8], SamplingParams(temperature=0), max_tokens=3)
        assert after.wait(60) and after.result.timings.generated_tokens <= 3
        assert [s["state"] for s in scheduler.slot_report()] == ["idle"]
    finally:
        scheduler.close()


@pytest.mark.parametrize("name", ["tiny-llama/tiny-llama-Q8_0", "archs/tiny-qwen2-Q8_0", "archs/tiny-qwen3-Q8_0",
                                  "archs/tiny-qwen3moe-Q8_0"])
def test_the_batched_pass_is_the_forward_pass_of_every_architecture(name):
    """A prompt evaluated beside another sequence gives the bits it gets alone (llama.forward:
    the same pass with one sequence), for every architecture."""
    from codeup_tui.engine.llama import forward

    folder, stem = name.split("/")
    m = load_model(fixtures_or_skip(folder, stem + ".gguf"), n_ctx=N_CTX * 2)
    try:
        rng = np.random.default_rng(5)
        prompt = rng.integers(1, m.info.n_vocab, size=23)
        other = rng.integers(1, m.info.n_vocab, size=9)
        expected = forward(m.weights, m.cache, prompt, 0, all_logits=False)
        caches = slot_caches(m, 2)
        got = forward_many(m.weights, [SequenceChunk(caches[0], other, 0, False),
                                       SequenceChunk(caches[1], prompt, 0, True)])
        assert got[0] is None and np.array_equal(got[1], expected)
    finally:
        m.close()


def test_unified_slots_share_the_context_and_give_up_idle_caches(model):
    rng = np.random.default_rng(11)
    pool = model.n_ctx
    long_a, long_b, long_c = (list(rng.integers(1, model.info.n_vocab, size=int(pool * 0.6))) for _ in range(3))
    greedy = SamplingParams(temperature=0)
    scheduler = BatchScheduler(model, 2, unified=True)
    try:
        assert scheduler.n_ctx_slot == pool  # one request may use all of it
        first = scheduler.submit(long_a, greedy, max_tokens=3)
        assert first.wait(60) and first.result.stop_reason.value in ("limit", "eos")
        held = [s["n_past"] for s in scheduler.slot_report()]
        assert max(held) >= len(long_a)
        # the next long prompt does not fit beside that idle cache: the cache is given up
        second = scheduler.submit(long_b, greedy, max_tokens=3)
        alone_b = second.text()
        assert sorted(s["n_past"] for s in scheduler.slot_report())[0] == 0
        # two long prompts at once do not fit together: the second waits for the first
        together = [scheduler.submit(long_c, greedy, max_tokens=5), scheduler.submit(long_b, greedy, max_tokens=3)]
        assert together[1].text() == alone_b and together[0].wait(60)
        assert together[0].result.stop_reason.value in ("limit", "eos")
        assert scheduler.most_in_step == 1  # never two of them in one step
        # memory, not only tokens, is what the pool holds: slots that wrote long prompts
        # before give those pages back before a new long prompt may run beside them
        short = [scheduler.submit(list(rng.integers(1, model.info.n_vocab, size=9)), greedy, max_tokens=2)
                 for _ in range(2)]
        assert all(h.wait(60) for h in short)
        assert sum(s.high_water for s in scheduler.slots) <= pool
        last = scheduler.submit(long_a, greedy, max_tokens=2)
        assert last.wait(60) and last.result.stop_reason.value in ("limit", "eos")
        assert sum(s.high_water for s in scheduler.slots) <= pool
        with pytest.raises(UsageError, match="more than the context"):
            scheduler.submit(list(range(1, pool + 2)), greedy)
    finally:
        scheduler.close()


def test_a_lone_stream_drafts_and_gets_the_text_it_gets_without(model, monkeypatch):
    from codeup_tui.engine.speculative import DraftParams, PromptLookupDrafter

    # guess as far as a match goes, whatever a tiny model's batches cost
    monkeypatch.setattr(PromptLookupDrafter, "best_length", lambda self, available, n: available)
    rng = np.random.default_rng(11)
    prompt = list(rng.integers(1, model.info.n_vocab, size=20))
    greedy = SamplingParams(temperature=0)
    plain = BatchScheduler(model, 2, draft=DraftParams(spec_type="none"))
    try:
        expected = plain.submit(prompt, greedy, max_tokens=30)
        expected.text()
    finally:
        plain.close()
    drafting = BatchScheduler(model, 2, draft=DraftParams(ngram_min=1, draft_max=8))
    try:
        # an earlier "answer" right for a while, wrong at every fifth token: both accepted and
        # rejected guesses are verified
        earlier = [t if i % 5 != 4 else (t + 1) % model.info.n_vocab for i, t in enumerate(expected.result.tokens)]
        drafting._drafter.remember_answer(earlier)
        handle = drafting.submit(prompt, greedy, max_tokens=30)
        assert handle.text() == expected.result.text and handle.result.tokens == expected.result.tokens
        t = handle.result.timings
        assert 0 < t.accepted_tokens < t.drafted_tokens, t
    finally:
        drafting.close()

"""The vector kernels compute the same bits as the scalar ones that spell out their order of
operations: attention in the engine's order (head sizes in whole steps of 64), ggml's exp
lane for lane, and SwiGLU; the key cache's tiles hold what was stored."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from codeup_tui.engine.attention import (
    ENGINE_SUMS, KEY_TILE, LLAMA_BATCH_SUMS, LLAMA_ONE_TOKEN_SUMS, UNIT_TOKENS, _attention_scalar, _attention_tiles,
    attention, key_cache_shape, keys_at, pair_block, store_keys, token_runs,
)
from codeup_tui.engine.ggml_math import _swiglu, ggml_expf
from codeup_tui.engine.ggml_vector_math import ggml_expf16, swiglu
from codeup_tui.engine.quants._simd import vload, vstore
from codeup_tui.engine.summation_order import LLAMA_CPP, summation_order


def _caches(rng, n_ctx, n_kv, hd):
    """One layer's key tiles and values for n_ctx random positions; the tiles' padding
    positions hold infinities, which no position may read."""
    keys = (rng.standard_normal((n_ctx, n_kv, hd)) * 2).astype(np.float16).view(np.uint16)
    values = (rng.standard_normal((n_ctx, n_kv, hd)) * 2).astype(np.float16).view(np.uint16)
    k = np.full(key_cache_shape(1, n_ctx, n_kv, hd)[1:], np.float16(np.inf).view(np.uint16))
    store_keys(k, 0, keys)
    return k, values


def test_keys_are_stored_in_tiles_and_read_back_by_position():
    rng = np.random.default_rng(1)
    k = np.zeros(key_cache_shape(1, 40, 3, 64)[1:], dtype=np.uint16)
    assert k.shape == (3, 3, 64, KEY_TILE)
    rows = rng.integers(0, 0x7C00, size=(21, 3, 64)).astype(np.uint16)
    store_keys(k, 7, rows)  # positions 7..27: the end of tile 0, all of tile 1, the start of tile 2
    assert np.array_equal(keys_at(k, 7, 28), rows)
    assert np.array_equal(k[1, 2, :, 3], rows[16 - 7 + 3, 2])  # position 19, KV head 2
    assert not keys_at(k, 0, 7).any() and not keys_at(k, 28, 40).any()


@pytest.mark.parametrize(
    "hd, n_head, n_kv, n_tok, start",
    # (64, 9, 3, 3, 30): 31, 32 and 33 positions, whole tiles and a part of one
    # (64, 9, 3, 8, 100): pairs of several tokens sharing a unit (their last positions differ);
    # (128, 28, 4, 17, 63): seven query heads per KV head, a second run of tokens;
    # (64, 9, 3, 1, 777): four tiles at a time and the tiles after them
    [(64, 9, 3, 1, 0), (64, 9, 3, 1, 777), (64, 9, 3, 13, 40), (64, 9, 3, 3, 30), (128, 8, 2, 1, 300), (128, 4, 4, 5, 0),
     (64, 9, 3, 8, 100), (128, 28, 4, 17, 63), (64, 2, 1, 40, 0)],
)
def test_vector_attention_equals_the_engine_order_bit_for_bit(hd, n_head, n_kv, n_tok, start):
    rng = np.random.default_rng(hd + n_tok + start)
    k, v = _caches(rng, start + n_tok + 3, n_kv, hd)
    q = (rng.standard_normal((n_tok, n_head, hd)) * 4).astype(np.float32)
    scale = np.float32(1.0 / np.sqrt(hd))
    got, want = np.empty_like(q), np.empty_like(q)
    attention(q, k, v, start, scale, got)
    _attention_scalar(q, k, v, start, scale, want, ENGINE_SUMS)
    assert np.isfinite(got).all()
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("n_tok", [17, 8, 2])
def test_a_token_in_a_batch_gets_the_bits_it_gets_alone(n_tok):
    # what makes drafting lossless: a step of 17 tokens (a token and 16 guesses) attends as
    # 17 steps of one; 8 and 2 tokens put two tokens' pairs in one work unit. The last
    # position's value overflowed half precision: no earlier token may see it.
    rng = np.random.default_rng(2)
    hd, n_head, n_kv, start = 64, 9, 3, 250
    k, v = _caches(rng, start + n_tok, n_kv, hd)
    v[start + n_tok - 1, :, 5] = np.float16(np.inf).view(np.uint16)
    q = (rng.standard_normal((n_tok, n_head, hd)) * 4).astype(np.float32)
    scale = np.float32(0.125)
    batch = np.empty_like(q)
    attention(q, k, v, start, scale, batch)
    assert np.isfinite(batch[:-1]).all()
    for t in range(n_tok):
        alone = np.empty_like(q[t : t + 1])
        attention(q[t : t + 1], k, v, start + t, scale, alone)
        assert np.array_equal(alone[0].view(np.uint32), batch[t].view(np.uint32)), t


@pytest.mark.parametrize("pb", [1, 2, 3, 4])
def test_every_pair_block_gives_the_engine_orders_bits(pb):
    # a unit of pb (token, head) pairs of a run of tokens shares each key and value read;
    # whatever pb the thread count picks and however long the runs, every pair is summed as
    # it is alone
    rng = np.random.default_rng(pb)
    for hd, n_head, n_kv, n_tok, start in ((64, 9, 3, 6, 70), (128, 8, 2, 3, 129), (64, 9, 3, 17, 40)):
        k, v = _caches(rng, start + n_tok, n_kv, hd)
        q = (rng.standard_normal((n_tok, n_head, hd)) * 4).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(hd))
        want = np.empty_like(q)
        _attention_scalar(q, k, v, start, scale, want, ENGINE_SUMS)
        for n_runs in sorted({1, 2, n_tok, len(token_runs(n_tok))}):
            got = np.empty_like(q)
            _attention_tiles(q, k.reshape(-1), v.reshape(-1), n_kv, start, scale, got.reshape(-1), pb, n_runs)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (hd, n_head, n_kv, n_tok, start, n_runs)


def test_llama_cpp_order_reads_the_same_tiles():
    # llama.cpp's arithmetic (half-rounded queries and weights, its two dot-product orders)
    # lands within half precision of the engine's order: the tiles are read at the same positions
    rng = np.random.default_rng(4)
    hd, n_head, n_kv, n_tok, start = 64, 9, 3, 5, 60
    k, v = _caches(rng, start + n_tok, n_kv, hd)
    q = rng.standard_normal((n_tok, n_head, hd)).astype(np.float32)
    scale = np.float32(0.125)
    engine, one, batch, routed = (np.empty_like(q) for _ in range(4))
    attention(q, k, v, start, scale, engine)
    _attention_scalar(q, k, v, start, scale, one, LLAMA_ONE_TOKEN_SUMS)
    _attention_scalar(q, k, v, start, scale, batch, LLAMA_BATCH_SUMS)
    for other in (one, batch):
        assert np.abs(other - engine).max() <= 1e-2 * np.abs(engine).max()
        assert not np.array_equal(other, engine)
    with summation_order(LLAMA_CPP):
        attention(q, k, v, start, scale, routed)  # a batch: tinyBLAS's order
    assert np.array_equal(routed.view(np.uint32), batch.view(np.uint32))


def test_tokens_are_cut_into_the_fewest_runs_of_equal_length():
    # a verification step of 17 tokens (16 guessed): runs of 9 and 8, not 16 and 1 (which
    # left one of two threads with a single token's work)
    assert token_runs(17) == [8, 9] and token_runs(16) == [16] and token_runs(1) == [1]
    for n_tok in range(1, 200):
        runs = token_runs(n_tok)
        assert sum(runs) == n_tok and len(runs) == -(-n_tok // UNIT_TOKENS), n_tok
        assert max(runs) <= UNIT_TOKENS and max(runs) - min(runs) <= 1, n_tok


def test_pair_blocks_share_reads_where_the_threads_stay_busy():
    assert pair_block(1, 3, 3, 2) == 2  # SmolLM2, one token: six units of [2, 1] pairs
    assert pair_block(8, 3, 3, 2) == 4  # eight tokens: every unit four pairs
    assert pair_block(1, 1, 32, 2) == 1  # a 7B, one token: a pair per head


@njit
def _exp16(x, out):
    for i in range(0, x.size, 16):
        vstore(out, i, ggml_expf16(vload(x, i)))


@njit
def _exp1(x, out):
    for i in range(x.size):
        out[i] = ggml_expf(x[i])


def test_vector_exp_is_ggml_expf_in_every_lane_and_at_the_edges():
    rng = np.random.default_rng(5)
    edges = [0.0, -0.0, np.nan, np.inf, -np.inf, -150.0, -200.0, 100.0, 200.0, 88.7, 89.0, -87.0, -103.0, -104.0, 1e-30, -1e-30]
    x = np.concatenate([(rng.standard_normal(4096) * 40), edges]).astype(np.float32)
    got, want = np.empty_like(x), np.empty_like(x)
    _exp16(x, got)
    _exp1(x, want)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_vector_swiglu_is_ggml_swiglu_bit_for_bit():
    rng = np.random.default_rng(6)
    for n_tok, n in ((1, 1536), (3, 1000), (2, 7)):  # whole vectors, a tail, only a tail
        g = (rng.standard_normal((n_tok, n)) * 12).astype(np.float32)
        u = rng.standard_normal((n_tok, n)).astype(np.float32)
        want = np.empty_like(g)
        _swiglu(g, u, want)
        assert np.array_equal(swiglu(g, u).view(np.uint32), want.view(np.uint32))

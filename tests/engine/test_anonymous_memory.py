"""engine.memory.anonymous_zeros: the KV cache's memory (huge pages asked for) behaves as
np.zeros: zeroed, writable, its own, and freed with the array."""

from __future__ import annotations

import gc
import weakref

import numpy as np

from codeup_tui.engine.llama import KVCache
from codeup_tui.engine.memory import anonymous_zeros


def test_anonymous_zeros_are_writable_zeros_of_their_own():
    a = anonymous_zeros((3, 5, 7), np.uint16)
    b = anonymous_zeros((3, 5, 7), np.uint16)
    assert a.shape == (3, 5, 7) and a.dtype == np.uint16 and a.flags.c_contiguous and a.flags.writeable
    assert not a.any()
    a[1, 2] = 0x3C00
    assert a[1, 2, 6] == 0x3C00 and not b.any()  # separate memory
    assert anonymous_zeros((0, 4), np.float32).shape == (0, 4)


def test_the_kv_cache_memory_is_released_with_the_cache():
    class Hp:
        n_layer, n_head_kv, head_dim = 2, 3, 64

    cache = KVCache(Hp, 128)
    assert cache.k.shape == (2, 8, 3, 64, 16) and cache.v.shape == (2, 128, 3, 64)  # keys in tiles of 16 positions
    assert not cache.k.any() and not cache.v.any()
    buffer = weakref.ref(cache.k.base.obj if hasattr(cache.k.base, "obj") else cache.k.base)
    del cache
    gc.collect()
    assert buffer() is None

"""Q4_K matrices held turned, sixteen rows a block, as the copy into memory leaves them
(kquant_products.turn_rows16): every product, lookup and row read gives what the matrix in
ggml's order gives, bit for bit, whatever the batch."""

from __future__ import annotations

import numpy as np
import pytest

from codeup_tui.engine.errors import UsageError
from codeup_tui.engine.ggml_types import GGMLType
from codeup_tui.engine.quants import QuantMatrix, dequantize_rows, matmul, matmul_rounded, rounded_activations
from codeup_tui.engine.quants.kquant_products import TAGS, can_turn, turn_rows16
from tests.helpers.quant_matrices import random_matrix


def _random_q4_k(n_out: int, n_in: int, seed: int = 0) -> QuantMatrix:
    return random_matrix(GGMLType.Q4_K, n_out, n_in, np.random.default_rng(seed))


def _turned_copy(w: QuantMatrix) -> QuantMatrix:
    data = np.array(w.data).reshape(-1)
    turn_rows16(TAGS[int(w.ggml_type)], data, data.view(np.uint16), data.view(np.int32), w.n_out, w.n_in)
    data.flags.writeable = False
    q = QuantMatrix(w.ggml_type, w.n_in, w.n_out, w.data)
    q.move_to(data.reshape(w.data.shape), turned=True)
    return q


@pytest.mark.parametrize("n_out, n_in", [(48, 1024), (16, 256), (160, 512)])
def test_a_turned_matrix_gives_the_same_products_for_any_batch(n_out, n_in):
    w = _random_q4_k(n_out, n_in)
    turned = _turned_copy(w)
    assert turned.turned and not w.turned
    assert not np.array_equal(turned.data, w.data)  # really laid out differently
    rng = np.random.default_rng(1)
    for n_tok in (1, 2, 3, 4, 5, 8, 13):
        x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
        parts = rounded_activations("q8_k", x)
        np.testing.assert_array_equal(matmul_rounded(turned, parts, n_tok), matmul_rounded(w, parts, n_tok))
    np.testing.assert_array_equal(matmul(turned, x), matmul(w, x))  # the float product reads rows


def test_a_turned_matrix_reads_back_its_ggml_rows():
    w = _random_q4_k(64, 512, seed=3)
    turned = _turned_copy(w)
    np.testing.assert_array_equal(turned.ggml_data, w.data)
    rows = [0, 15, 16, 33, 63]
    np.testing.assert_array_equal(dequantize_rows(turned, rows), dequantize_rows(w, rows))


def test_only_q4_k_in_groups_of_sixteen_rows_is_held_turned():
    assert can_turn(GGMLType.Q4_K, 32) and not can_turn(GGMLType.Q4_K, 40) and not can_turn(GGMLType.Q5_K, 32)
    odd = _random_q4_k(40, 256)
    with pytest.raises(UsageError, match="cannot be held turned"):
        odd.move_to(np.array(odd.data), turned=True)
    w = _random_q4_k(32, 256)
    w.move_to(np.array(w.data))  # a plain move keeps ggml's order
    assert not w.turned

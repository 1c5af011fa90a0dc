"""Q4_K, Q4_0, Q4_1 and Q8_0 matrices held turned, sixteen rows a block, as the copy into
memory leaves them (quants.turn_in_place): every product, lookup and row read gives what the
matrix in ggml's order gives, bit for bit, whatever the batch."""

from __future__ import annotations

import numpy as np
import pytest

from codeup_tui.engine.errors import UsageError
from codeup_tui.engine.ggml_types import GGMLType
from codeup_tui.engine.quants import (
    QuantMatrix, activation_kind, can_turn, dequantize_rows, matmul, matmul_rounded, rounded_activations, turn_in_place,
)
from codeup_tui.engine.summation_order import ORDERS, summation_order
from tests.helpers.quant_matrices import random_matrix


def _random(t: GGMLType, n_out: int, n_in: int, seed: int = 0) -> QuantMatrix:
    return random_matrix(t, n_out, n_in, np.random.default_rng(seed))


def _turned_copy(w: QuantMatrix) -> QuantMatrix:
    data = np.array(w.data).reshape(-1)
    turn_in_place(w.ggml_type, data, w.n_out, w.n_in)
    data.flags.writeable = False
    q = QuantMatrix(w.ggml_type, w.n_in, w.n_out, w.data)
    q.move_to(data.reshape(w.data.shape), turned=True)
    return q


@pytest.mark.parametrize("t, n_out, n_in", [(GGMLType.Q4_K, 48, 1024), (GGMLType.Q4_K, 16, 256), (GGMLType.Q4_K, 160, 512),
                                            (GGMLType.Q4_1, 48, 576), (GGMLType.Q4_1, 16, 32), (GGMLType.Q4_1, 192, 1536),
                                            (GGMLType.Q4_0, 48, 576), (GGMLType.Q4_0, 16, 32), (GGMLType.Q8_0, 48, 576),
                                            (GGMLType.Q8_0, 16, 32), (GGMLType.Q8_0, 192, 1536)])
def test_a_turned_matrix_gives_the_same_products_for_any_batch(t, n_out, n_in):
    w = _random(t, n_out, n_in)
    turned = _turned_copy(w)
    assert turned.turned and not w.turned
    assert not np.array_equal(turned.data, w.data)  # really laid out differently
    rng = np.random.default_rng(1)
    for order in ORDERS:  # in each summation order, turned or not, the same bits
        for n_tok in (1, 2, 3, 4, 5, 8, 13):
            x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
            parts = rounded_activations(activation_kind(t), x)
            with summation_order(order):
                np.testing.assert_array_equal(matmul_rounded(turned, parts, n_tok), matmul_rounded(w, parts, n_tok))
    np.testing.assert_array_equal(matmul(turned, x), matmul(w, x))  # the float product reads rows


@pytest.mark.parametrize("t", [GGMLType.Q4_K, GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q8_0])
def test_a_turned_matrix_reads_back_its_ggml_rows(t):
    w = _random(t, 64, 512, seed=3)
    turned = _turned_copy(w)
    np.testing.assert_array_equal(turned.ggml_data, w.data)
    rows = [0, 15, 16, 33, 63]
    np.testing.assert_array_equal(dequantize_rows(turned, rows), dequantize_rows(w, rows))


def test_only_q4_k_q4_0_q4_1_and_q8_0_in_groups_of_sixteen_rows_are_held_turned():
    assert can_turn(GGMLType.Q4_K, 32) and not can_turn(GGMLType.Q4_K, 40) and not can_turn(GGMLType.Q5_K, 32)
    assert can_turn(GGMLType.Q4_1, 16) and not can_turn(GGMLType.Q4_1, 8) and can_turn(GGMLType.Q4_0, 16)
    assert can_turn(GGMLType.Q8_0, 32) and not can_turn(GGMLType.Q8_0, 40) and not can_turn(GGMLType.Q5_0, 16)
    odd = _random(GGMLType.Q4_K, 40, 256)
    with pytest.raises(UsageError, match="cannot be held turned"):
        odd.move_to(np.array(odd.data), turned=True)
    w = _random(GGMLType.Q4_K, 32, 256)
    w.move_to(np.array(w.data))  # a plain move keeps ggml's order
    assert not w.turned

"""The Llama forward pass, top to bottom.

Weights stay packed in the mapped file (QuantMatrix); activations are float32. One code
path evaluates a batch of prompt tokens and a single generated token alike: `forward`
takes n ≥ 1 tokens at positions start_pos.., writes their keys and values into the cache
and returns logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attention import attention
from .errors import ModelFileError
from .formats import LlamaHParams, ModelFile
from .quants import (
    HAS_Q8_0_KERNEL,
    HAS_Q8_1_KERNEL,
    HAS_Q8_K_KERNEL,
    SUPPORTED_TYPES,
    QuantMatrix,
    dequantize,
    dequantize_rows,
    matmul,
    matmul_q8_0,
    matmul_q8_1,
    matmul_q8_k,
)
from .ggml_math import swiglu
from .lora import LoraProjection
from .quants.activations import quantize_activations, quantize_q8_0, quantize_q8_1, quantize_q8_k
from .rope import apply_rope, rope_angles

SUPPORTED_ARCHITECTURES = frozenset({"llama"})


@dataclass(frozen=True)
class LayerWeights:
    attn_norm: np.ndarray  # (n_embd,) float32
    wq: QuantMatrix  # n_embd -> n_head * head_dim
    wk: QuantMatrix  # n_embd -> n_head_kv * head_dim
    wv: QuantMatrix  # n_embd -> n_head_kv * head_dim
    wo: QuantMatrix  # n_head * head_dim -> n_embd
    ffn_norm: np.ndarray  # (n_embd,) float32
    w_gate: QuantMatrix  # n_embd -> n_ff
    w_up: QuantMatrix  # n_embd -> n_ff
    w_down: QuantMatrix  # n_ff -> n_embd


class KVCache:
    """Keys and values of every evaluated position: (n_layer, n_ctx, n_head_kv, head_dim).

    Half precision, as llama.cpp's F16 cache (the attention must see the same rounded keys
    and values), held as the halves' uint16 bits because numba has no float16: a 13B model
    at n_ctx 4096 needs 3.4 GB, not the 6.7 GB of float32.
    """

    def __init__(self, hp: LlamaHParams, n_ctx: int) -> None:
        shape = (hp.n_layer, n_ctx, hp.n_head_kv, hp.head_dim)
        self.k = np.zeros(shape, dtype=np.uint16)
        self.v = np.zeros(shape, dtype=np.uint16)
        self.n_ctx = n_ctx
        self.n_past = 0  # positions 0..n_past-1 are filled


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """ggml_rms_norm then the weight: squares in float32 summed in double, the mean rounded
    to float32, scale = 1.0f / sqrtf(mean + eps) in float32."""
    sq = np.square(x).astype(np.float64)
    mean = (sq.sum(axis=-1, keepdims=True) / x.shape[-1]).astype(np.float32)
    scale = np.float32(1.0) / np.sqrt(mean + np.float32(eps))
    return (x * scale) * weight


def to_f16_bits(x: np.ndarray) -> np.ndarray:
    """Rounded to half precision (nearest even), as the halves' uint16 bits."""
    return x.astype(np.float16).view(np.uint16)


def from_f16_bits(bits: np.ndarray) -> np.ndarray:
    return bits.view(np.float16).astype(np.float32)


class LlamaWeights:
    """Every tensor the forward pass needs, checked for presence, shape and type at load."""

    def __init__(self, mf: ModelFile) -> None:
        hp = mf.hparams
        path = str(mf.path)
        if hp is None or mf.architecture not in SUPPORTED_ARCHITECTURES:
            raise ModelFileError(
                path, f"architecture {mf.architecture!r} is not supported (supported: {', '.join(sorted(SUPPORTED_ARCHITECTURES))})"
            )
        if hp.n_rot != hp.head_dim:
            raise ModelFileError(path, f"rope dimension {hp.n_rot} differs from the head size {hp.head_dim}, which llama does not allow")
        self.hp = hp
        self.mf = mf
        q_width, kv_width = hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim
        self.token_embd = self._matrix("token_embd.weight", hp.n_embd, hp.n_vocab)
        self.output_norm = self._vector("output_norm.weight", hp.n_embd)
        # Tied embeddings: no output.weight means the embedding matrix projects to logits.
        out_name = "output.weight" if "output.weight" in mf.tensors else "token_embd.weight"
        self.output = self._matrix(out_name, hp.n_embd, hp.n_vocab)
        self.rope_freqs = (
            self._vector("rope_freqs.weight", hp.n_rot // 2) if "rope_freqs.weight" in mf.tensors else None
        )
        self.layers = []
        for i in range(hp.n_layer):
            b = f"blk.{i}."
            self.layers.append(
                LayerWeights(
                    attn_norm=self._vector(b + "attn_norm.weight", hp.n_embd),
                    wq=self._matrix(b + "attn_q.weight", hp.n_embd, q_width),
                    wk=self._matrix(b + "attn_k.weight", hp.n_embd, kv_width),
                    wv=self._matrix(b + "attn_v.weight", hp.n_embd, kv_width),
                    wo=self._matrix(b + "attn_output.weight", q_width, hp.n_embd),
                    ffn_norm=self._vector(b + "ffn_norm.weight", hp.n_embd),
                    w_gate=self._matrix(b + "ffn_gate.weight", hp.n_embd, hp.n_ff),
                    w_up=self._matrix(b + "ffn_up.weight", hp.n_embd, hp.n_ff),
                    w_down=self._matrix(b + "ffn_down.weight", hp.n_ff, hp.n_embd),
                )
            )

    def _tensor(self, name: str, shape: tuple[int, ...]):
        t = self.mf.tensors.get(name)
        if t is None:
            raise ModelFileError(self.mf.path, f"missing tensor {name}")
        if t.shape != shape:
            raise ModelFileError(self.mf.path, f"tensor {name} has shape {list(t.shape)}, expected {list(shape)}")
        if t.ggml_type not in SUPPORTED_TYPES:
            raise ModelFileError(self.mf.path, f"tensor {name} has type {t.ggml_type.name}, which this engine cannot compute with yet")
        return t

    def _matrix(self, name: str, n_in: int, n_out: int) -> QuantMatrix:
        self._tensor(name, (n_in, n_out))
        return QuantMatrix.from_model_file(self.mf, name)

    def _vector(self, name: str, n: int) -> np.ndarray:
        t = self._tensor(name, (n,))
        return dequantize(self.mf.tensor_bytes_view(name), t.ggml_type, n)


def _activation_kind(ggml_type) -> str:
    """How x is rounded for a weight type's dot products (quants/activations.py)."""
    if ggml_type in HAS_Q8_1_KERNEL:
        return "q8_1"  # llama.cpp's exact arithmetic
    if ggml_type in HAS_Q8_K_KERNEL:
        return "q8_k"  # 8-bit integer dot products
    if ggml_type in HAS_Q8_0_KERNEL:
        return "q8_0"
    return "float"


def project(w: QuantMatrix, x: np.ndarray) -> np.ndarray:
    """W·x with x rounded as llama.cpp rounds it for this weight type."""
    return project_many((w,), x)[0]


def project_many(ws: tuple[QuantMatrix, ...], x: np.ndarray) -> list[np.ndarray]:
    """W·x for each W of `ws`, rounding x once per kind of activation they take (Q, K and V
    share one rounding of their input, gate and up another)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rounded: dict[str, tuple] = {}
    out = []
    for w in ws:
        lora, w = (w, w.base) if isinstance(w, LoraProjection) else (None, w)
        kind = _activation_kind(w.ggml_type)
        parts = rounded.get(kind)
        if parts is None:
            if kind == "q8_1":
                parts = quantize_q8_1(x, values=np.int8)
            elif kind == "q8_k":
                parts = quantize_q8_k(x)
            elif kind == "q8_0":
                parts = quantize_q8_0(x)
            else:
                parts = None
            rounded[kind] = parts
        if kind == "q8_1":
            out.append(matmul_q8_1(w, *parts))
        elif kind == "q8_k":
            out.append(matmul_q8_k(w, *parts))
        elif kind == "q8_0":
            out.append(matmul_q8_0(w, *parts))
        else:  # float kernels on activations rounded per type (types differ in rounding)
            xq, sums = quantize_activations(x, w.ggml_type)
            out.append(matmul(w, xq, x_sums=sums))
        if lora is not None:  # LoRA adapters: + scale·B·(A·x) on the unrounded x
            out[-1] = lora.add_delta(out[-1], x)
    return out


def forward(w: LlamaWeights, cache: KVCache, tokens: np.ndarray, start_pos: int, all_logits: bool) -> np.ndarray:
    """Evaluate `tokens` at positions start_pos.. and return logits (n or 1, n_vocab)."""
    hp = w.hp
    n = len(tokens)
    hd = hp.head_dim
    positions = np.arange(start_pos, start_pos + n)
    cos, sin = rope_angles(positions, hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale, w.rope_freqs)
    scale = np.float32(1.0 / np.sqrt(hd))
    x = dequantize_rows(w.token_embd, tokens)  # (n, n_embd)
    attn_out = np.empty((n, hp.n_head, hd), dtype=np.float32)
    for layer, L in enumerate(w.layers):
        # attention
        h = rms_norm(x, L.attn_norm, hp.rms_eps)
        q, k, v = project_many((L.wq, L.wk, L.wv), h)
        q = q.reshape(n, hp.n_head, hd)
        k = k.reshape(n, hp.n_head_kv, hd)
        v = v.reshape(n, hp.n_head_kv, hd)
        apply_rope(q, cos, sin, hp.n_rot)
        apply_rope(k, cos, sin, hp.n_rot)
        cache.k[layer, start_pos : start_pos + n] = to_f16_bits(k)
        cache.v[layer, start_pos : start_pos + n] = to_f16_bits(v)
        attention(q, cache.k[layer], cache.v[layer], start_pos, scale, attn_out)
        x = x + project(L.wo, attn_out.reshape(n, hp.n_head * hd))
        # feed-forward (SwiGLU)
        m = rms_norm(x, L.ffn_norm, hp.rms_eps)
        gate, up = project_many((L.w_gate, L.w_up), m)
        x = x + project(L.w_down, swiglu(gate, up))
    cache.n_past = start_pos + n
    if not all_logits:
        x = x[-1:]
    x = rms_norm(x, w.output_norm, hp.rms_eps)
    return project(w.output, np.ascontiguousarray(x))


def shift_kv_cache(hp: LlamaHParams, cache: KVCache, n_keep: int, n_discard: int, rope_freqs) -> None:
    """Drop cached positions [n_keep, n_keep + n_discard) and move the later ones down.

    Keys were stored already rotated for their old position p; rotating them by
    -n_discard more gives exactly the rotation of their new position p - n_discard.
    """
    n_past = cache.n_past
    src = slice(n_keep + n_discard, n_past)
    dst = slice(n_keep, n_past - n_discard)
    cos, sin = rope_angles(np.full(1, -n_discard), hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale, rope_freqs)
    for layer in range(hp.n_layer):
        k = from_f16_bits(cache.k[layer, src])
        apply_rope(k, np.broadcast_to(cos, (len(k), cos.shape[1])), np.broadcast_to(sin, (len(k), sin.shape[1])), hp.n_rot)
        cache.k[layer, dst] = to_f16_bits(k)  # llama.cpp re-rotates its half-precision cache in place
        cache.v[layer, dst] = cache.v[layer, src].copy()
    cache.n_past = n_past - n_discard

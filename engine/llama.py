"""The Llama forward pass, top to bottom, and its relatives (qwen2, qwen3, qwen3moe).

Weights stay packed in the mapped file (QuantMatrix); activations are float32. One code
path evaluates a batch of prompt tokens and a single generated token alike: `forward`
takes n ≥ 1 tokens at positions start_pos.., writes their keys and values into the cache
and returns logits.

What differs between architectures is data (ARCHITECTURES: which optional tensors a layer
has, the rope style, a dense or mixture-of-experts feed-forward); `forward` applies what
the loaded weights hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numba import njit, prange

from .attention import attention, key_cache_shape, keys_at, store_keys
from .errors import ModelFileError, UsageError
from .formats import LlamaHParams, ModelFile
from .quants import (
    SUPPORTED_TYPES,
    QuantMatrix,
    activation_kind,
    dequantize,
    dequantize_rows,
    matmul,
    matmul_rounded,
    rounded_activations,
)
from .ggml_vector_math import swiglu
from .lora import LoraProjection
from .memory import anonymous_zeros
from .quants.activations import quantize_activations
from .rope import ROPE_KERNELS, apply_rope, rope_angles
from .threads import by_rows


@dataclass(frozen=True)
class ArchTraits:
    """What an architecture computes differently from llama, as llama.cpp builds its graph."""

    qkv_bias: bool  # attn_{q,k,v}.bias added to the projections (qwen2)
    rope_style: str  # "normal" (adjacent pairs) or "neox" (the two halves): rope.ROPE_KERNELS
    qk_norm: bool  # RMS norm of each head's query and key before RoPE (qwen3)
    moe: bool  # feed-forward is a mixture of experts: router ffn_gate_inp, ffn_*_exps


ARCHITECTURES: dict[str, ArchTraits] = {
    "llama": ArchTraits(qkv_bias=False, rope_style="normal", qk_norm=False, moe=False),
    "qwen2": ArchTraits(qkv_bias=True, rope_style="neox", qk_norm=False, moe=False),
    "qwen3": ArchTraits(qkv_bias=False, rope_style="neox", qk_norm=True, moe=False),
    "qwen3moe": ArchTraits(qkv_bias=False, rope_style="neox", qk_norm=True, moe=True),
}

SUPPORTED_ARCHITECTURES = frozenset(ARCHITECTURES)


@dataclass(frozen=True)
class MoEWeights:
    """A mixture-of-experts feed-forward: the router and each expert's three matrices, the
    experts being zero-copy slices of the 3-D ffn_{gate,up,down}_exps tensors."""

    router: QuantMatrix  # n_embd -> n_expert
    gate: tuple[QuantMatrix, ...]  # per expert, n_embd -> n_ff_exp
    up: tuple[QuantMatrix, ...]  # per expert, n_embd -> n_ff_exp
    down: tuple[QuantMatrix, ...]  # per expert, n_ff_exp -> n_embd
    n_used: int  # experts per token


@dataclass(frozen=True)
class LayerWeights:
    attn_norm: np.ndarray  # (n_embd,) float32
    wq: QuantMatrix  # n_embd -> n_head * head_dim
    wk: QuantMatrix  # n_embd -> n_head_kv * head_dim
    wv: QuantMatrix  # n_embd -> n_head_kv * head_dim
    wo: QuantMatrix  # n_head * head_dim -> n_embd
    ffn_norm: np.ndarray  # (n_embd,) float32
    w_gate: QuantMatrix | None  # n_embd -> n_ff (None with experts)
    w_up: QuantMatrix | None  # n_embd -> n_ff
    w_down: QuantMatrix | None  # n_ff -> n_embd
    # what only some architectures have (ArchTraits), else None
    bq: np.ndarray | None = None  # (n_head * head_dim,) float32
    bk: np.ndarray | None = None  # (n_head_kv * head_dim,)
    bv: np.ndarray | None = None
    q_norm: np.ndarray | None = None  # (head_dim,) float32
    k_norm: np.ndarray | None = None
    moe: MoEWeights | None = None


class KVCache:
    """Keys and values of every evaluated position: values (n_layer, n_ctx, n_head_kv,
    head_dim), keys in tiles of sixteen positions (n_layer, n_tiles, n_head_kv, head_dim, 16),
    the layout attention reads (attention.py: store_keys, keys_at).

    Half precision, as llama.cpp's F16 cache, held as the halves' uint16 bits because numba
    has no float16: a 13B model at n_ctx 4096 needs 3.4 GB, not the 6.7 GB of float32.
    """

    def __init__(self, hp: LlamaHParams, n_ctx: int) -> None:
        # huge pages: a head's rows and tiles are strided
        self.k = anonymous_zeros(key_cache_shape(hp.n_layer, n_ctx, hp.n_head_kv, hp.head_dim), np.uint16)
        self.v = anonymous_zeros((hp.n_layer, n_ctx, hp.n_head_kv, hp.head_dim), np.uint16)
        self.n_ctx = n_ctx
        self.n_past = 0  # positions 0..n_past-1 are filled


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """ggml_rms_norm then the weight, over the last axis: each row's squares in float32
    summed in double in order (ggml's loop), the mean rounded to float32,
    scale = 1.0f / sqrtf(mean + eps) in float32, then (x * scale) * weight."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    n = x.shape[-1]
    rows = x.reshape(-1, n)
    by_rows(len(rows), _rms_norm_rows, _rms_norm_rows_batch)(rows, weight, np.float32(eps), out.reshape(-1, n))
    return out


@njit(inline="always", fastmath=False, error_model="numpy", boundscheck=False)
def _rms_norm_row(x, weight, eps, out, r):
    n = x.shape[1]
    total = 0.0  # float64, as ggml_float
    for i in range(n):
        total += np.float64(x[r, i] * x[r, i])
    mean = np.float32(total / n)
    scale = np.float32(1.0) / np.sqrt(mean + eps)
    for i in range(n):
        out[r, i] = (x[r, i] * scale) * weight[i]


@njit(cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _rms_norm_rows(x, weight, eps, out):
    for r in range(x.shape[0]):
        _rms_norm_row(x, weight, eps, out, r)


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _rms_norm_rows_batch(x, weight, eps, out):
    """A batch's rows over the threads, each row by itself: the same bits as one at a time."""
    for r in prange(x.shape[0]):
        _rms_norm_row(x, weight, eps, out, r)


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
        value_length = mf.metadata.get(f"{hp.architecture}.attention.value_length", hp.head_dim)
        if value_length != hp.head_dim:
            raise ModelFileError(path, f"value head size {value_length} differs from the key head size {hp.head_dim}, which is not supported")
        traits = ARCHITECTURES[mf.architecture]
        if traits.moe and not hp.n_expert:
            raise ModelFileError(path, f"{mf.architecture} needs {mf.architecture}.expert_count and expert_used_count in its metadata")
        self.hp = hp
        self.mf = mf
        self.traits = traits
        self.resident = None  # a resident_weights.ResidentCopy while the matrices are read into memory
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
            optional = {}
            if traits.qkv_bias:
                optional.update(
                    bq=self._vector(b + "attn_q.bias", q_width),
                    bk=self._vector(b + "attn_k.bias", kv_width),
                    bv=self._vector(b + "attn_v.bias", kv_width),
                )
            if traits.qk_norm:
                optional.update(
                    q_norm=self._vector(b + "attn_q_norm.weight", hp.head_dim),
                    k_norm=self._vector(b + "attn_k_norm.weight", hp.head_dim),
                )
            if traits.moe:
                optional["moe"] = self._experts(b)
                dense = dict(w_gate=None, w_up=None, w_down=None)
            else:
                dense = dict(
                    w_gate=self._matrix(b + "ffn_gate.weight", hp.n_embd, hp.n_ff),
                    w_up=self._matrix(b + "ffn_up.weight", hp.n_embd, hp.n_ff),
                    w_down=self._matrix(b + "ffn_down.weight", hp.n_ff, hp.n_embd),
                )
            self.layers.append(
                LayerWeights(
                    attn_norm=self._vector(b + "attn_norm.weight", hp.n_embd),
                    wq=self._matrix(b + "attn_q.weight", hp.n_embd, q_width),
                    wk=self._matrix(b + "attn_k.weight", hp.n_embd, kv_width),
                    wv=self._matrix(b + "attn_v.weight", hp.n_embd, kv_width),
                    wo=self._matrix(b + "attn_output.weight", q_width, hp.n_embd),
                    ffn_norm=self._vector(b + "ffn_norm.weight", hp.n_embd),
                    **dense,
                    **optional,
                )
            )

    # ---- the matrices read into memory behind the first answer (resident_weights.py) ----
    def resident_groups(self) -> list[list[QuantMatrix]]:
        """The matrices a forward pass streams, layer by layer, then the output: in the
        order it needs them (a tied token embedding is looked up in the file, a few rows)."""
        groups = []
        for L in self.layers:
            mats = [L.wq, L.wk, L.wv, L.wo, L.w_gate, L.w_up, L.w_down]
            if L.moe is not None:
                mats += [L.moe.router, *L.moe.gate, *L.moe.up, *L.moe.down]
            groups.append([m.base if isinstance(m, LoraProjection) else m for m in mats if m is not None])
        groups.append([self.output])
        return groups

    def wait_resident(self, group: int) -> None:
        """Until group `group` of resident_groups() is read into memory, when it is being read."""
        if self.resident is not None:
            self.resident.wait(group)

    def _experts(self, prefix: str) -> MoEWeights:
        """The router and the experts of one layer, each expert a view of its rows."""
        hp = self.hp
        n_ff_exp = hp.n_ff_exp
        if not n_ff_exp:  # older files: the width from the tensor
            t = self.mf.tensors.get(prefix + "ffn_gate_exps.weight")
            n_ff_exp = int(t.shape[1]) if t is not None and len(t.shape) == 3 else 0
        gate = self._expert_slices(prefix + "ffn_gate_exps.weight", hp.n_embd, n_ff_exp)
        up = self._expert_slices(prefix + "ffn_up_exps.weight", hp.n_embd, n_ff_exp)
        down = self._expert_slices(prefix + "ffn_down_exps.weight", n_ff_exp, hp.n_embd)
        router = self._matrix(prefix + "ffn_gate_inp.weight", hp.n_embd, hp.n_expert)
        return MoEWeights(router=router, gate=gate, up=up, down=down, n_used=hp.n_expert_used)

    def _expert_slices(self, name: str, n_in: int, n_out: int) -> tuple[QuantMatrix, ...]:
        n_exp = self.hp.n_expert
        t = self.mf.tensors.get(name)
        if t is None:
            raise ModelFileError(self.mf.path, f"missing tensor {name}")
        if len(t.shape) == 3 and t.shape[:2] == (n_in, n_out) and t.shape[2] != n_exp:
            raise ModelFileError(
                self.mf.path,
                f"tensor {name} holds {t.shape[2]} experts, but {self.hp.architecture}.expert_count is {n_exp}",
            )
        if t.shape != (n_in, n_out, n_exp):
            raise ModelFileError(
                self.mf.path,
                f"tensor {name} has shape {list(t.shape)}, expected {[n_in, n_out, n_exp]} "
                f"({n_exp} experts of {n_in} x {n_out})",
            )
        self._tensor(name, (n_in, n_out, n_exp))
        experts = self.mf.tensor_view(name).reshape(n_exp, n_out, -1)
        try:
            return tuple(QuantMatrix(t.ggml_type, n_in, n_out, experts[e]) for e in range(n_exp))
        except UsageError as e:
            raise ModelFileError(self.mf.path, f"{name}: {e}") from None

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


def project(w: QuantMatrix, x: np.ndarray) -> np.ndarray:
    """W·x with x rounded as llama.cpp rounds it for this weight type."""
    return project_many((w,), x)[0]


def project_many(ws: tuple[QuantMatrix, ...], x: np.ndarray, rounded: dict[str, tuple] | None = None) -> list[np.ndarray]:
    """W·x for each W of `ws`, rounding x once per kind of activation they take (Q, K and V
    share one rounding of their input, gate and up another). `rounded`: roundings of this
    same x already made (filled in as it goes), for callers projecting one x in several calls."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_tok = x.shape[0]
    rounded = {} if rounded is None else rounded
    out = []
    for w in ws:
        lora, w = (w, w.base) if isinstance(w, LoraProjection) else (None, w)
        kind = activation_kind(w.ggml_type)
        if kind == "float":  # float kernels on activations rounded per type (types differ in rounding)
            xq, sums = quantize_activations(x, w.ggml_type)
            out.append(matmul(w, xq, x_sums=sums))
        else:
            parts = rounded.get(kind)
            if parts is None:
                parts = rounded[kind] = rounded_activations(kind, x)
            out.append(matmul_rounded(w, parts, n_tok))
        if lora is not None:  # LoRA adapters: + scale·B·(A·x) on the unrounded x
            out[-1] = lora.add_delta(out[-1], x)
    return out


@dataclass
class SequenceChunk:
    """Tokens of one sequence in a step, at positions start..start+len-1 of its cache."""

    cache: object  # a KVCache, or a slot's region of one (batching.SlotCache): k, v, n_past
    tokens: np.ndarray
    start: int
    want_logits: bool  # logits of its last token (a prompt's end, or a generated token)
    all_logits: bool = False  # logits of every token (a generated token and guessed ones)


def forward_many(w: LlamaWeights, chunks: Sequence[SequenceChunk]) -> list[np.ndarray | None]:
    """The forward pass, top to bottom, over one or several sequences: the rows of every
    chunk go through the projections together (each weight read once), attention runs per
    sequence over its own cache. Returns, per chunk, the logits (1, n_vocab) of its last token
    when it wants them (of all its tokens with all_logits), else None."""
    hp = w.hp
    hd = hp.head_dim
    sizes = [len(c.tokens) for c in chunks]
    ends = np.cumsum(sizes)
    bounds = [(int(e - s), int(e)) for s, e in zip(sizes, ends)]
    n = int(ends[-1])
    tokens = np.concatenate([np.asarray(c.tokens, dtype=np.int64) for c in chunks])
    positions = np.concatenate([np.arange(c.start, c.start + s) for c, s in zip(chunks, sizes)])
    cos, sin = rope_angles(positions, hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale, w.rope_freqs)
    scale = np.float32(1.0 / np.sqrt(hd))
    x = dequantize_rows(w.token_embd, tokens)
    attn_out = np.empty((n, hp.n_head, hd), dtype=np.float32)
    rotate = ROPE_KERNELS[w.traits.rope_style][0 if n > 1 else 1]  # apply_rope's kernel, checked once
    for layer, L in enumerate(w.layers):
        w.wait_resident(layer)  # its matrices read from the process's memory, not the mapped file
        h = rms_norm(x, L.attn_norm, hp.rms_eps)
        q, k, v = project_many((L.wq, L.wk, L.wv), h)
        if L.bq is not None:
            q, k, v = q + L.bq, k + L.bk, v + L.bv
        q = q.reshape(n, hp.n_head, hd)
        k = k.reshape(n, hp.n_head_kv, hd)
        v = v.reshape(n, hp.n_head_kv, hd)
        if L.q_norm is not None:
            q = rms_norm(q, L.q_norm, hp.rms_eps)
            k = rms_norm(k, L.k_norm, hp.rms_eps)
        rotate(q, cos, sin, hp.n_rot)
        rotate(k, cos, sin, hp.n_rot)
        for c, (a, b) in zip(chunks, bounds):
            cache_k, cache_v = c.cache.k[layer], c.cache.v[layer]
            store_keys(cache_k, c.start, to_f16_bits(k[a:b]))
            cache_v[c.start : c.start + b - a] = to_f16_bits(v[a:b])
            attention(q[a:b], cache_k, cache_v, c.start, scale, attn_out[a:b])
        del q, k, v, h  # a prompt's activations are tens of MB: the peak RSS counts each live one
        x = x + project(L.wo, attn_out.reshape(n, hp.n_head * hd))
        m = rms_norm(x, L.ffn_norm, hp.rms_eps)
        if L.moe is None:
            gate, up = project_many((L.w_gate, L.w_up), m)
            act = swiglu(gate, up)
            del gate, up, m
            x = x + project(L.w_down, act)
            del act
        else:
            x = x + moe_feed_forward(L.moe, m)
    for c, (_a, b) in zip(chunks, bounds):
        c.cache.n_past = c.start + len(c.tokens)
    picked = [list(range(a, b)) if c.all_logits else [b - 1] if c.want_logits else []
              for c, (a, b) in zip(chunks, bounds)]
    wanted = [row for rows in picked for row in rows]
    results: list[np.ndarray | None] = [None] * len(chunks)
    if wanted:
        w.wait_resident(len(w.layers))
        out = rms_norm(x[wanted], w.output_norm, hp.rms_eps)
        logits = project(w.output, np.ascontiguousarray(out))
        at = 0
        for i, rows in enumerate(picked):
            if rows:
                results[i] = logits[at : at + len(rows)]
                at += len(rows)
    return results


def forward(w: LlamaWeights, cache: KVCache, tokens: np.ndarray, start_pos: int, all_logits: bool) -> np.ndarray:
    """Evaluate `tokens` at positions start_pos.. and return logits (n or 1, n_vocab): the
    forward pass of one sequence."""
    chunk = SequenceChunk(cache, tokens, start_pos, want_logits=True, all_logits=all_logits)
    return forward_many(w, [chunk])[0]


def route(router: QuantMatrix, m: np.ndarray, n_used: int) -> tuple[np.ndarray, np.ndarray]:
    """The experts each token goes to and their weights, as llama.cpp's softmax gating: the
    router's logits softmaxed over all experts (float32 exps summed in double), the
    `n_used` most probable kept, best first, their probabilities renormalised to sum 1.
    Returns chosen (n, n_used) int64 and weights (n, n_used) float32."""
    logits = project(router, m)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e * (1.0 / e.sum(axis=1, dtype=np.float64, keepdims=True)).astype(np.float32)
    chosen = np.argsort(-probs, axis=1, kind="stable")[:, :n_used]
    weights = np.take_along_axis(probs, chosen, axis=1)
    total = weights.sum(axis=1, dtype=np.float64, keepdims=True).astype(np.float32)
    return chosen, weights / total


def moe_feed_forward(moe: MoEWeights, m: np.ndarray) -> np.ndarray:
    """Σ over each token's chosen experts of weight · down(swiglu(gate·m, up·m)).

    Only the chosen experts' matrices are read; the batch is grouped by expert, so each
    expert's rows are read once for all the tokens that chose it. The weighted outputs are
    added in the order of the choice (best first), as llama.cpp adds its expert views."""
    n = len(m)
    chosen, weights = route(moe.router, m, moe.n_used)
    outs = np.empty((n, moe.n_used, moe.down[0].n_out), dtype=np.float32)
    rounded: dict[str, tuple] | None = {} if n == 1 else None  # one token: m rounded once for all its experts
    for e in np.unique(chosen):
        tok, slot = np.nonzero(chosen == e)
        h = m[tok] if n > 1 else m
        gate, up = project_many((moe.gate[e], moe.up[e]), h, rounded)
        y = project(moe.down[e], swiglu(gate, up))
        outs[tok, slot] = y * weights[tok, slot][:, None]
    total = outs[:, 0]
    for slot in range(1, moe.n_used):
        total = total + outs[:, slot]
    return total


def shift_kv_cache(hp: LlamaHParams, cache: KVCache, n_keep: int, n_discard: int, rope_freqs) -> None:
    """Drop cached positions [n_keep, n_keep + n_discard) and move the later ones down.

    Keys were stored already rotated for their old position p; rotating them by
    -n_discard more gives exactly the rotation of their new position p - n_discard.
    """
    n_past = cache.n_past
    src = slice(n_keep + n_discard, n_past)
    dst = slice(n_keep, n_past - n_discard)
    cos, sin = rope_angles(np.full(1, -n_discard), hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale, rope_freqs)
    rope_style = ARCHITECTURES[hp.architecture].rope_style
    for layer in range(hp.n_layer):
        k = from_f16_bits(keys_at(cache.k[layer], src.start, src.stop))
        apply_rope(k, np.broadcast_to(cos, (len(k), cos.shape[1])), np.broadcast_to(sin, (len(k), sin.shape[1])), hp.n_rot, rope_style)
        store_keys(cache.k[layer], dst.start, to_f16_bits(k))  # llama.cpp re-rotates its half-precision cache in place
        cache.v[layer, dst] = cache.v[layer, src].copy()
    cache.n_past = n_past - n_discard

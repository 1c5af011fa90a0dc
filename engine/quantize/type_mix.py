"""llama.cpp's per-tensor type mix: which ggml type llama-quantize gives each tensor of a
file type (src/llama-quant.cpp, `llama_tensor_get_type`, no imatrix, default options).

    plan = plan_tensor_types([(name, shape), ...], "Q4_K_M", n_layer=32, n_head=32, n_head_kv=32)

Rules (llama.cpp's src/llama-quant.cpp, `llama_tensor_get_type`), for the file types codeup makes:
- Only tensors named "*weight" with at least 2 dimensions are quantized; norms, MoE router
  gates, position/type embeddings stay as they are.
- F32/F16/BF16 file types: every such tensor becomes that type; no other rule applies.
- output.weight (token_embd.weight when the model has no output.weight): Q8_0 when its
  rows do not fit the default type's blocks, else Q6_K (Q8_0 files keep Q8_0).
- attn_v: Q2_K -> Q4_K when n_head/n_head_kv >= 4, else Q3_K; Q3_K_M -> Q5_K for the
  first two, Q4_K after; Q3_K_L -> Q5_K; Q4_K_M/Q5_K_M -> Q6_K where use_more_bits;
  Q4_K_S -> Q5_K for the first four; Llama-2-70B (80 layers, GQA) lifts Q3_K/Q4_K to Q5_K;
  8-expert models use Q8_0.
- ffn_down: Q2_K -> Q3_K; Q3_K_M -> Q5_K below n_layer/16, else Q4_K; Q3_K_L -> Q5_K;
  Q4_K_M/Q5_K_M -> Q6_K where use_more_bits; Q4_K_S -> Q5_K below n_layer/8.
- attn_output: Q2_K -> Q3_K, Q3_K_M -> Q4_K, Q3_K_L -> Q5_K (8-expert models: Q5_K for
  most file types).
- A row length that does not fit the chosen type's blocks falls back: Q2_K/Q3_K -> Q4_0,
  Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when even that does not fit (rows
  not a multiple of 32).
"attn_v number i" and "ffn_down number i" count those tensors in the order llama-quantize
visits them (for a llama model: the layer index); the ffn_down count runs to n_layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import UsageError
from ..ggml_types import TYPE_TRAITS, GGMLType


@dataclass(frozen=True)
class FileType:
    name: str
    ftype: int  # llama_ftype, stored as general.file_type
    default: GGMLType


FILE_TYPES: dict[str, FileType] = {
    ft.name: ft
    for ft in (
        FileType("F32", 0, GGMLType.F32),
        FileType("F16", 1, GGMLType.F16),
        FileType("Q4_0", 2, GGMLType.Q4_0),
        FileType("Q4_1", 3, GGMLType.Q4_1),
        FileType("Q8_0", 7, GGMLType.Q8_0),
        FileType("Q5_0", 8, GGMLType.Q5_0),
        FileType("Q5_1", 9, GGMLType.Q5_1),
        FileType("Q2_K", 10, GGMLType.Q2_K),
        FileType("Q3_K_S", 11, GGMLType.Q3_K),
        FileType("Q3_K_M", 12, GGMLType.Q3_K),
        FileType("Q3_K_L", 13, GGMLType.Q3_K),
        FileType("Q4_K_S", 14, GGMLType.Q4_K),
        FileType("Q4_K_M", 15, GGMLType.Q4_K),
        FileType("Q5_K_S", 16, GGMLType.Q5_K),
        FileType("Q5_K_M", 17, GGMLType.Q5_K),
        FileType("Q6_K", 18, GGMLType.Q6_K),
        FileType("BF16", 32, GGMLType.BF16),
    )
}

UNQUANTIZED = frozenset({GGMLType.F32, GGMLType.F16, GGMLType.BF16})

# tensor_type_fallback: a row length that the type's blocks do not divide.
FALLBACK = {
    GGMLType.Q2_K: GGMLType.Q4_0,
    GGMLType.Q3_K: GGMLType.Q4_0,
    GGMLType.Q4_K: GGMLType.Q5_0,
    GGMLType.Q5_K: GGMLType.Q5_1,
    GGMLType.Q6_K: GGMLType.Q8_0,
}

# Name fragments llama.cpp never quantizes (tensor_allows_quantization): MoE router gates,
# small per-architecture tensors, positional/type embeddings, vision and audio parts.
_NEVER_QUANTIZED = (
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
    "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
    "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
    "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
    "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
    "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
    "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
    "mm.a.code_embd",
)
_NEVER_QUANTIZED_NAMES = frozenset({"position_embd.weight", "token_types.weight"})


def get_file_type(name: str) -> FileType:
    try:
        return FILE_TYPES[name.upper()]
    except KeyError:
        raise UsageError(f"unknown type {name!r} (known: {', '.join(FILE_TYPES)})") from None


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's `use_more_bits(i_layer, n_layers)`, in C integer arithmetic (C's % keeps
    the sign of the dividend, Python's does not: only i >= n/8 reaches it here)."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def n_dims(shape: Sequence[int]) -> int:
    """ggml_n_dims: dimensions up to the last one that is not 1."""
    n = len(shape)
    while n > 1 and shape[n - 1] == 1:
        n -= 1
    return n


def allows_quantization(name: str, shape: Sequence[int]) -> bool:
    """Whether llama-quantize may change this tensor's type at all."""
    if n_dims(shape) < 2 or not name.endswith("weight") or name in _NEVER_QUANTIZED_NAMES:
        return False
    return not any(part in name for part in _NEVER_QUANTIZED)


def _category(name: str) -> str:
    """tensor_get_category, in llama.cpp's order; fused QKV and MLA's kv_b count as attn_v."""
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for part, cat in (("attn_qkv.weight", "attn_v"), ("attn_kv_b.weight", "attn_v"), ("attn_v.weight", "attn_v"),
                      ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"), ("attn_output.weight", "attn_output"),
                      ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"), ("ffn_down", "ffn_down")):
        if part in name:
            return cat
    return "other"


def _layer_of(name: str, n_layer: int) -> int:
    parts = name.split(".")
    if len(parts) < 3 or parts[0] != "blk" or not parts[1].isdigit():
        raise UsageError(f"cannot tell the layer of tensor {name}")
    i = int(parts[1])
    if i >= n_layer:
        raise UsageError(f"tensor {name}: layer {i} is beyond the model's {n_layer} layers")
    return i


@dataclass
class _MixState:
    ft: FileType
    n_layer: int
    n_gqa: int  # n_head / n_head_kv
    n_expert: int
    is_70b: bool
    has_output: bool
    n_attn_v: int
    i_attn_v: int = 0
    i_ffn_down: int = 0


def _mixed_type(st: _MixState, name: str, shape: Sequence[int], t: GGMLType) -> GGMLType:
    """llama_tensor_get_type_impl for the k-quant and legacy file types."""
    k = st.ft.name
    cat = _category(name)
    if cat == "output" or (not st.has_output and cat == "token_embd"):
        if shape[0] % TYPE_TRAITS[t].block_size:
            return GGMLType.Q8_0
        return t if t == GGMLType.Q8_0 else GGMLType.Q6_K
    if cat == "token_embd":
        return t
    if cat == "attn_v":
        i = st.i_attn_v
        st.i_attn_v += 1
        if k == "Q2_K":
            t = GGMLType.Q4_K if st.n_gqa >= 4 else GGMLType.Q3_K
        elif k == "Q3_K_M":
            t = GGMLType.Q5_K if i < 2 else GGMLType.Q4_K
        elif k == "Q3_K_L":
            t = GGMLType.Q5_K
        elif k in ("Q4_K_M", "Q5_K_M") and use_more_bits(i, st.n_attn_v):
            t = GGMLType.Q6_K
        elif k == "Q4_K_S" and i < 4:
            t = GGMLType.Q5_K
        if st.is_70b and t in (GGMLType.Q3_K, GGMLType.Q4_K):
            t = GGMLType.Q5_K  # 8 query heads share each attn_v: more bits cost little
        if st.n_expert == 8:
            t = GGMLType.Q8_0
        return t
    if cat == "attn_k":
        return GGMLType.Q8_0 if st.n_expert == 8 else t
    if cat == "ffn_down":
        i, n = st.i_ffn_down, st.n_layer
        if st.n_expert > 1:  # experts are not stored layer by layer: the name says which
            i = _layer_of(name, n)
        st.i_ffn_down += 1
        if k == "Q2_K":
            return GGMLType.Q3_K
        if k == "Q3_K_M":
            return GGMLType.Q5_K if i < n // 16 else GGMLType.Q4_K
        if k == "Q3_K_L":
            return GGMLType.Q5_K
        if k in ("Q4_K_M", "Q5_K_M") and use_more_bits(i, n):
            return GGMLType.Q6_K
        if k == "Q4_K_S" and i < n // 8:
            return GGMLType.Q5_K
        return t
    if cat == "attn_output":
        if st.n_expert == 8:
            return GGMLType.Q5_K if k in ("Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_S", "Q4_K_M") else t
        return {"Q2_K": GGMLType.Q3_K, "Q3_K_M": GGMLType.Q4_K, "Q3_K_L": GGMLType.Q5_K}.get(k, t)
    return t


def _fallback(name: str, shape: Sequence[int], t: GGMLType) -> GGMLType:
    """tensor_type_fallback: a k-quant whose 256-value blocks do not divide the row takes
    its 32-value stand-in; F16 when even 32 does not divide it (the legacy types go
    straight to F16, as llama.cpp does)."""
    ncols = shape[0]
    if ncols % TYPE_TRAITS[t].block_size == 0:
        return t
    t = FALLBACK.get(t, t)
    if ncols % TYPE_TRAITS[t].block_size:
        t = GGMLType.F16
    return t


def plan_tensor_types(
    tensors: Iterable[tuple[str, Sequence[int], GGMLType]] | Iterable[tuple[str, Sequence[int]]],
    file_type: FileType | str,
    *,
    n_layer: int,
    n_head: int,
    n_head_kv: int,
    n_expert: int = 0,
    architecture: str = "llama",
) -> list[GGMLType]:
    """The type of each tensor, given (name, ggml shape[, current type]) in the order the
    tensors are quantized. A tensor that may not be quantized keeps its current type
    (F32 when none is given)."""
    ft = get_file_type(file_type) if isinstance(file_type, str) else file_type
    items = [(t[0], tuple(t[1]), t[2] if len(t) > 2 else GGMLType.F32) for t in tensors]
    names = {name for name, _, _ in items}
    st = _MixState(
        ft=ft, n_layer=n_layer, n_gqa=n_head // n_head_kv if n_head_kv else 1, n_expert=n_expert,
        is_70b=architecture == "llama" and n_layer == 80 and n_head != n_head_kv,
        has_output="output.weight" in names,
        n_attn_v=sum(1 for name, _, _ in items if _category(name) == "attn_v"),
    )
    out = []
    for name, shape, current in items:
        if not allows_quantization(name, shape):
            out.append(current)
            continue
        t = ft.default
        if t not in UNQUANTIZED:
            t = _fallback(name, shape, _mixed_type(st, name, shape, t))
        out.append(t)
    return out


def llama_tensor_type(
    name: str, ftype: FileType | str, shape: tuple[int, ...], *, n_layer: int, n_head: int,
    n_head_kv: int, has_output: bool = True,
) -> GGMLType:
    """The type llama-quantize gives one tensor of a llama model whose tensors are all
    present (then "attn_v number i" is the layer index, read from the name blk.i.)."""
    ft = get_file_type(ftype) if isinstance(ftype, str) else ftype
    if not allows_quantization(name, shape):
        return GGMLType.F32
    t = ft.default
    if t in UNQUANTIZED:
        return t
    layer = int(name.split(".")[1]) if name.startswith("blk.") else 0
    st = _MixState(
        ft=ft, n_layer=n_layer, n_gqa=n_head // n_head_kv if n_head_kv else 1, n_expert=0,
        is_70b=n_layer == 80 and n_head != n_head_kv, has_output=has_output, n_attn_v=n_layer,
        i_attn_v=layer, i_ffn_down=layer,
    )
    return _fallback(name, shape, _mixed_type(st, name, shape, t))

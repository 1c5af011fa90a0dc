"""Llama hyperparameters read from GGUF-named metadata, with the user's overrides.

Both readers produce GGUF-named metadata, so this is the one place that turns keys into
numbers. Overrides follow llama.cpp's old command line (`--gqa`, `--eps`,
`--rope-freq-base`, `--rope-freq-scale`, `-c`): GGML v3 files did not store these values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import ModelFileError


@dataclass(frozen=True)
class HParamOverrides:
    """Values the user supplies for what a file lacks or should be run with."""

    gqa: int | None = None  # n_head / n_head_kv (8 for Llama-2-70B); GGML only
    rms_eps: float | None = None
    rope_freq_base: float | None = None
    rope_freq_scale: float | None = None
    context_length: int | None = None


# What the 2023 tools assumed for a GGML v3 file (llama.cpp@dadbed99 and its converter).
# Llama 2 and CodeUp-Llama-2 want rms_eps 1e-5 and context_length 4096; Llama-2-70B --gqa 8.
GGML_DEFAULTS = HParamOverrides(
    gqa=None, rms_eps=5e-6, rope_freq_base=10000.0, rope_freq_scale=1.0, context_length=2048
)


@dataclass(frozen=True)
class LlamaHParams:
    architecture: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_rot: int
    head_dim: int
    n_ctx_train: int
    rope_freq_base: float
    rope_freq_scale: float
    rms_eps: float
    # Mixture of experts (qwen3moe): experts per layer, experts used per token, and each
    # expert's feed-forward width; 0 for a dense model.
    n_expert: int
    n_expert_used: int
    n_ff_exp: int

    @property
    def gqa(self) -> int:
        return self.n_head // self.n_head_kv if self.n_head_kv else 0


def _scalar(path: str, metadata: Mapping[str, Any], key: str, kind: type, default=None):
    value = metadata.get(key, default)
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        # Per-layer arrays (head counts, n_ff): usable only when every layer agrees.
        if value.size == 0 or np.any(value != value.flat[0]):
            raise ModelFileError(path, f"metadata {key} varies per layer, which is not supported")
        value = value.flat[0].item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFileError(path, f"metadata {key} should be a number, found {type(value).__name__}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ModelFileError(path, f"metadata {key} should be an integer, found {value}")
        return int(value)
    return float(value)


def llama_hparams(
    path: str,
    metadata: Mapping[str, Any],
    n_vocab_tokens: int | None,
    overrides: HParamOverrides,
) -> LlamaHParams | None:
    """Hyperparameters of a llama-style model, or None when the file has no such keys."""
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str):
        return None
    a = arch
    n_embd = _scalar(path, metadata, f"{a}.embedding_length", int)
    n_layer = _scalar(path, metadata, f"{a}.block_count", int)
    n_head = _scalar(path, metadata, f"{a}.attention.head_count", int)
    if n_embd is None or n_layer is None or n_head is None:
        return None
    if n_embd <= 0 or n_layer <= 0 or n_head <= 0 or n_embd % n_head:
        raise ModelFileError(
            path, f"inconsistent hyperparameters: n_embd {n_embd}, n_layer {n_layer}, n_head {n_head}"
        )
    n_head_kv = _scalar(path, metadata, f"{a}.attention.head_count_kv", int, n_head)
    if overrides.gqa is not None:
        if overrides.gqa <= 0 or n_head % overrides.gqa:
            raise ModelFileError(path, f"--gqa {overrides.gqa} does not divide n_head {n_head}")
        if n_head // overrides.gqa != n_head_kv:
            raise ModelFileError(
                path,
                f"--gqa {overrides.gqa} gives {n_head // overrides.gqa} KV heads, "
                f"but the tensors have {n_head_kv}",
            )
    if n_head_kv <= 0 or n_head % n_head_kv:
        raise ModelFileError(path, f"n_head_kv {n_head_kv} does not divide n_head {n_head}")
    head_dim = _scalar(path, metadata, f"{a}.attention.key_length", int, n_embd // n_head)
    n_rot = _scalar(path, metadata, f"{a}.rope.dimension_count", int, head_dim)
    n_ff = _scalar(path, metadata, f"{a}.feed_forward_length", int, 0)
    n_vocab = _scalar(path, metadata, f"{a}.vocab_size", int, n_vocab_tokens or 0)
    n_ctx = overrides.context_length or _scalar(path, metadata, f"{a}.context_length", int, 0)
    eps = overrides.rms_eps or _scalar(path, metadata, f"{a}.attention.layer_norm_rms_epsilon", float, 1e-5)
    base = overrides.rope_freq_base or _scalar(path, metadata, f"{a}.rope.freq_base", float, 10000.0)
    n_expert = _scalar(path, metadata, f"{a}.expert_count", int, 0)
    n_expert_used = _scalar(path, metadata, f"{a}.expert_used_count", int, 0)
    n_ff_exp = _scalar(path, metadata, f"{a}.expert_feed_forward_length", int, 0)
    if n_expert < 0 or not 0 <= n_expert_used <= n_expert or (n_expert and not n_expert_used):
        raise ModelFileError(path, f"inconsistent expert counts: {n_expert_used} used of {n_expert} experts")
    if overrides.rope_freq_scale:
        scale = overrides.rope_freq_scale
    else:
        factor = _scalar(path, metadata, f"{a}.rope.scaling.factor", float)
        if factor is None:
            factor = _scalar(path, metadata, f"{a}.rope.scale_linear", float)
        scale = 1.0 / factor if factor else 1.0
    return LlamaHParams(
        architecture=a,
        n_vocab=n_vocab,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_ff=n_ff,
        n_rot=n_rot,
        head_dim=head_dim,
        n_ctx_train=n_ctx,
        rope_freq_base=base,
        rope_freq_scale=scale,
        rms_eps=eps,
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        n_ff_exp=n_ff_exp,
    )

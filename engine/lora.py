"""LoRA adapters applied at evaluation, without merging them into the weights.

An adapter is a GGUF file in llama.cpp's adapter format: `general.type = adapter`,
`adapter.type = lora`, `adapter.lora.alpha`, and for each adapted projection W (n_out × n_in)
the tensors `<W's name>.lora_a` (rank × n_in) and `<W's name>.lora_b` (n_out × rank).
Applied at scale s, the projection computes, as llama.cpp does (float32, in this order):

    y = W·x + s·(alpha/rank) · B·(A·x)        (alpha 0: s alone)

    model = engine.load_model("base.gguf", lora=[("codeup.gguf", 1.0)])

Each adapted matrix of the model is wrapped in a `LoraProjection` at load time (the base
weights stay untouched in their mapped file); `llama.project_many` adds the adapters' term.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import ModelFileError, UsageError
from .formats import open_model_file
from .quants import QuantMatrix, dequantize

# GGUF tensor name (without "blk.N.") -> LayerWeights field.
LAYER_FIELDS = {
    "attn_q.weight": "wq",
    "attn_k.weight": "wk",
    "attn_v.weight": "wv",
    "attn_output.weight": "wo",
    "ffn_gate.weight": "w_gate",
    "ffn_up.weight": "w_up",
    "ffn_down.weight": "w_down",
}


@dataclass(frozen=True)
class LoraTerm:
    a: np.ndarray  # (rank, n_in) float32
    b: np.ndarray  # (n_out, rank) float32
    scale: np.float32  # adapter scale · alpha / rank


@dataclass(frozen=True)
class LoraProjection:
    """A base matrix and the LoRA terms added to its product."""

    base: QuantMatrix
    terms: tuple[LoraTerm, ...]

    @property
    def ggml_type(self):
        return self.base.ggml_type

    def add_delta(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """y (= W·x, (n, n_out)) plus every term's scale·B·(A·x), x (n, n_in) float32."""
        for t in self.terms:
            ab = (x @ t.a.T) @ t.b.T
            y = y + ab * t.scale
        return y


@dataclass(frozen=True)
class LoraAdapter:
    path: Path
    alpha: float
    scale: float
    tensors: dict[str, tuple[np.ndarray, np.ndarray]]  # base tensor name -> (A, B)


def normalize_lora(lora) -> list[tuple[str, float]]:
    """[(path, scale), ...] from paths, (path, scale) pairs or None."""
    out = []
    for item in lora or ():
        if isinstance(item, (str, os.PathLike)):
            path, scale = item, 1.0
        else:
            try:
                path, scale = item
            except (TypeError, ValueError):
                raise UsageError(f"a LoRA adapter is a path or (path, scale), not {item!r}") from None
        try:
            scale = float(scale)
        except (TypeError, ValueError):
            raise UsageError(f"LoRA scale for {path} must be a number, not {scale!r}") from None
        if not np.isfinite(scale):
            raise UsageError(f"LoRA scale for {path} must be finite, not {scale}")
        out.append((os.fspath(path), scale))
    return out


def read_adapter(path: str | os.PathLike, scale: float, architecture: str | None = None) -> LoraAdapter:
    """An adapter's A and B matrices as float32 (the file is closed afterwards)."""
    with open_model_file(path) as mf:
        md = mf.metadata
        if md.get("general.type") != "adapter" or md.get("adapter.type") != "lora":
            raise ModelFileError(path, "not a LoRA adapter (expected general.type = adapter, adapter.type = lora)")
        arch = md.get("general.architecture")
        if architecture is not None and arch != architecture:
            raise ModelFileError(path, f"an adapter for {arch!r}, the model is {architecture!r}")
        alpha = md.get("adapter.lora.alpha", 0.0)
        if not isinstance(alpha, (int, float, np.integer, np.floating)):
            raise ModelFileError(path, f"adapter.lora.alpha is not a number: {alpha!r}")
        pairs: dict[str, dict[str, np.ndarray]] = {}
        for name, t in mf.tensors.items():
            base, dot, part = name.rpartition(".")
            if part not in ("lora_a", "lora_b") or not dot:
                raise ModelFileError(path, f"tensor {name} is neither a .lora_a nor a .lora_b")
            if len(t.shape) != 2:
                raise ModelFileError(path, f"tensor {name} has shape {list(t.shape)}, expected a matrix")
            try:
                values = dequantize(mf.tensor_bytes_view(name), t.ggml_type, t.n_elements)
            except Exception as e:  # noqa: BLE001 - an unsupported type is one line
                raise ModelFileError(path, f"tensor {name}: {e}") from None
            pairs.setdefault(base, {})[part] = np.ascontiguousarray(values.reshape(t.shape[1], t.shape[0]), dtype=np.float32)
        tensors = {}
        for base, p in pairs.items():
            if set(p) != {"lora_a", "lora_b"}:
                missing = "lora_b" if "lora_a" in p else "lora_a"
                raise ModelFileError(path, f"tensor {base}.{missing} is missing")
            a, b = p["lora_a"], p["lora_b"]
            if a.shape[0] != b.shape[1]:
                raise ModelFileError(path, f"tensor {base}: lora_a has rank {a.shape[0]}, lora_b rank {b.shape[1]}")
            tensors[base] = (a, b)
    if not tensors:
        raise ModelFileError(path, "the adapter has no tensors")
    return LoraAdapter(Path(path), float(alpha), scale, tensors)


def term_scale(adapter_scale: float, alpha: float, rank: int) -> np.float32:
    """llama.cpp's float arithmetic: alpha ? scale * alpha / rank : scale."""
    s = np.float32(adapter_scale)
    return s * np.float32(alpha) / np.float32(rank) if alpha else s


def _matrix_shape(m: QuantMatrix) -> tuple[int, int]:
    return m.n_out, m.n_in


def apply_lora(weights, adapters: Sequence[LoraAdapter]) -> None:
    """Wrap the adapted matrices of `weights` (llama.LlamaWeights) in LoraProjections.
    Every adapter tensor must name a projection of the model with matching shapes."""
    terms: dict[str, list[LoraTerm]] = {}
    for ad in adapters:
        for base, (a, b) in ad.tensors.items():
            target = _lookup(weights, base)
            if target is None:
                raise ModelFileError(ad.path, f"tensor {base}: the model has no such projection to adapt")
            n_out, n_in = _matrix_shape(_unwrap(target))
            rank = a.shape[0]
            if a.shape[1] != n_in or b.shape[0] != n_out:
                raise ModelFileError(
                    ad.path,
                    f"tensor {base}: lora_a {list(a.shape)} and lora_b {list(b.shape)} do not fit the model's "
                    f"{n_out}x{n_in} matrix (expected [{rank}, {n_in}] and [{n_out}, {rank}])",
                )
            terms.setdefault(base, []).append(LoraTerm(a, b, term_scale(ad.scale, ad.alpha, rank)))
    for base, ts in terms.items():
        _store(weights, base, ts)


def _unwrap(m):
    return m.base if isinstance(m, LoraProjection) else m


def _split(base: str) -> tuple[int | None, str]:
    if base.startswith("blk."):
        _, layer, rest = base.split(".", 2)
        if layer.isdigit():
            return int(layer), rest
    return None, base


def _lookup(weights, base: str):
    layer, rest = _split(base)
    if layer is None:
        return weights.output if base == "output.weight" and weights.output is not None else None
    if layer >= len(weights.layers) or rest not in LAYER_FIELDS:
        return None
    return getattr(weights.layers[layer], LAYER_FIELDS[rest], None)


def _store(weights, base: str, ts: list[LoraTerm]) -> None:
    layer, rest = _split(base)
    target = _lookup(weights, base)
    wrapped = LoraProjection(_unwrap(target), tuple(target.terms if isinstance(target, LoraProjection) else ()) + tuple(ts))
    if layer is None:
        weights.output = wrapped
    else:
        weights.layers[layer] = replace(weights.layers[layer], **{LAYER_FIELDS[rest]: wrapped})


def load_adapters(lora: Iterable, architecture: str) -> list[LoraAdapter]:
    return [read_adapter(path, scale, architecture) for path, scale in normalize_lora(lora)]


__all__ = ["LoraAdapter", "LoraProjection", "apply_lora", "load_adapters", "normalize_lora", "read_adapter"]

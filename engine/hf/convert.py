"""A Hugging Face model folder to GGUF, as llama.cpp's convert_hf_to_gguf.py writes it.

    result = convert_hf_to_gguf("CodeUp-Llama-2-13b-chat-hf", "codeup-13b-F16.gguf", outtype="f16")

- Architectures (metadata.ARCHITECTURES): llama (Llama 2/3, CodeUp, CodeLlama, Mistral-style),
  qwen2, qwen3, qwen3moe.
- Tensors: renamed to GGUF names, in the checkpoint's order; llama attention Q and K rows
  permuted from HF's rotate-half layout to llama.cpp's interleaved one; MoE experts stacked
  per layer; values kept exactly (f32/f16/bf16 copied or widened, narrowed with
  round-to-nearest-even).
- --outtype f32, f16, bf16, q8_0 as llama.cpp: 1-D tensors, norms and MoE routers stay F32, every other
  weight takes the type (q8_0: F16 where a row is not whole blocks). Any other file type
  (Q4_K_M, Q6_K, ...) gives each tensor llama-quantize's type for that file type, in
  llama-quantize's tensor order: the same tensors as converting to F32 and quantizing.
- Metadata: general.* from the folder/model id, the hyperparameters of config.json, the
  tokenizer (see `vocab`), with llama.cpp's keys, order and value types.

Streaming: tensors are read from the mapped checkpoint a batch of rows at a time and their
pages handed back once written, so the resident set stays small whatever the model size;
the output goes to a temporary file renamed at the end (nothing half-written is left).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import ModelFileError, UsageError
from ..formats.gguf_writer import GGUFWriter
from ..ggml_types import TYPE_TRAITS, GGMLType
from ..quantize.files import check_free_space, check_output_path
from ..quantize.model import GGML_QNT_VERSION, llama_cpp_order
from ..quantize.progress import Progress
from ..quantize.quantizers import default_threads, quantize
from ..quantize.type_mix import FILE_TYPES, plan_tensor_types
from .checkpoint import Checkpoint
from .metadata import (
    EXPERT_NAMES, EXPERT_TENSOR, architecture, general_entries, gguf_tensor_name, hparams_entries, llama3_rope_factors,
)
from .tensor_source import FLOAT_DTYPES, GeneratedTensor, LazyTensor, StackedTensor, to_float32
from .vocab import build_vocab

# convert_hf_to_gguf's own output types: (ggml type of the weights, general.file_type).
OUTTYPES = {
    "f32": (GGMLType.F32, 0),
    "f16": (GGMLType.F16, 1),
    "bf16": (GGMLType.BF16, 32),
    "q8_0": (GGMLType.Q8_0, 7),
}
_SAME_BYTES = {("F32", GGMLType.F32), ("F16", GGMLType.F16), ("BF16", GGMLType.BF16)}
_BATCH_VALUES = 1 << 22  # values read and converted per batch (16 MB as float32)


@dataclass(frozen=True)
class TensorPlan:
    name: str  # GGUF name
    source: LazyTensor
    shape: tuple[int, ...]  # ggml order
    ggml_type: GGMLType
    permute_heads: int = 0  # >0: permute rows for this many heads (llama Q/K)


@dataclass(frozen=True)
class HFConvertResult:
    path: Path
    source_format: str
    architecture: str
    outtype: str
    n_tensors: int
    type_counts: dict[str, int]
    input_bytes: int
    output_bytes: int
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def mb_per_second(self) -> float:
        return self.input_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def is_hf_folder(path: str | os.PathLike) -> bool:
    return Path(path).is_dir()


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelFileError(folder, "not a Hugging Face model folder: no config.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(path, f"unreadable JSON ({e})") from None
    if not isinstance(config, dict):
        raise ModelFileError(path, "not a JSON object")
    text = config.get("text_config")
    return {**config, **text} if isinstance(text, dict) else config


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF's Q/K rows (per head: first halves of the rotary pairs, then the second halves) in
    llama.cpp's order (the pairs interleaved)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _weight_type(name: str, shape: tuple[int, ...], default: GGMLType) -> GGMLType:
    if len(shape) <= 1 or name.endswith(("_norm.weight", "ffn_gate_inp.weight")):
        return GGMLType.F32
    if default == GGMLType.Q8_0 and shape[0] % TYPE_TRAITS[GGMLType.Q8_0].block_size:
        return GGMLType.F16
    return default


def plan_tensors(ckpt: Checkpoint, config: dict, folder: Path, outtype: str) -> tuple[list[TensorPlan], int, str]:
    spec = architecture(config, folder)
    n_head = config["num_attention_heads"]
    n_head_kv = config.get("num_key_value_heads") or n_head
    items = []
    factors = llama3_rope_factors(config)
    if factors is not None:  # llama.cpp writes its generated tensors first
        items.append(("rope_freqs.weight", GeneratedTensor("rope_freqs.weight", factors), (factors.size,), 0))
    n_expert = config.get("num_experts") if spec.experts else 0
    experts: dict[int, dict[str, dict[int, LazyTensor]]] = {}
    for hf_name, t in ckpt.tensors.items():
        if t.dtype not in FLOAT_DTYPES:
            raise ModelFileError(folder, f"tensor {hf_name} is {t.dtype}, not a float type")
        m = EXPERT_TENSOR.fullmatch(hf_name) if spec.experts else None
        if m:  # llama.cpp stacks a layer's experts once it has seen all of them
            bid, xid, kind = int(m.group(1)), int(m.group(2)), m.group(3)
            layer = experts.setdefault(bid, {"down": {}, "gate": {}, "up": {}})
            layer[kind][xid] = t
            if sum(len(v) for v in layer.values()) == 3 * n_expert:
                for kind in ("down", "gate", "up"):
                    parts = [layer[kind].get(x) for x in range(n_expert)]
                    if any(p is None for p in parts) or len({p.shape for p in parts}) != 1 or len({p.dtype for p in parts}) != 1:
                        raise ModelFileError(folder, f"layer {bid}: the {kind}_proj experts are not {n_expert} matrices of one shape")
                    stacked = StackedTensor(EXPERT_NAMES[kind].format(bid=bid), parts)
                    items.append((stacked.name, stacked, tuple(reversed(stacked.shape)), 0))
                del experts[bid]
            continue
        try:
            name = gguf_tensor_name(hf_name)
        except KeyError:
            raise ModelFileError(folder, f"tensor {hf_name}: no GGUF name for it in a {spec.gguf_arch} model") from None
        if name is None:
            continue
        if not 1 <= len(t.shape) <= 4:
            raise ModelFileError(folder, f"tensor {hf_name} has shape {list(t.shape)}")
        heads = 0
        if spec.permute_qk and name.endswith((".attn_q.weight", ".attn_k.weight")):
            heads = n_head if name.endswith(".attn_q.weight") else n_head_kv
            if len(t.shape) != 2 or t.shape[0] % (2 * heads):
                raise ModelFileError(folder, f"tensor {hf_name}: {t.shape[0]} rows do not split into {heads} heads of rotary pairs")
        items.append((name, t, tuple(reversed(t.shape)), heads))
    if experts:
        bid = next(iter(experts))
        raise ModelFileError(folder, f"layer {bid}: only {sum(len(v) for v in experts[bid].values())} of "
                                     f"{3 * n_expert} expert matrices are in the checkpoint")
    key = outtype.lower()
    if key == "auto":  # llama.cpp: the 16-bit type of the first weight (bf16 stays bf16)
        key = "bf16" if any(t.dtype == "BF16" for _, t, _, _ in items[:1]) else "f16"
    if key in OUTTYPES:
        default, file_type = OUTTYPES[key]
        plans = [TensorPlan(n, t, s, _weight_type(n, s, default), h) for n, t, s, h in items]
        return plans, file_type, key
    ft = FILE_TYPES.get(outtype.upper())
    if ft is None:
        known = ", ".join(list(OUTTYPES) + ["auto"] + [k for k in FILE_TYPES if k.lower() not in OUTTYPES])
        raise UsageError(f"unknown --outtype {outtype} (known: {known})")
    by_name = {n: (t, s, h) for n, t, s, h in items}
    order = llama_cpp_order(by_name)
    types = plan_tensor_types([(n, by_name[n][1], GGMLType.F32) for n in order], ft, n_layer=config["num_hidden_layers"],
                              n_head=n_head, n_head_kv=n_head_kv, n_expert=n_expert or 0, architecture=spec.gguf_arch)
    plans = [TensorPlan(n, by_name[n][0], by_name[n][1], ty, by_name[n][2]) for n, ty in zip(order, types)]
    return plans, ft.ftype, ft.name


def convert_hf_to_gguf(
    folder: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    outtype: str = "f16",
    name: str | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> HFConvertResult:
    src, out = Path(folder), Path(out_path)
    if not src.is_dir():
        raise ModelFileError(src, "not a folder")
    check_output_path(out, overwrite=overwrite)
    config = read_config(src)
    spec = architecture(config, src)
    with Checkpoint(src) as ckpt:
        plans, file_type, type_name = plan_tensors(ckpt, config, src, outtype)
        vocab = build_vocab(src, config, llama=spec.gguf_arch == "llama")
        total_params = sum(p.source.n_elements for p in plans)
        w = GGUFWriter(out)
        w.add_metadata("general.architecture", spec.gguf_arch, type="string")
        w.add_metadata("general.type", "model", type="string")
        for key, value, vtype in general_entries(src, config, total_params, name):
            w.add_metadata(key, value, type=vtype)
        for key, value, vtype in hparams_entries(config, src, spec, file_type):
            w.add_metadata(key, value, type=vtype)
        w.add_metadata("general.quantization_version", GGML_QNT_VERSION, type="u32")
        for key, value, vtype, etype in vocab.entries:
            w.add_metadata(key, value, type=vtype, element_type=etype)
        for p in plans:
            w.add_tensor_info(p.name, p.ggml_type, p.shape)
        check_free_space(out, w.file_size)

        total_in = sum(p.source.nbytes for p in plans)
        start = time.perf_counter()
        state = {"bytes": 0, "tensors": 0}

        def report(tensor: str) -> None:
            if progress is not None:
                progress(Progress(state["tensors"], len(plans), state["bytes"], total_in, tensor, time.perf_counter() - start))

        with ThreadPoolExecutor(max_workers=threads or default_threads(), thread_name_prefix="convert") as pool:
            w.write([_tensor_source(p, pool, state, report) for p in plans])
        seconds = time.perf_counter() - start
        counts: dict[str, int] = {}
        for p in plans:
            counts[p.ggml_type.name] = counts.get(p.ggml_type.name, 0) + 1
        return HFConvertResult(out, ckpt.format_name, spec.gguf_arch, type_name, len(plans), dict(sorted(counts.items())),
                               total_in, out.stat().st_size, seconds, tuple(vocab.notes))


def _tensor_source(p: TensorPlan, pool, state, report) -> Callable[[], Iterator]:
    def chunks() -> Iterator:
        same = (p.source.dtype, p.ggml_type) in _SAME_BYTES
        for t in (p.source.parts() if hasattr(p.source, "parts") else [p.source]):  # experts: one at a time
            values = t.array()
            if p.permute_heads:
                values = permute_rows(values, p.permute_heads)  # one tensor's copy (a Q/K matrix)
            rows = values.reshape(-1, p.shape[0]) if values.ndim > 1 else values.reshape(1, -1)
            per_batch = max(1, _BATCH_VALUES // rows.shape[1])
            for r in range(0, rows.shape[0], per_batch):
                batch = np.ascontiguousarray(rows[r : r + per_batch])
                yield batch if same else quantize(to_float32(batch, t.dtype), p.ggml_type, pool=pool)
                state["bytes"] += batch.nbytes
                report(p.name)
            del values, rows
            t.release()
        state["tensors"] += 1
        report(p.name)

    return chunks

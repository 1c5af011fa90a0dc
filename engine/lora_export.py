"""LoRA adapter files: a PEFT adapter to llama.cpp's GGUF adapter format (`codeup
convert-lora`), and adapters merged into a model's weights (`codeup export-lora`).

    convert_peft_lora("codeup-lora/", "codeup-lora.gguf", base="llama-2-13b-chat.Q4_K_M.gguf")
    export_lora("llama-2-13b-chat.Q4_K_M.gguf", [("codeup-lora.gguf", 1.0)], "codeup-13b.Q4_K_M.gguf")

PEFT stores, for each adapted HF projection, `base_model.model.<hf name>.lora_A.weight`
(rank × n_in) and `.lora_B.weight` (n_out × rank), and `lora_alpha` in adapter_config.json.
The GGUF adapter names them `<gguf name>.lora_a` / `.lora_b`; for llama's Q and K the
converter permutes the rows of W, so B's rows are permuted the same way (B·A then has
the permuted rows of the HF product), which needs the base model's head counts.

export-lora adds scale·(alpha/rank)·B·A to each adapted weight in float32 and stores the
sum in the weight's own type (F32 kept, F16/BF16 rounded, block types re-quantized with
engine/quantize's quantizers); the other tensors and all metadata are copied unchanged.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelFileError, UsageError
from .formats import open_model_file
from .formats.gguf_reader import GGUFParser
from .formats.gguf_writer import GGUFValueType, GGUFWriter
from .ggml_types import GGMLType
from .hf.convert import OUTTYPES, permute_rows
from .hf.metadata import gguf_tensor_name
from .hf.safetensors import read_safetensors
from .hf.tensor_source import FLOAT_DTYPES, to_float32
from .hf.torch_zip import read_torch_zip
from .lora import LoraAdapter, normalize_lora, read_adapter, term_scale
from .quantize.files import InputMap, check_free_space, check_output_path
from .quantize.model import GGML_QNT_VERSION, _float32_rows
from .quantize.quantizers import QUANTIZERS, default_threads, quantize

_PEFT_PREFIXES = ("base_model.model.", "base_model.")


@dataclass(frozen=True)
class LoraFileResult:
    path: Path
    n_tensors: int
    detail: str
    seconds: float


# ---- PEFT -> GGUF adapter ----------------------------------------------------------------------
def _base_heads(base: str | os.PathLike | None) -> tuple[int, int, str] | None:
    """(n_head, n_head_kv, architecture) of the base model: a GGUF file or an HF folder."""
    if base is None:
        return None
    p = Path(base)
    if p.is_dir():
        from .hf.convert import read_config
        from .hf.metadata import architecture

        config = read_config(p)
        n_head = config.get("num_attention_heads")
        if not isinstance(n_head, int) or n_head <= 0:
            raise ModelFileError(p / "config.json", "num_attention_heads is missing")
        return n_head, config.get("num_key_value_heads") or n_head, architecture(config, p).gguf_arch
    with open_model_file(p) as mf:
        if mf.hparams is None:
            raise ModelFileError(p, "has no model hyperparameters: --base must be the base model")
        return mf.hparams.n_head, mf.hparams.n_head_kv, mf.architecture


def convert_peft_lora(
    folder: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    outtype: str = "f16",
    name: str | None = None,
    overwrite: bool = False,
) -> LoraFileResult:
    src, out = Path(folder), Path(out_path)
    start = time.perf_counter()
    if not src.is_dir():
        raise ModelFileError(src, "not a folder (a PEFT adapter folder holds adapter_config.json)")
    check_output_path(out, overwrite=overwrite)
    if outtype.lower() not in OUTTYPES:
        raise UsageError(f"unknown --outtype {outtype} (known: {', '.join(OUTTYPES)})")
    out_type = OUTTYPES[outtype.lower()][0]
    cfg_path = src / "adapter_config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(src, "not a PEFT adapter: no adapter_config.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(cfg_path, f"unreadable JSON ({e})") from None
    alpha = cfg.get("lora_alpha")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool):
        raise ModelFileError(cfg_path, f"lora_alpha must be a number, not {alpha!r}")
    if cfg.get("peft_type", "LORA") != "LORA":
        raise ModelFileError(cfg_path, f"peft_type {cfg.get('peft_type')!r} is not LORA")
    if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
        raise ModelFileError(cfg_path, "per-module rank_pattern/alpha_pattern cannot be converted (one alpha per adapter)")
    if (src / "adapter_model.safetensors").is_file():
        mapped, tensors = read_safetensors(src / "adapter_model.safetensors")
    elif (src / "adapter_model.bin").is_file():
        mapped, tensors = read_torch_zip(src / "adapter_model.bin")
    else:
        raise ModelFileError(src, "no adapter_model.safetensors or adapter_model.bin")
    try:
        heads = _base_heads(base)
        pairs: dict[str, dict[str, object]] = {}
        for hf_name, t in tensors.items():
            stem = hf_name
            for prefix in _PEFT_PREFIXES:
                if stem.startswith(prefix):
                    stem = stem[len(prefix):]
                    break
            for part, key in ((".lora_A.weight", "lora_a"), (".lora_B.weight", "lora_b")):
                if stem.endswith(part):
                    target = stem[: -len(part)] + ".weight"
                    break
            else:
                raise ModelFileError(src, f"tensor {hf_name} is not a LoRA A/B matrix (embedding or bias adapters cannot be converted)")
            try:
                gname = gguf_tensor_name(target)
            except KeyError:
                gname = None
            if gname is None:
                raise ModelFileError(src, f"tensor {hf_name}: {target} has no GGUF name in a llama model")
            if t.dtype not in FLOAT_DTYPES or len(t.shape) != 2:
                raise ModelFileError(src, f"tensor {hf_name}: expected a float matrix, got {t.dtype} {list(t.shape)}")
            pairs.setdefault(gname, {})[key] = t
        arch = heads[2] if heads else "llama"
        w = GGUFWriter(out)
        w.add_metadata("general.architecture", arch, type="string")
        w.add_metadata("general.type", "adapter", type="string")
        w.add_metadata("general.name", name or src.resolve().name, type="string")
        w.add_metadata("general.file_type", OUTTYPES[outtype.lower()][1], type="u32")
        w.add_metadata("general.quantization_version", GGML_QNT_VERSION, type="u32")
        w.add_metadata("adapter.type", "lora", type="string")
        w.add_metadata("adapter.lora.alpha", float(alpha), type="f32")
        sources = []
        for gname, p in pairs.items():
            if set(p) != {"lora_a", "lora_b"}:
                raise ModelFileError(src, f"{gname}: PEFT has only one of lora_A/lora_B")
            a, b = p["lora_a"], p["lora_b"]
            if a.shape[0] != b.shape[1]:
                raise ModelFileError(src, f"{gname}: lora_A rank {a.shape[0]} differs from lora_B rank {b.shape[1]}")
            n_head = 0
            if arch == "llama" and gname.endswith((".attn_q.weight", ".attn_k.weight")):
                if heads is None:
                    raise UsageError(f"the adapter changes {gname}, whose rows llama.cpp permutes by head: "
                                     "give the base model with --base (GGUF file or HF folder)")
                n_head = heads[0] if gname.endswith(".attn_q.weight") else heads[1]
            for key, t, perm in (("lora_a", a, 0), ("lora_b", b, n_head)):
                tname = f"{gname}.{key}"
                values = to_float32(np.asarray(t.array()), t.dtype)
                if perm:
                    values = np.ascontiguousarray(permute_rows(values, perm))
                ty = out_type if out_type != GGMLType.Q8_0 or values.shape[1] % 32 == 0 else GGMLType.F16
                w.add_tensor_info(tname, ty, tuple(reversed(values.shape)))
                sources.append(quantize(values, ty))
        check_free_space(out, w.file_size)
        w.write(sources)
    finally:
        mapped.close()
    return LoraFileResult(out, len(sources), f"alpha {alpha:g}, rank {next(iter(pairs.values()))['lora_a'].shape[0] if pairs else 0}",
                          time.perf_counter() - start)


# ---- adapters merged into the weights ----------------------------------------------------------
def export_lora(
    base_path: str | os.PathLike,
    lora,
    out_path: str | os.PathLike,
    *,
    threads: int | None = None,
    overwrite: bool = False,
) -> LoraFileResult:
    src, out = Path(base_path), Path(out_path)
    start = time.perf_counter()
    check_output_path(out, overwrite=overwrite, source=src)
    adapters_spec = normalize_lora(lora)
    if not adapters_spec:
        raise UsageError("give at least one adapter (--lora FILE or --lora-scaled FILE SCALE)")
    with open_model_file(src) as mf:
        if mf.format != "GGUF" or mf.hparams is None:
            raise ModelFileError(src, "the base must be a GGUF model (convert GGML files first)")
        adapters: list[LoraAdapter] = [read_adapter(p, s, mf.architecture) for p, s in adapters_spec]
        deltas: dict[str, list[tuple[np.ndarray, np.ndarray, np.float32]]] = {}
        for ad in adapters:
            for base, (a, b) in ad.tensors.items():
                t = mf.tensors.get(base)
                if t is None or len(t.shape) != 2:
                    raise ModelFileError(ad.path, f"tensor {base}: the model has no such matrix")
                n_in, n_out = t.shape
                if a.shape[1] != n_in or b.shape[0] != n_out or a.shape[0] != b.shape[1]:
                    raise ModelFileError(ad.path, f"tensor {base}: lora_a {list(a.shape)} and lora_b {list(b.shape)} do not fit "
                                                  f"the model's {n_out}x{n_in} matrix")
                if t.ggml_type not in QUANTIZERS and t.ggml_type != GGMLType.F32:
                    raise ModelFileError(src, f"tensor {base} is {t.ggml_type.name}, which cannot be written back after merging")
                deltas.setdefault(base, []).append((a, b, term_scale(ad.scale, ad.alpha, a.shape[0])))
        data = InputMap(src)
        try:
            w = GGUFWriter(out)
            types = GGUFParser(data.mm, str(src)).parse()[2]
            for key, value in mf.metadata.items():
                vtype = GGUFValueType(types[key])
                etype = GGUFValueType.STRING if vtype == GGUFValueType.ARRAY and isinstance(value, list) and not value else None
                w.add_metadata(key, value, type=vtype, element_type=etype)
            for t in mf.tensors.values():
                w.add_tensor_info(t.name, t.ggml_type, t.shape)
            check_free_space(out, w.file_size)
            with ThreadPoolExecutor(max_workers=threads or default_threads()) as pool:
                def source(t):
                    def chunks():
                        raw = data.view(t.offset, t.nbytes)
                        if t.name not in deltas:
                            yield raw
                        else:
                            n_in, n_out = t.shape
                            merged = _float32_rows(raw, t.ggml_type, n_in * n_out).reshape(n_out, n_in)
                            for a, b, scale in deltas[t.name]:
                                merged += (b @ a) * scale
                            yield quantize(merged, t.ggml_type, pool=pool)
                        data.release(t.offset, t.nbytes)
                    return chunks
                w.write([source(t) for t in mf.tensors.values()])
        finally:
            data.close()
    return LoraFileResult(out, len(deltas), f"{len(adapters)} adapter{'s' if len(adapters) > 1 else ''} merged into "
                                            f"{len(deltas)} tensors", time.perf_counter() - start)

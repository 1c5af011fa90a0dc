"""config.json -> GGUF hyperparameters, and the general.* naming llama.cpp's converter
derives from the folder and model id, in the order and with the value types it writes them.

Architectures are data: `ARCHITECTURES` maps a config's `architectures[0]` to the GGUF
architecture and how its tensors are renamed and transformed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError


@dataclass(frozen=True)
class ArchSpec:
    gguf_arch: str
    permute_qk: bool  # llama.cpp reorders Q/K rows from HF's rotate-half layout to its own
    llama_keys: bool = False  # LlamaModel's own keys: vocab_size, rope.dimension_count
    experts: bool = False  # mixture of experts: per-expert HF tensors stacked into one


LLAMA = ArchSpec("llama", permute_qk=True, llama_keys=True)
ARCHITECTURES = {
    "LlamaForCausalLM": LLAMA,
    "LLaMAForCausalLM": LLAMA,
    "MistralForCausalLM": LLAMA,
    "Qwen2ForCausalLM": ArchSpec("qwen2", permute_qk=False),
    "Qwen3ForCausalLM": ArchSpec("qwen3", permute_qk=False),
    "Qwen3MoeForCausalLM": ArchSpec("qwen3moe", permute_qk=False, experts=True),
}

# HF tensor name pattern -> GGUF name ({bid}: the layer). Names llama.cpp skips map to None.
TENSOR_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{bid}.input_layernorm.weight": "blk.{bid}.attn_norm.weight",
    "model.layers.{bid}.post_attention_layernorm.weight": "blk.{bid}.ffn_norm.weight",
    "model.layers.{bid}.self_attn.q_proj.weight": "blk.{bid}.attn_q.weight",
    "model.layers.{bid}.self_attn.k_proj.weight": "blk.{bid}.attn_k.weight",
    "model.layers.{bid}.self_attn.v_proj.weight": "blk.{bid}.attn_v.weight",
    "model.layers.{bid}.self_attn.o_proj.weight": "blk.{bid}.attn_output.weight",
    "model.layers.{bid}.mlp.gate_proj.weight": "blk.{bid}.ffn_gate.weight",
    "model.layers.{bid}.mlp.up_proj.weight": "blk.{bid}.ffn_up.weight",
    "model.layers.{bid}.mlp.down_proj.weight": "blk.{bid}.ffn_down.weight",
    "model.layers.{bid}.self_attn.rotary_emb.inv_freq": None,  # recomputed from rope_theta
    # qwen2: Q/K/V biases; qwen3: per-head Q/K RMS norms; qwen3moe: the router
    "model.layers.{bid}.self_attn.q_proj.bias": "blk.{bid}.attn_q.bias",
    "model.layers.{bid}.self_attn.k_proj.bias": "blk.{bid}.attn_k.bias",
    "model.layers.{bid}.self_attn.v_proj.bias": "blk.{bid}.attn_v.bias",
    "model.layers.{bid}.self_attn.q_norm.weight": "blk.{bid}.attn_q_norm.weight",
    "model.layers.{bid}.self_attn.k_norm.weight": "blk.{bid}.attn_k_norm.weight",
    "model.layers.{bid}.mlp.gate.weight": "blk.{bid}.ffn_gate_inp.weight",
}
# Per-expert HF tensors, stacked (expert-major) into one GGUF tensor per layer and kind.
EXPERT_TENSOR = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight")
EXPERT_NAMES = {"gate": "blk.{bid}.ffn_gate_exps.weight", "up": "blk.{bid}.ffn_up_exps.weight",
                "down": "blk.{bid}.ffn_down_exps.weight"}
_LAYER = re.compile(r"\.(\d+)\.")


def gguf_tensor_name(hf_name: str) -> str | None:
    """The GGUF name of an HF tensor; None for one llama.cpp drops. KeyError: unknown."""
    m = _LAYER.search(hf_name)
    if m:
        pattern = hf_name[: m.start()] + ".{bid}." + hf_name[m.end() :]
        target = TENSOR_NAMES[pattern]
        return None if target is None else target.format(bid=int(m.group(1)))
    return TENSOR_NAMES[hf_name]


def architecture(config: dict, folder: Path) -> ArchSpec:
    archs = config.get("architectures") or [None]
    arch = archs[0] if isinstance(archs, list) and archs else None
    spec = ARCHITECTURES.get(arch)
    if spec is None:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ModelFileError(folder / "config.json", f"architecture {arch!r} cannot be converted (known: {known})")
    return spec


def _int(config: dict, key: str, folder: Path, required: bool = True) -> int | None:
    v = config.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ModelFileError(folder / "config.json", f"{key} must be a positive integer, not {v!r}")
    return v


def hparams_entries(config: dict, folder: Path, spec: ArchSpec, file_type: int) -> list[tuple[str, Any, str]]:
    """The model keys, general.file_type among them where llama.cpp writes it."""
    a = spec.gguf_arch
    n_layer = _int(config, "num_hidden_layers", folder)
    n_embd = _int(config, "hidden_size", folder)
    n_head = _int(config, "num_attention_heads", folder)
    n_ff = _int(config, "intermediate_size", folder)
    n_head_kv = _int(config, "num_key_value_heads", folder, required=False)
    head_dim = _int(config, "head_dim", folder, required=False) or n_embd // n_head
    n_ctx = next((config[k] for k in ("max_position_embeddings", "n_ctx", "n_positions", "max_length") if isinstance(config.get(k), int)), None)
    out: list[tuple[str, Any, str]] = [(f"{a}.block_count", n_layer, "u32")]
    if n_ctx is not None:
        out.append((f"{a}.context_length", n_ctx, "u32"))
    out += [(f"{a}.embedding_length", n_embd, "u32"), (f"{a}.feed_forward_length", n_ff, "u32"),
            (f"{a}.attention.head_count", n_head, "u32")]
    if n_head_kv is not None:
        out.append((f"{a}.attention.head_count_kv", n_head_kv, "u32"))
    if isinstance(config.get("rope_theta"), (int, float)):
        out.append((f"{a}.rope.freq_base", float(config["rope_theta"]), "f32"))
    if isinstance(config.get("rms_norm_eps"), (int, float)):
        out.append((f"{a}.attention.layer_norm_rms_epsilon", float(config["rms_norm_eps"]), "f32"))
    if spec.experts:
        out += [(f"{a}.expert_count", _int(config, "num_experts", folder), "u32"),
                (f"{a}.expert_used_count", _int(config, "num_experts_per_tok", folder), "u32")]
    out += [(f"{a}.attention.key_length", head_dim, "u32"), (f"{a}.attention.value_length", head_dim, "u32"),
            ("general.file_type", file_type, "u32")]
    if spec.experts:
        out.append((f"{a}.expert_feed_forward_length", _int(config, "moe_intermediate_size", folder), "u32"))
    if spec.llama_keys:
        vocab_size = _int(config, "vocab_size", folder)
        out += [(f"{a}.vocab_size", vocab_size, "u32"), (f"{a}.rope.dimension_count", head_dim, "u32")]
    rope_scaling = config.get("rope_scaling") or {}
    if isinstance(rope_scaling, dict):
        kind = rope_scaling.get("rope_type", rope_scaling.get("type"))
        if kind == "linear" and isinstance(rope_scaling.get("factor"), (int, float)):
            out += [(f"{a}.rope.scaling.type", "linear", "string"), (f"{a}.rope.scaling.factor", float(rope_scaling["factor"]), "f32")]
        elif kind not in (None, "default", "linear", "llama3"):
            raise ModelFileError(folder / "config.json", f"rope_scaling type {kind!r} cannot be converted yet")
    return out


# ---- naming (llama.cpp's gguf-py metadata heuristics, for what a folder name tells) ----------
def id_to_title(text: str) -> str:
    """'codeup-llama-2-13b-chat-hf' -> 'Codeup Llama 2 13b Chat Hf' (acronyms, versions and
    numbers kept as they are)."""
    return " ".join(w.title() if w.islower() and not re.match(r"^(v\d+(?:\.\d+)*|\d.*)$", w) else w
                    for w in text.strip().replace("-", " ").split())


def _size_params(label: str) -> float:
    return float(label[:-1]) * 1000 ** " KMBT".find(label[-1])


def _normalize_size(label: str) -> str:
    label = label.replace("_", ".")
    if label[-1].isdecimal():  # bloom-7b1 -> 7.1B
        label = label[:-2] + "." + label[-1] + label[-2]
    if len(label) > 1 and label[-2].isdecimal() and label[-1] in "kmbt":
        label = label[:-1] + label[-1].upper()
    return label


def model_id_components(model_id: str, total_params: int) -> dict[str, str | None]:
    """name, basename, finetune, version and size label read from a model id."""
    if " " in model_id:
        return {"name": model_id}
    org, _, full = model_id.rpartition("/") if "/" in model_id else (None, "", model_id)
    parts = [p for p in full.split("-") if p]
    kinds: list[set] = [set() for _ in parts]
    for i, part in enumerate(parts):
        if re.fullmatch(r"(v|iter)?\d+([.]\d+)*", part, re.IGNORECASE):
            kinds[i].add("version")
        elif re.fullmatch(r"i?q\d(_\w)*|b?fp?(16|32)", part, re.IGNORECASE):
            kinds[i].add("type")
            parts[i] = part.upper()
        elif i > 0 and re.fullmatch(r"(([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)", part, re.IGNORECASE):
            part = _normalize_size(part)
            if total_params and part[-1] in "KMBT":
                try:
                    if abs(_size_params(part) - total_params) > 7 * total_params // 8:
                        kinds[i].add("finetune")  # likely a context length, not the size
                        part = part[:-1] + part[-1].lower()
                except ValueError:
                    pass
            if not kinds[i]:
                kinds[i].add("size_label")
            parts[i] = part
        elif i > 0 and re.fullmatch(r"chat|instruct|vision|lora", part, re.IGNORECASE):
            kinds[i].add("finetune")
    if any(c.isdecimal() for p, k in zip(parts, kinds) if "size_label" in k for c in p):
        for p, k in zip(parts, kinds):
            if "size_label" in k and p.isalpha():
                k.discard("size_label")
    at_start = True
    for p, k in zip(parts, kinds):
        if at_start and ((not k and p[0].isalpha()) or "version" in k):
            k.add("basename")
        else:
            at_start = False
            if not k:
                k.add("finetune")
    for p, k in zip(reversed(parts), reversed(kinds)):
        if "basename" in k and len(k) > 1:
            k.discard("basename")
        else:
            break

    def joined(kind: str, exclude: str | None = None) -> str | None:
        chosen = [p for p, k in zip(parts, kinds) if kind in k and (exclude is None or exclude not in k)]
        if kind == "size_label":
            chosen = list(dict.fromkeys(chosen))
        return "-".join(chosen) or None

    basename, size, finetune, version = joined("basename"), joined("size_label"), joined("finetune"), joined("version", "basename")
    if size is None and finetune is None and version is None:
        basename = None  # too ambiguous to say
    return {"name": id_to_title(full), "organization": id_to_title(org) if org and not org.startswith(".") else None,
            "basename": basename, "finetune": finetune, "version": version, "size_label": size}


def size_label(total_params: int) -> str:
    for limit, scale, suffix in ((1e12, 1e-12, "T"), (1e9, 1e-9, "B"), (1e6, 1e-6, "M"), (0, 1e-3, "K")):
        if total_params >= limit:
            scaled = total_params * scale
            break
    digits = max(2 - len(str(round(scaled)).lstrip("0")), 0)
    return f"{scaled:.{digits}f}{suffix}"


def general_entries(folder: Path, config: dict, total_params: int, name: str | None) -> list[tuple[str, Any, str]]:
    found: dict[str, str | None] = {}
    ids = []
    name_or_path = config.get("_name_or_path")
    if isinstance(name_or_path, str) and name_or_path.count("/") <= 1 and name_or_path:
        ids.append(name_or_path)
    ids.append(folder.resolve().name)
    for model_id in ids:
        for k, v in model_id_components(model_id, total_params).items():
            if found.get(k) is None and v is not None:
                found[k] = v
    if name:
        found["name"] = name
    if found.get("size_label") is None and total_params:
        found["size_label"] = size_label(total_params)
    return [(f"general.{k}", found[k], "string") for k in ("name", "version", "organization", "finetune", "basename", "size_label")
            if found.get(k)]


def llama3_rope_factors(config: dict) -> np.ndarray | None:
    """Llama 3.1's per-frequency RoPE factors (rope_scaling type llama3), which llama.cpp
    stores as the tensor rope_freqs.weight: 1 for high frequencies, `factor` for low ones,
    a smooth blend between. None for other models."""
    rs = config.get("rope_scaling") or {}
    if not isinstance(rs, dict) or str(rs.get("rope_type", rs.get("type", ""))).lower() != "llama3":
        return None
    base = float(config.get("rope_theta", 10000.0))
    dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    freqs = np.float32(1.0) / np.power(np.float32(base), np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))
    factor = float(rs.get("factor", 8.0))
    low, high = float(rs.get("low_freq_factor", 1.0)), float(rs.get("high_freq_factor", 4.0))
    old_ctx = float(rs.get("original_max_position_embeddings", 8192))
    out = []
    for f in freqs:
        wavelen = np.float32(2 * math.pi) / f
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)

"""`codeup info MODEL`: what a model file is, from its header alone."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import asdict

from ..errors import UsageError
from ..formats import ModelFile, open_model_file
from ..terminal_text import printable


def add_parser(sub) -> None:
    from .options import add_model_overrides

    p = sub.add_parser(
        "info",
        help="describe a GGUF or GGML model file",
        description="Describe a GGUF (v1-v3) or legacy GGML (ggjt v3 ...) model file: format, "
        "hyperparameters, tokenizer, tensor types and sizes, the prompt format, and the memory it needs "
        "at a context size (-c; default: the model's, at most 4096).",
    )
    p.add_argument("model", metavar="MODEL", help="path to a .gguf or .ggmlv3 .bin file")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    add_model_overrides(p, context_help="context size of the memory estimate (default: the model's, at most "
                        "4096); also a GGML file's training context (default 2048)")
    p.set_defaults(run=run)


def active_params(mf: ModelFile) -> int:
    """Parameters read per token: all but the experts a token does not use (a mixture of
    experts reads expert_used_count of expert_count expert slices of each *_exps tensor)."""
    hp = mf.hparams
    if hp is None or not hp.n_expert:
        return mf.n_params
    experts = sum(t.n_elements for name, t in mf.tensors.items() if name.endswith("_exps.weight"))
    return mf.n_params - experts * (hp.n_expert - hp.n_expert_used) // hp.n_expert


def describe(mf: ModelFile, n_ctx: int | None = None) -> dict:
    """A JSON-ready description of a model file (the memory estimate at `n_ctx`; None: the
    context the engine would load it with)."""
    from ..chat_template import CHAT_TEMPLATE_KEY, FORMAT_MARKS
    from ..memory import estimate

    by_type: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "bytes": 0, "elements": 0})
    for t in mf.tensors.values():
        row = by_type[t.ggml_type.name]
        row["count"] += 1
        row["bytes"] += t.nbytes
        row["elements"] += t.n_elements
    tok = mf.tokenizer
    tokenizer = None
    if tok is not None:
        special = {}
        for role in ("bos", "eos", "unk", "pad"):
            tid = getattr(tok, f"{role}_id")
            special[role] = None if tid is None else {"id": tid, "text": tok.tokens[tid]}
        tokenizer = {
            "model": tok.model,
            "kind": {"llama": "SentencePiece", "gpt2": "byte-level BPE"}.get(tok.model, tok.model),
            "pre": tok.pre,
            "n_tokens": tok.n_vocab,
            "n_merges": len(tok.merges) if tok.merges is not None else None,
            "has_scores": tok.scores is not None,
            "special": special,
            "add_bos": tok.add_bos,
            "add_eos": tok.add_eos,
        }
    return {
        "path": str(mf.path),
        "format": mf.format,
        "version": mf.version,
        "format_name": mf.format_name,
        "name": mf.name,
        "architecture": mf.architecture,
        "file_type": mf.file_type_name,
        "file_size": mf.file_size,
        "n_params": mf.n_params,
        "n_params_active": active_params(mf),
        "tensor_bytes": mf.tensor_bytes,
        "bits_per_weight": round(mf.bits_per_weight, 4),
        "hparams": asdict(mf.hparams) if mf.hparams else None,
        "tokenizer": tokenizer,
        "tensor_types": dict(sorted(by_type.items(), key=lambda kv: -kv[1]["bytes"])),
        "n_tensors": len(mf.tensors),
        "notes": list(mf.notes),
        "prompt_format": _prompt_format(mf.metadata.get(CHAT_TEMPLATE_KEY), FORMAT_MARKS),
        **(estimate(mf, n_ctx).as_dict() if mf.hparams else {}),
    }


def _prompt_format(source, marks) -> str:
    """The format `codeup run -i` and the TUI prompt this file in by default."""
    if not isinstance(source, str) or not source.strip():
        return "alpaca (the file has no chat template)"
    family = next((label for mark, label in marks if mark in source), "")
    return "the file's chat template" + (f" ({family})" if family else "")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e6 else str(n)


def render_text(d: dict) -> str:
    lines = [
        f"file          {d['path']}",
        f"format        {d['format_name']}",
        f"name          {d['name']}",
        f"architecture  {d['architecture']}",
        f"file type     {d['file_type']}",
        f"size          {_size(d['file_size'])}: {_count(d['n_params'])} parameters in "
        f"{d['n_tensors']} tensors, {d['bits_per_weight']:.2f} bits per weight",
    ]
    hp = d["hparams"]
    if hp:
        lines += [
            "hyperparameters",
            f"  n_vocab {hp['n_vocab']}  n_embd {hp['n_embd']}  n_layer {hp['n_layer']}  "
            f"n_head {hp['n_head']}  n_head_kv {hp['n_head_kv']}  n_ff {hp['n_ff']}",
            f"  context {hp['n_ctx_train']}  head_dim {hp['head_dim']}  n_rot {hp['n_rot']}  "
            f"rope base {hp['rope_freq_base']:g}  rope scale {hp['rope_freq_scale']:g}  "
            f"rms eps {hp['rms_eps']:.3g}",
        ]
        if hp.get("n_expert"):
            lines.append(
                f"  experts {hp['n_expert']} ({hp['n_expert_used']} used per token, n_ff {hp['n_ff_exp']} each): "
                f"{_count(d['n_params_active'])} active parameters per token"
            )
    tok = d["tokenizer"]
    if tok:
        extra = f", pre-tokenizer {tok['pre']}" if tok["pre"] else ""
        merges = f", {tok['n_merges']} merges" if tok["n_merges"] is not None else ""
        lines.append(f"tokenizer     {tok['kind']} ({tok['model']}{extra}): {tok['n_tokens']} tokens{merges}")
        parts = []
        for role, sp in tok["special"].items():
            parts.append(f"{role} {sp['id']} {sp['text']!r}" if sp else f"{role} -")
        lines.append("special       " + "  ".join(parts))
    if d["tensor_types"]:
        lines.append("tensors       type      count        bytes  bits/weight")
        for name, row in d["tensor_types"].items():
            bpw = 8 * row["bytes"] / row["elements"] if row["elements"] else 0
            lines.append(f"              {name:<8} {row['count']:>6} {_size(row['bytes']):>12}  {bpw:>11.2f}")
    lines.append(f"prompt format {d['prompt_format']}")
    if "memory_required_bytes" in d:
        lines.append(f"memory        {_size(d['memory_required_bytes'])} at context {d['n_ctx']}: weights "
                     f"{_size(d['weights_bytes'])}, KV cache {_size(d['kv_cache_bytes'])} (F16), working "
                     f"{_size(d['working_bytes'])}")
    for note in d["notes"]:
        lines.append(f"note          {note}")
    # Names, paths and notes come from the file: each line shown with its controls escaped.
    return "\n".join(printable(line) for line in lines)


def run(args: argparse.Namespace) -> int:
    from .options import model_overrides

    n_ctx = args.context_length
    if n_ctx is not None and not 1 <= n_ctx <= 1 << 20:
        raise UsageError(f"-c {n_ctx}: the context size must be between 1 and {1 << 20}")
    with open_model_file(args.model, **model_overrides(args)) as mf:
        d = describe(mf, n_ctx)
    print(json.dumps(d, indent=2) if args.json else render_text(d))
    return 0

"""Benchmark: converting a Llama-2-7B-shaped fp16 Hugging Face checkpoint streams.

Writes a sparse 7B-shaped checkpoint (2 safetensors shards with their index, F16 weights of
zeros: 13.5 GB on paper, a few MB on disk; a 32000-token SentencePiece tokenizer.model),
then converts it in a fresh process with `codeup convert DIR OUT.gguf --outtype f16` (the
output is really written: ~13.5 GB of free space needed, removed afterwards) and reports
the peak RSS of that process (target, issue 20: under 2 GB whatever the model size) and
the throughput.

    python -m tests.bench.bench_hf_convert [--shape 7b|13b] [--outtype f16] [--layers N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from tests.helpers.hf_builders import sentencepiece_model

SHAPES = {  # n_embd, n_ff, n_head, n_layer (Llama 2)
    "7b": (4096, 11008, 32, 32),
    "13b": (5120, 13824, 40, 40),
}
N_VOCAB = 32000


def checkpoint_tensors(shape: str, n_layer: int | None):
    n_embd, n_ff, n_head, layers = SHAPES[shape]
    names = [("model.embed_tokens.weight", (N_VOCAB, n_embd)), ("lm_head.weight", (N_VOCAB, n_embd)),
             ("model.norm.weight", (n_embd,))]
    for i in range(n_layer or layers):
        p = f"model.layers.{i}."
        names += [(p + "input_layernorm.weight", (n_embd,)), (p + "post_attention_layernorm.weight", (n_embd,))]
        names += [(p + f"self_attn.{x}_proj.weight", (n_embd, n_embd)) for x in "qkvo"]
        names += [(p + "mlp.gate_proj.weight", (n_ff, n_embd)), (p + "mlp.up_proj.weight", (n_ff, n_embd)),
                  (p + "mlp.down_proj.weight", (n_embd, n_ff))]
    return names


def write_sparse_safetensors(path: Path, tensors) -> int:
    header, offset = {}, 0
    for name, shape in tensors:
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        f.truncate(8 + len(head) + offset)  # a hole: zeros that take no disk
    return offset


def write_checkpoint(folder: Path, shape: str, n_layer: int | None) -> int:
    n_embd, n_ff, n_head, layers = SHAPES[shape]
    tensors = checkpoint_tensors(shape, n_layer)
    half = len(tensors) // 2
    weight_map, total = {}, 0
    for i, part in enumerate((tensors[:half], tensors[half:])):
        name = f"model-{i + 1:05d}-of-00002.safetensors"
        total += write_sparse_safetensors(folder / name, part)
        weight_map.update({t: name for t, _ in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    config = {"architectures": ["LlamaForCausalLM"], "hidden_size": n_embd, "intermediate_size": n_ff,
              "num_attention_heads": n_head, "num_key_value_heads": n_head, "num_hidden_layers": n_layer or layers,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": N_VOCAB, "max_position_embeddings": 4096,
              "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16"}
    (folder / "config.json").write_text(json.dumps(config))
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)] + [(f"<0x{i:02X}>", 0.0, 6) for i in range(256)]
    pieces += [(f"\u2581tok{i}", -float(i), 1) for i in range(N_VOCAB - len(pieces))]
    (folder / "tokenizer.model").write_bytes(sentencepiece_model(pieces))
    (folder / "tokenizer_config.json").write_text(json.dumps({"add_bos_token": True, "add_eos_token": False}))
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=SHAPES, default="7b")
    ap.add_argument("--outtype", default="f16")
    ap.add_argument("--layers", type=int, help="fewer layers (a quicker run)")
    ap.add_argument("--keep", metavar="DIR", help="write the checkpoint and output here and keep them")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-hf-"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / f"bench-{args.shape}-hf"
    ckpt.mkdir(exist_ok=True)
    try:
        total = write_checkpoint(ckpt, args.shape, args.layers)
        out = work / f"bench-{args.shape}-{args.outtype}.gguf"
        env = dict(os.environ)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "convert", str(ckpt), str(out), "--outtype", args.outtype,
                        "-q", "-f"], check=True, env=env)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        print(json.dumps({"shape": args.shape, "layers": args.layers, "outtype": args.outtype,
                          "checkpoint_gb": round(total / 1e9, 2), "output_gb": round(out.stat().st_size / 1e9, 2),
                          "seconds": round(seconds, 1), "mb_per_s": round(total / 1e6 / seconds, 1),
                          "peak_rss_mb": round(peak / 1e6), "under_2gb": peak < 2e9}))
        return 0 if peak < 2e9 else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: opening a multi-GB model is instant and lazy.

Writes a sparse Llama-2-shaped GGUF (Q4_0 weights, a 32000-token SentencePiece vocabulary:
3.8 GB (7B) or 7.3 GB (13B) on paper, a few MB on disk), then, in a fresh process, times `open_model_file` and
measures how much the resident set grows. Targets (issue 2): under 0.5 s, under 100 MB.

    python -m tests.bench.bench_open [--shape 7b|13b] [--keep FILE]   (from the repository root)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

from tests.helpers.model_builders import ARRAY, F32, I32, STRING, U32, GGUFBuilder, tensor_nbytes

Q4_0, F32_T = 2, 0


SHAPES = {  # n_embd, n_ff, n_head, n_layer (Llama 2)
    "7b": (4096, 11008, 32, 32),
    "13b": (5120, 13824, 40, 40),
}


def llama_header(shape: str) -> GGUFBuilder:
    n_embd, n_ff, n_head, n_layer = SHAPES[shape]
    n_vocab = 32000
    g = GGUFBuilder()
    g.add("general.architecture", STRING, "llama").add("general.name", STRING, f"bench-{shape}-shape")
    g.add("general.file_type", U32, 2)
    for key, value in (("context_length", 4096), ("embedding_length", n_embd), ("block_count", n_layer),
                       ("feed_forward_length", n_ff), ("attention.head_count", n_head),
                       ("attention.head_count_kv", n_head), ("rope.dimension_count", 128)):
        g.add(f"llama.{key}", U32, value)
    g.add("llama.attention.layer_norm_rms_epsilon", F32, 1e-5)
    g.add("tokenizer.ggml.model", STRING, "llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tokens += [f"\u2581tok{i}" for i in range(n_vocab - len(tokens))]
    g.add("tokenizer.ggml.tokens", ARRAY, tokens, STRING)
    g.add("tokenizer.ggml.scores", ARRAY, [0.0] * n_vocab, F32)
    g.add("tokenizer.ggml.token_type", ARRAY, [2, 3, 3] + [6] * 256 + [1] * (n_vocab - 259), I32)

    def tensor(name, t, shape):
        g.tensors.append((name, t, shape, b""))

    tensor("token_embd.weight", Q4_0, (n_embd, n_vocab))
    for i in range(n_layer):
        tensor(f"blk.{i}.attn_norm.weight", F32_T, (n_embd,))
        for m in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensor(f"blk.{i}.{m}.weight", Q4_0, (n_embd, n_embd))
        tensor(f"blk.{i}.ffn_norm.weight", F32_T, (n_embd,))
        tensor(f"blk.{i}.ffn_gate.weight", Q4_0, (n_embd, n_ff))
        tensor(f"blk.{i}.ffn_up.weight", Q4_0, (n_embd, n_ff))
        tensor(f"blk.{i}.ffn_down.weight", Q4_0, (n_ff, n_embd))
    tensor("output_norm.weight", F32_T, (n_embd,))
    tensor("output.weight", Q4_0, (n_embd, n_vocab))
    return g


def write_sparse_model(path: Path, shape: str) -> int:
    g = llama_header(shape)
    offsets, pos = [], 0
    for name, t, shape, _ in g.tensors:
        offsets.append(pos)
        n = tensor_nbytes(t, shape)
        pos += n + (-n) % g.alignment
    header = g.header_bytes(offsets)
    data_start = len(header) + (-len(header)) % g.alignment
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(data_start + pos)  # a hole: the size is real, the disk use is not
    return data_start + pos


MEASURE = r"""
import json, os, sys, time
import numpy as np
import codeup_tui.engine
from codeup_tui.engine.formats import open_model_file

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

before = rss()
t0 = time.perf_counter()
mf = open_model_file(sys.argv[1])
t1 = time.perf_counter()
after_open = rss()
w = mf.tensor_view("blk.0.ffn_down.weight")  # a view: still nothing read
after_view = rss()
print(json.dumps({"open_s": t1 - t0, "rss_growth_open": after_open - before,
                  "rss_growth_view": after_view - before, "tensors": len(mf.tensors),
                  "file_size": mf.file_size, "view_shape": list(w.shape)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="7b", help="Llama 2 shape (7b: 3.8 GB, 13b: 7.3 GB)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="write the model here and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / f"bench-{args.shape}-q4_0.gguf"
        size = write_sparse_model(path, args.shape)
        runs = []
        for _ in range(args.repeat):
            proc = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True,
                                  cwd=HERE.parent.parent, check=True)
            runs.append(json.loads(proc.stdout))
    opens = sorted(r["open_s"] for r in runs)
    growth = max(r["rss_growth_view"] for r in runs)
    median = opens[len(opens) // 2]
    print(f"model: {size / 1e9:.2f} GB GGUF, {runs[0]['tensors']} tensors, 32000-token vocabulary")
    print(f"open: median {median * 1000:.1f} ms (min {opens[0] * 1000:.1f}, max {opens[-1] * 1000:.1f}) over {len(runs)} fresh processes")
    print(f"RSS growth after open and a tensor view: at most {growth / 1e6:.1f} MB")
    ok = median < 0.5 and growth < 100e6
    print("targets (< 0.5 s, < 100 MB):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Byte-level writers of GGUF and GGML files for tests: well-formed and deliberately broken.

These are independent of engine/: they write the layouts from ggml's GGUF specification
(docs/gguf.md) and llama.cpp's pre-GGUF loader directly, so the readers are checked against a
second implementation rather than against themselves.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# GGUF value type ids
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
               BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}

# (block elements, block bytes) of the weight types, written out independently of engine/
BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
          10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2)}


def tensor_nbytes(type_id: int, shape) -> int:
    blk, size = BLOCKS[type_id]
    n = int(np.prod(shape))
    return n // blk * size


@dataclass
class GGUFBuilder:
    version: int = 3
    alignment: int = 32
    kv: list[tuple[str, int, Any, int | None]] = field(default_factory=list)
    tensors: list[tuple[str, int, tuple[int, ...], bytes]] = field(default_factory=list)

    def add(self, key: str, vtype: int, value: Any, elem_type: int | None = None) -> "GGUFBuilder":
        self.kv.append((key, vtype, value, elem_type))
        return self

    def add_tensor(self, name: str, type_id: int, shape, data: bytes | None = None, seed: int = 0):
        n = tensor_nbytes(type_id, shape)
        if data is None:
            data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
        self.tensors.append((name, type_id, tuple(shape), data))
        return self

    # ---- encoding ----------------------------------------------------------------------
    def _len(self, n: int) -> bytes:
        return struct.pack("<I" if self.version == 1 else "<Q", n)

    def string(self, s: str | bytes) -> bytes:
        b = s.encode() if isinstance(s, str) else s
        return self._len(len(b)) + b

    def value(self, vtype: int, value: Any, elem_type: int | None = None) -> bytes:
        if vtype == STRING:
            return self.string(value)
        if vtype == ARRAY:
            out = struct.pack("<I", elem_type) + self._len(len(value))
            if elem_type == ARRAY:
                return out + b"".join(self.value(ARRAY, v[1], v[0]) for v in value)
            return out + b"".join(self.value(elem_type, v) for v in value)
        return struct.pack(_SCALAR_FMT[vtype], value)

    def header_bytes(self, tensor_offsets: list[int] | None = None) -> bytes:
        out = b"GGUF" + struct.pack("<I", self.version)
        out += self._len(len(self.tensors)) + self._len(len(self.kv))
        for key, vtype, value, et in self.kv:
            out += self.string(key) + struct.pack("<I", vtype) + self.value(vtype, value, et)
        offsets = tensor_offsets or self.offsets()
        for (name, type_id, shape, _), off in zip(self.tensors, offsets):
            out += self.string(name) + struct.pack("<I", len(shape))
            dim = "<I" if self.version == 1 else "<Q"
            out += b"".join(struct.pack(dim, d) for d in shape)
            out += struct.pack("<I", type_id) + struct.pack("<Q", off)
        return out

    def offsets(self) -> list[int]:
        offs, pos = [], 0
        for *_, data in self.tensors:
            offs.append(pos)
            pos += len(data) + (-len(data)) % self.alignment
        return offs

    def build(self) -> bytes:
        out = self.header_bytes()
        out += b"\0" * ((-len(out)) % self.alignment)
        for *_, data in self.tensors:
            out += data + b"\0" * ((-len(data)) % self.alignment)
        return out


def small_llama_gguf(n_vocab: int = 64, n_embd: int = 32, n_head: int = 4, n_head_kv: int = 2,
                     n_ff: int = 64, n_layer: int = 1, version: int = 3) -> GGUFBuilder:
    """A tiny but complete llama GGUF (random F32 weights, SentencePiece-style vocab)."""
    g = GGUFBuilder(version=version)
    g.add("general.architecture", STRING, "llama").add("general.name", STRING, "test-llama")
    g.add("general.file_type", U32, 0)
    g.add("llama.context_length", U32, 256).add("llama.embedding_length", U32, n_embd)
    g.add("llama.block_count", U32, n_layer).add("llama.feed_forward_length", U32, n_ff)
    g.add("llama.attention.head_count", U32, n_head).add("llama.attention.head_count_kv", U32, n_head_kv)
    g.add("llama.attention.layer_norm_rms_epsilon", F32, 1e-5).add("llama.rope.freq_base", F32, 10000.0)
    g.add("tokenizer.ggml.model", STRING, "llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"tok{i}" for i in range(3, n_vocab)]
    g.add("tokenizer.ggml.tokens", ARRAY, tokens, STRING)
    g.add("tokenizer.ggml.scores", ARRAY, [float(-i) for i in range(n_vocab)], F32)
    g.add("tokenizer.ggml.token_type", ARRAY, [2, 3, 3] + [1] * (n_vocab - 3), I32)
    g.add("tokenizer.ggml.bos_token_id", U32, 1).add("tokenizer.ggml.eos_token_id", U32, 2)
    hd = n_embd // n_head
    g.add_tensor("token_embd.weight", 0, (n_embd, n_vocab), seed=1)
    for layer in range(n_layer):
        p = f"blk.{layer}."
        g.add_tensor(p + "attn_norm.weight", 0, (n_embd,), seed=2)
        g.add_tensor(p + "attn_q.weight", 0, (n_embd, n_head * hd), seed=3)
        g.add_tensor(p + "attn_k.weight", 0, (n_embd, n_head_kv * hd), seed=4)
        g.add_tensor(p + "attn_v.weight", 0, (n_embd, n_head_kv * hd), seed=5)
        g.add_tensor(p + "attn_output.weight", 0, (n_head * hd, n_embd), seed=6)
        g.add_tensor(p + "ffn_norm.weight", 0, (n_embd,), seed=7)
        g.add_tensor(p + "ffn_gate.weight", 0, (n_embd, n_ff), seed=8)
        g.add_tensor(p + "ffn_up.weight", 0, (n_embd, n_ff), seed=9)
        g.add_tensor(p + "ffn_down.weight", 0, (n_ff, n_embd), seed=10)
    g.add_tensor("output_norm.weight", 0, (n_embd,), seed=11)
    return g


# ---- GGML (legacy) ----------------------------------------------------------------------
MAGIC = {"ggml": 0x67676D6C, "ggmf": 0x67676D66, "ggjt": 0x67676A74}


@dataclass
class GGMLBuilder:
    kind: str = "ggjt"
    version: int = 3
    hparams: tuple[int, ...] = (8, 256, 256, 4, 1, 64, 0)  # n_vocab n_embd n_mult n_head n_layer n_rot ftype
    vocab: list[tuple[bytes, float]] = field(default_factory=list)
    tensors: list[tuple[str, int, tuple[int, ...], bytes]] = field(default_factory=list)

    def add_tensor(self, name: str, type_id: int, shape, data: bytes | None = None, seed: int = 0):
        n = tensor_nbytes(type_id, shape)
        if data is None:
            data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
        self.tensors.append((name, type_id, tuple(shape), data))
        return self

    def build(self) -> bytes:
        out = struct.pack("<I", MAGIC[self.kind])
        if self.kind != "ggml":
            out += struct.pack("<I", self.version)
        out += struct.pack("<7I", *self.hparams)
        for text, score in self.vocab:
            out += struct.pack("<I", len(text)) + text
            if self.kind != "ggml":
                out += struct.pack("<f", score)
        for name, type_id, shape, data in self.tensors:
            nb = name.encode()
            out += struct.pack("<3I", len(shape), len(nb), type_id)
            out += struct.pack(f"<{len(shape)}I", *shape) + nb
            if self.kind == "ggjt":
                out += b"\0" * ((-len(out)) % 32)
            out += data
        return out


def default_ggml_vocab(n: int) -> list[tuple[bytes, float]]:
    """A 2023-converter-style vocabulary: ids 0-2 special, 3..258 raw bytes, then words."""
    items: list[tuple[bytes, float]] = [(b" \xe2\x81\x87 ", 0.0), (b"", 0.0), (b"", 0.0)]
    for i in range(3, n):
        if i <= 258:
            items.append((bytes([i - 3]), 0.0))
        else:
            items.append((f" w{i}".encode(), -float(i)))
    return items[:n]

"""Random-weight GGUF files with real model shapes (llama, qwen2, qwen3, qwen3moe), for
benchmarks and tests.

    synth_model("/tmp/llama-7b-Q4_K_M.gguf", "7b", "Q4_K_M", seed=0)

The tensors have Llama-2 shapes and llama.cpp's per-tensor type mix for the file type
(`llama_tensor_type`: llama-quantize's rules, engine/quantize/type_mix.py), so a
synthetic 7B Q4_K_M file costs the engine what the real one does. The quant bytes are
random, but every block scale is a finite positive value chosen so that the weights
dequantize to mean 0 and a standard deviation of about `weight_std` (0.02); norms are 1.
The model therefore runs without NaN or inf, and produces nonsense.

Data is generated per chunk of rows from a seeded generator and streamed to the writer, so
a 7 GB file never needs 7 GB of memory; the same seed gives the same file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import UsageError
from .formats.gguf_writer import GGUFValueType, GGUFWriter
from .ggml_types import TYPE_TRAITS, GGMLType
from .quantize.type_mix import FILE_TYPES as ALL_FILE_TYPES
from .quantize.type_mix import FileType, llama_tensor_type, plan_tensor_types, use_more_bits  # noqa: F401 - re-exported

CHUNK_BYTES = 8 << 20  # bytes of tensor data generated at a time
DEFAULT_WEIGHT_STD = 0.02


@dataclass(frozen=True)
class Shape:
    name: str
    n_vocab: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ctx: int = 4096
    rms_eps: float = 1e-5
    rope_freq_base: float = 10000.0
    architecture: str = "llama"
    key_length: int = 0  # head size when it is not n_embd / n_head (qwen3)
    n_expert: int = 0  # mixture of experts (qwen3moe): experts, used per token, their n_ff
    n_expert_used: int = 0
    n_ff_exp: int = 0

    @property
    def head_dim(self) -> int:
        return self.key_length or self.n_embd // self.n_head


SHAPES: dict[str, Shape] = {
    "7b": Shape("7b", n_vocab=32000, n_embd=4096, n_ff=11008, n_layer=32, n_head=32, n_head_kv=32),
    "13b": Shape("13b", n_vocab=32000, n_embd=5120, n_ff=13824, n_layer=40, n_head=40, n_head_kv=40),
    # Qwen2.5-Coder-7B and Qwen3-8B, and Qwen3-(Coder-)30B-A3B: 128 experts of which 8 are read
    # per token (their config.json shapes).
    "qwen2.5-7b": Shape("qwen2.5-7b", n_vocab=152064, n_embd=3584, n_ff=18944, n_layer=28, n_head=28,
                        n_head_kv=4, n_ctx=32768, rms_eps=1e-6, rope_freq_base=1e6, architecture="qwen2"),
    "qwen3-8b": Shape("qwen3-8b", n_vocab=151936, n_embd=4096, n_ff=12288, n_layer=36, n_head=32, n_head_kv=8,
                      n_ctx=40960, rms_eps=1e-6, rope_freq_base=1e6, architecture="qwen3", key_length=128),
    "qwen3-30b-a3b": Shape("qwen3-30b-a3b", n_vocab=151936, n_embd=2048, n_ff=6144, n_layer=48, n_head=32,
                           n_head_kv=4, n_ctx=40960, rms_eps=1e-6, rope_freq_base=1e6, architecture="qwen3moe",
                           key_length=128, n_expert=128, n_expert_used=8, n_ff_exp=768),
    # Small enough for tests (a few MB), with rows that every k-quant accepts.
    "tiny": Shape("tiny", n_vocab=512, n_embd=256, n_ff=768, n_layer=4, n_head=4, n_head_kv=4, n_ctx=512),
}


# llama.cpp's file types and per-tensor type mix: engine/quantize/type_mix.py, shared with
# `codeup quantize`. synth writes no BF16 files (its random weights are F16 or block types).
FILE_TYPES: dict[str, FileType] = {name: ft for name, ft in ALL_FILE_TYPES.items() if ft.default != GGMLType.BF16}


def tensor_plan(shape: Shape, ftype: FileType | str) -> list[tuple[str, GGMLType, tuple[int, ...]]]:
    """(name, type, ggml shape) of every tensor, in file order; the tensors an architecture
    has are the forward pass's (llama.ARCHITECTURES)."""
    from .llama import ARCHITECTURES

    s = shape
    traits = ARCHITECTURES[s.architecture]
    q, kv = s.n_head * s.head_dim, s.n_head_kv * s.head_dim
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (s.n_embd, s.n_vocab))]
    for i in range(s.n_layer):
        b = f"blk.{i}."
        shapes += [
            (b + "attn_norm.weight", (s.n_embd,)),
            (b + "attn_q.weight", (s.n_embd, q)),
            (b + "attn_k.weight", (s.n_embd, kv)),
            (b + "attn_v.weight", (s.n_embd, kv)),
        ]
        if traits.qkv_bias:
            shapes += [(b + "attn_q.bias", (q,)), (b + "attn_k.bias", (kv,)), (b + "attn_v.bias", (kv,))]
        if traits.qk_norm:
            shapes += [(b + "attn_q_norm.weight", (s.head_dim,)), (b + "attn_k_norm.weight", (s.head_dim,))]
        shapes += [(b + "attn_output.weight", (q, s.n_embd)), (b + "ffn_norm.weight", (s.n_embd,))]
        if traits.moe:
            e, f = s.n_expert, s.n_ff_exp
            shapes += [
                (b + "ffn_gate_inp.weight", (s.n_embd, e)),
                (b + "ffn_gate_exps.weight", (s.n_embd, f, e)),
                (b + "ffn_up_exps.weight", (s.n_embd, f, e)),
                (b + "ffn_down_exps.weight", (f, s.n_embd, e)),
            ]
        else:
            shapes += [
                (b + "ffn_gate.weight", (s.n_embd, s.n_ff)),
                (b + "ffn_up.weight", (s.n_embd, s.n_ff)),
                (b + "ffn_down.weight", (s.n_ff, s.n_embd)),
            ]
    shapes += [("output_norm.weight", (s.n_embd,)), ("output.weight", (s.n_embd, s.n_vocab))]
    # llama-quantize's rules, counting attn_v and ffn_down in this (file) order
    types = plan_tensor_types(
        shapes, ftype, n_layer=s.n_layer, n_head=s.n_head, n_head_kv=s.n_head_kv, n_expert=s.n_expert,
        architecture=s.architecture,
    )
    return [(name, t, shp) for (name, shp), t in zip(shapes, types)]


# ---- random blocks with valid scales -------------------------------------------------------
def _k4_scales(sc: int, m: int) -> np.ndarray:
    """Q4_K/Q5_K's 12 packed bytes for the same 6-bit scale `sc` and min `m` in all 8 sub-blocks."""
    lo = np.full(4, (sc & 63) | ((sc >> 4) << 6), np.uint8)
    mid = np.full(4, (m & 63) | ((m >> 4) << 6), np.uint8)
    hi = np.full(4, (sc & 15) | ((m & 15) << 4), np.uint8)
    return np.concatenate([lo, mid, hi])


def _q3k_scales(sc: int) -> np.ndarray:
    """Q3_K's 12 packed bytes for the signed scale `sc` (-32..31) in all 16 groups."""
    v = sc + 32
    lo, hi = v & 15, v >> 4
    return np.array([lo | (lo << 4)] * 8 + [hi | (hi << 2) | (hi << 4) | (hi << 6)] * 4, np.uint8)


@dataclass(frozen=True)
class _Layout:
    """Where a block's f16 fields lie and what makes its weights ~N(0, std)-like.

    With random quants q (uniform over the type's range), x = d * unit_std-normalised q; `d`
    is std / q_std per element, `min_ratio` the f16 min (or dmin) as a multiple of d that
    centres the block, and `fixed` the bytes (sub-block scales) that are set, not random."""

    d_at: int
    q_std: float  # std of the dequantized value for d = 1 (sub-block scales included)
    min_at: int | None = None
    min_ratio: float = 0.0
    fixed: tuple[tuple[int, bytes], ...] = ()


def _uniform_std(levels: int) -> float:
    return float(np.sqrt((levels * levels - 1) / 12.0))


_LAYOUTS: dict[GGMLType, _Layout] = {
    # x = d (q - 8)
    GGMLType.Q4_0: _Layout(0, _uniform_std(16)),
    # x = d q + m; m = -7.5 d centres it (m is the block minimum, negative)
    GGMLType.Q4_1: _Layout(0, _uniform_std(16), 2, -7.5),
    GGMLType.Q5_0: _Layout(0, _uniform_std(32)),
    GGMLType.Q5_1: _Layout(0, _uniform_std(32), 2, -15.5),
    GGMLType.Q8_0: _Layout(0, _uniform_std(256)),
    # x = d (sc&15) q - dmin (sc>>4), q in 0..3; sc = m = 8: dmin = 1.5 d
    GGMLType.Q2_K: _Layout(80, 8 * _uniform_std(4), 82, 1.5, ((0, bytes([0x88] * 16)),)),
    # x = d sc q, q in -4..3; sc = 16
    GGMLType.Q3_K: _Layout(108, 16 * _uniform_std(8), fixed=((96, _q3k_scales(16).tobytes()),)),
    # x = d sc q - dmin m; sc = m = 32, q in 0..15: dmin = 7.5 d
    GGMLType.Q4_K: _Layout(0, 32 * _uniform_std(16), 2, 7.5, ((4, _k4_scales(32, 32).tobytes()),)),
    # sc = m = 16, q in 0..31: dmin = 15.5 d
    GGMLType.Q5_K: _Layout(0, 16 * _uniform_std(32), 2, 15.5, ((4, _k4_scales(16, 16).tobytes()),)),
    # x = d scales[g] (q - 32); scales = 8
    GGMLType.Q6_K: _Layout(208, 8 * _uniform_std(64), fixed=((192, bytes([8] * 16)),)),
}

SUPPORTED_WEIGHT_TYPES = frozenset(_LAYOUTS) | {GGMLType.F32, GGMLType.F16}


def random_blocks(gtype: GGMLType, n_blocks: int, rng: np.random.Generator, std: float = DEFAULT_WEIGHT_STD) -> np.ndarray:
    """`n_blocks` random blocks of a quantized type, (n_blocks, type_size) uint8, whose
    scales are finite and positive and whose weights have mean ~0 and std ~`std`."""
    layout = _LAYOUTS[gtype]
    size = TYPE_TRAITS[gtype].type_size
    n_bytes = n_blocks * size
    raw = rng.bit_generator.random_raw((n_bytes + 7) // 8).view(np.uint8)[:n_bytes]
    blocks = raw.reshape(n_blocks, size)
    # Per-block scale jitter in [0.75, 1.25), so blocks differ as real ones do.
    d = (std / layout.q_std) * (0.75 + 0.5 * rng.random(n_blocks, dtype=np.float32))
    blocks[:, layout.d_at : layout.d_at + 2].view(np.float16)[:, 0] = d.astype(np.float16)
    if layout.min_at is not None:
        blocks[:, layout.min_at : layout.min_at + 2].view(np.float16)[:, 0] = (layout.min_ratio * d).astype(np.float16)
    for at, value in layout.fixed:
        blocks[:, at : at + len(value)] = np.frombuffer(value, np.uint8)
    return blocks


def random_tensor_chunks(
    gtype: GGMLType, shape: tuple[int, ...], rng: np.random.Generator, std: float = DEFAULT_WEIGHT_STD,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[np.ndarray]:
    """A tensor's data as chunks of whole rows, generated as they are asked for."""
    traits = TYPE_TRAITS[gtype]
    blocks_per_row = shape[0] // traits.block_size
    n_rows = int(np.prod(shape[1:], dtype=np.int64))
    row_bytes = blocks_per_row * traits.type_size
    rows_per_chunk = max(1, chunk_bytes // row_bytes)
    for first in range(0, n_rows, rows_per_chunk):
        n = min(rows_per_chunk, n_rows - first)
        if gtype in _LAYOUTS:
            yield random_blocks(gtype, n * blocks_per_row, rng, std)
        elif gtype in (GGMLType.F32, GGMLType.F16):
            values = rng.standard_normal(n * shape[0], dtype=np.float32) * np.float32(std)
            yield values.astype(np.float16 if gtype == GGMLType.F16 else np.float32)
        else:
            raise UsageError(f"cannot make random {gtype.name} weights")


# ---- vocabulary -----------------------------------------------------------------------------
@dataclass
class Vocabulary:
    """`tokenizer.*` metadata to write: (key, value, value type or None to infer)."""

    source: str  # a path, or "generated"
    n_vocab: int
    items: list[tuple[str, object, GGUFValueType | None]] = field(default_factory=list)


def load_vocabulary(path: str | Path) -> Vocabulary:
    """Every `tokenizer.*` key of a GGUF file (a vocab-only file will do), with its type."""
    import mmap

    from .errors import ModelFileError
    from .formats.gguf_reader import GGUFParser

    p = Path(path)
    try:
        with open(p, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise UsageError(f"cannot read the vocabulary file {p}: {e.strerror or e}") from None
    except ValueError:
        raise UsageError(f"the vocabulary file {p} is empty") from None
    try:
        if mm[:4] != b"GGUF":
            raise ModelFileError(p, "not a GGUF file: --vocab needs a GGUF vocabulary")
        _, metadata, types, *_ = GGUFParser(mm, str(p)).parse()
    finally:
        mm.close()
    tokens = metadata.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens:
        raise UsageError(f"{p} has no tokenizer.ggml.tokens")
    items = []
    for key, value in metadata.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = GGUFValueType(types[key])
        items.append((key, value, None if vtype == GGUFValueType.ARRAY else vtype))
    return Vocabulary(str(p), len(tokens), items)


def generated_vocabulary(n_vocab: int) -> Vocabulary:
    """A SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>,
    then pieces (characters, ▁-prefixed characters, letter pairs, triples...) by falling score."""
    if n_vocab < 260:
        raise UsageError(f"a generated vocabulary needs at least 260 tokens, not {n_vocab}")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    chars = [chr(c) for c in range(33, 127)]
    lower = [chr(c) for c in range(ord("a"), ord("z") + 1)]

    def pieces() -> Iterator[str]:
        yield "▁"
        yield from chars
        yield from ("▁" + c for c in chars)
        width = 2
        while True:
            grams = [""]
            for _ in range(width):
                grams = [g + c for g in grams for c in lower]
            for g in grams:
                yield "▁" + g
                yield g
            width += 1

    for piece in pieces():
        if len(tokens) >= n_vocab:
            break
        tokens.append(piece)
        types.append(1)
    scores = np.zeros(n_vocab, np.float32)
    scores[259:] = -np.arange(n_vocab - 259, dtype=np.float32)
    items = [
        ("tokenizer.ggml.model", "llama", GGUFValueType.STRING),
        ("tokenizer.ggml.pre", "default", GGUFValueType.STRING),
        ("tokenizer.ggml.tokens", tokens, None),
        ("tokenizer.ggml.scores", scores, None),
        ("tokenizer.ggml.token_type", np.array(types, np.int32), None),
        ("tokenizer.ggml.bos_token_id", 1, GGUFValueType.U32),
        ("tokenizer.ggml.eos_token_id", 2, GGUFValueType.U32),
        ("tokenizer.ggml.unknown_token_id", 0, GGUFValueType.U32),
        ("tokenizer.ggml.add_bos_token", True, GGUFValueType.BOOL),
        ("tokenizer.ggml.add_eos_token", False, GGUFValueType.BOOL),
    ]
    return Vocabulary("generated", n_vocab, items)


def resolve_vocabulary(vocab: Vocabulary | str | Path | None, shape: Shape) -> Vocabulary:
    """`vocab`: a GGUF path whose vocabulary is copied (a real model's, e.g. llama.cpp's
    ggml-vocab-llama-spm.gguf for the Llama shapes); None or "generated": a generated SPM
    vocabulary of the shape's size."""
    if isinstance(vocab, Vocabulary):
        return vocab
    if vocab is None or vocab == "generated":
        return generated_vocabulary(shape.n_vocab)
    return load_vocabulary(vocab)


# ---- the model file -----------------------------------------------------------------------
@dataclass(frozen=True)
class SynthResult:
    path: Path
    shape: Shape
    file_type: str
    vocabulary: str
    file_bytes: int
    n_params: int
    seconds: float
    tensor_types: dict[str, str]

    @property
    def mb_per_second(self) -> float:
        return self.file_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def plan_bytes(plan: list[tuple[str, GGMLType, tuple[int, ...]]]) -> int:
    """Bytes of tensor data a plan makes (the file adds its header and padding)."""
    total = 0
    for _, gtype, shape in plan:
        traits = TYPE_TRAITS[gtype]
        total += int(np.prod(shape, dtype=np.int64)) // traits.block_size * traits.type_size
    return total


def get_shape(shape: Shape | str, n_layer: int | None = None) -> Shape:
    if isinstance(shape, str):
        try:
            shape = SHAPES[shape.lower()]
        except KeyError:
            raise UsageError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})") from None
    if n_layer is not None:
        if n_layer < 1:
            raise UsageError(f"the layer count must be at least 1, got {n_layer}")
        shape = replace(shape, n_layer=n_layer)
    return shape


def get_file_type(name: str) -> FileType:
    try:
        return FILE_TYPES[name.upper()]
    except KeyError:
        raise UsageError(f"unknown type {name!r} (known: {', '.join(FILE_TYPES)})") from None


def synth_model(
    out: str | Path,
    shape: Shape | str = "tiny",
    file_type: str = "Q4_K_M",
    *,
    seed: int = 0,
    vocab: Vocabulary | str | Path | None = None,
    n_layer: int | None = None,
    weight_std: float = DEFAULT_WEIGHT_STD,
    progress: Callable[[int, int, str], None] | None = None,
) -> SynthResult:
    """Write a random-weight llama GGUF (see the module docstring). Returns what was written."""
    shp = get_shape(shape, n_layer)
    ft = get_file_type(file_type)
    if not (0 < weight_std < 1e3):
        raise UsageError(f"the weight standard deviation must be positive and small, got {weight_std}")
    if seed < 0:
        raise UsageError(f"the seed must be a non-negative integer, got {seed}")
    vocabulary = resolve_vocabulary(vocab, shp)
    shp = replace(shp, n_vocab=vocabulary.n_vocab)
    plan = tensor_plan(shp, ft)

    a = shp.architecture
    w = GGUFWriter(out)
    w.add_metadata("general.architecture", a)
    w.add_metadata("general.name", f"synth-{a}-{shp.name}-{ft.name}")
    w.add_metadata("general.file_type", ft.ftype, type=GGUFValueType.U32)
    if ft.default not in (GGMLType.F32, GGMLType.F16):
        w.add_metadata("general.quantization_version", 2, type=GGUFValueType.U32)
    u32 = GGUFValueType.U32
    w.add_metadata(f"{a}.vocab_size", shp.n_vocab, type=u32)
    w.add_metadata(f"{a}.context_length", shp.n_ctx, type=u32)
    w.add_metadata(f"{a}.embedding_length", shp.n_embd, type=u32)
    w.add_metadata(f"{a}.block_count", shp.n_layer, type=u32)
    w.add_metadata(f"{a}.feed_forward_length", shp.n_ff, type=u32)
    w.add_metadata(f"{a}.attention.head_count", shp.n_head, type=u32)
    w.add_metadata(f"{a}.attention.head_count_kv", shp.n_head_kv, type=u32)
    w.add_metadata(f"{a}.rope.dimension_count", shp.head_dim, type=u32)
    if shp.key_length:
        w.add_metadata(f"{a}.attention.key_length", shp.key_length, type=u32)
        w.add_metadata(f"{a}.attention.value_length", shp.key_length, type=u32)
    if shp.n_expert:
        w.add_metadata(f"{a}.expert_count", shp.n_expert, type=u32)
        w.add_metadata(f"{a}.expert_used_count", shp.n_expert_used, type=u32)
        w.add_metadata(f"{a}.expert_feed_forward_length", shp.n_ff_exp, type=u32)
    w.add_metadata(f"{a}.attention.layer_norm_rms_epsilon", shp.rms_eps, type=GGUFValueType.F32)
    w.add_metadata(f"{a}.rope.freq_base", shp.rope_freq_base, type=GGUFValueType.F32)
    w.add_metadata("codeup.synth.shape", shp.name)
    w.add_metadata("codeup.synth.seed", seed, type=GGUFValueType.U64)
    w.add_metadata("codeup.synth.weight_std", weight_std, type=GGUFValueType.F32)
    for key, value, vtype in vocabulary.items:
        w.add_metadata(key, value, type=vtype)

    sources = []
    for index, (name, gtype, tshape) in enumerate(plan):
        w.add_tensor_info(name, gtype, tshape)
        sources.append(_tensor_source(name, gtype, tshape, seed, index, weight_std))
    start = time.perf_counter()
    w.write(sources, progress=progress)
    seconds = time.perf_counter() - start
    return SynthResult(
        path=Path(out), shape=shp, file_type=ft.name, vocabulary=vocabulary.source,
        file_bytes=Path(out).stat().st_size, n_params=sum(int(np.prod(s)) for _, _, s in plan),
        seconds=seconds, tensor_types={name: t.name for name, t, _ in plan},
    )


def _tensor_source(name: str, gtype: GGMLType, shape, seed: int, index: int, std: float):
    if name.endswith("_norm.weight"):
        return lambda: np.ones(int(np.prod(shape)), np.float32)
    # One generator per tensor: a tensor's bytes depend only on (seed, its index).
    return lambda: random_tensor_chunks(gtype, shape, np.random.default_rng([seed, index]), std)

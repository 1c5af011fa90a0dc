"""Legacy GGML llama files: 'ggjt' v3 fully (the `*.ggmlv3.*.bin` files of mid-2023), and the
older 'ggjt' v1/v2, 'ggmf' and unversioned 'ggml' where their bytes mean what they mean today.

Layout: llama.cpp's loader before GGUF (llama.cpp and ggml.c of August 2023, and the ggjt
v1/v2 ones of May 2023).
The result is described in GGUF terms (tensor names, metadata keys, vocabulary text), the
way llama.cpp's convert_llama_ggml_to_gguf.py describes it, so the rest of the engine never
knows which format a model came from.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np

from ..ggml_types import GGML_V3_TYPES, TYPE_TRAITS, GGMLType, file_type_name, ggml_type_name
from .byte_cursor import ByteCursor
from .hparams import GGML_DEFAULTS, HParamOverrides
from .string_array import StringArray, read_uints

MAGIC_GGML = 0x67676D6C  # unversioned, no scores, no padding
MAGIC_GGMF = 0x67676D66  # versioned (1), scores, no padding
MAGIC_GGJT = 0x67676A74  # versioned (1..3), scores, 32-byte aligned tensor data
LEGACY_MAGICS = {MAGIC_GGML: "ggml", MAGIC_GGMF: "ggmf", MAGIC_GGJT: "ggjt"}
OTHER_MAGICS = {0x67676C61: "a GGML LoRA adapter ('ggla')", 0x6767736E: "a llama.cpp session file ('ggsn')"}
GGJT_ALIGNMENT = 32
SENTENCEPIECE_SPACE = "\u2581"

# Token types as GGUF numbers them.
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6

_LAYER_NAMES = {
    "attention_norm": "attn_norm",
    "attention.wq": "attn_q",
    "attention.wk": "attn_k",
    "attention.wv": "attn_v",
    "attention.wo": "attn_output",
    "ffn_norm": "ffn_norm",
    "feed_forward.w1": "ffn_gate",
    "feed_forward.w2": "ffn_down",
    "feed_forward.w3": "ffn_up",
}
_GLOBAL_NAMES = {
    "tok_embeddings.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "output.weight": "output.weight",
}
_LAYER_RE = re.compile(r"layers\.(\d+)\.(.+)\.weight")
# The smallest tensor record a layer can have: n_dims, name length, type, one dimension
# (4 bytes each), the shortest layer tensor name, and no data (a zero dimension).
_MIN_LAYER_RECORD = 16 + len("layers.0.ffn_norm.weight")

# Before ggjt v3 the Q4_0, Q4_1 and Q8_0 blocks had f32 scales; before ggjt v2 every
# quantized block had its nibbles interleaved. Which tensor types still read correctly:
_READABLE_BEFORE_V3 = {
    ("ggjt", 2): {GGMLType.F32, GGMLType.F16, GGMLType.Q5_0, GGMLType.Q5_1},
}
_UNQUANTIZED = {GGMLType.F32, GGMLType.F16}


def gguf_tensor_name(name: str) -> str | None:
    return _gguf_name_and_layer(name)[0]


def _gguf_name_and_layer(name: str) -> tuple[str | None, int | None]:
    """The GGUF name of a GGML tensor and its layer (None for the global tensors)."""
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name], None
    m = _LAYER_RE.fullmatch(name)
    if m and m.group(2) in _LAYER_NAMES:
        layer = int(m.group(1))
        return f"blk.{layer}.{_LAYER_NAMES[m.group(2)]}.weight", layer
    return None, None


def _gguf_token(token_id: int, raw: bytes) -> tuple[str, int]:
    """A 2023 vocabulary entry as GGUF stores it: (text, token type)."""
    if token_id == 0:
        return "<unk>", TOKEN_UNKNOWN
    if token_id == 1:
        return "<s>", TOKEN_CONTROL
    if token_id == 2:
        return "</s>", TOKEN_CONTROL
    if not raw:
        return "", TOKEN_CONTROL
    if 3 <= token_id <= 258 and len(raw) == 1:
        return f"<0x{raw[0]:02X}>", TOKEN_BYTE
    text = raw.decode("utf-8", "surrogateescape")
    return text.replace(" ", SENTENCEPIECE_SPACE), TOKEN_NORMAL


def _vocab_text(token_id: int, raw: bytes) -> str:
    return _gguf_token(token_id, bytes(raw))[0]


def _scan_vocab(cur: ByteCursor, n_vocab: int, has_scores: bool) -> StringArray:
    """Where the vocabulary lies (u32 length, bytes, f32 score per token); its texts are
    built when the tokenizer reads them, after the model's checks."""
    return StringArray.scan(cur, n_vocab, 4, lambda i: f"token {i}", trailer=4 if has_scores else 0,
                            decode=_vocab_text)


def _vocab_scores_and_types(buf, tokens: StringArray, has_scores: bool):
    """Per-token scores and GGUF token types, read once the file has passed its checks."""
    n_vocab = len(tokens)
    scores = np.zeros(n_vocab, dtype=np.float32)
    types = np.full(n_vocab, TOKEN_NORMAL, dtype=np.int32)
    u8 = np.frombuffer(buf, dtype=np.uint8)
    for index, start, length in tokens.walk():
        if has_scores:  # the f32 right after the text
            scores[index] = read_uints(u8, start + length, 4).astype(np.uint32).view(np.float32)
        types[index[length == 0]] = TOKEN_CONTROL
    for i in range(min(n_vocab, 259)):  # the special and byte tokens depend on their text
        types[i] = _gguf_token(i, tokens.raw(i))[1]
    return scores, types


def parse_ggml(buf, path: str, overrides: HParamOverrides):
    cur = ByteCursor(buf, path)
    magic = cur.u32("magic")
    kind = LEGACY_MAGICS[magic]
    if kind == "ggml":
        version = 0
    else:
        version = cur.u32("version")
        known = (1,) if kind == "ggmf" else (1, 2, 3)
        if version not in known:
            raise cur.fail(f"unsupported {kind} version {version} (known: {', '.join(map(str, known))})")
    label = f"{kind} v{version}" if kind != "ggml" else "ggml (unversioned)"

    names = ("n_vocab", "n_embd", "n_mult", "n_head", "n_layer", "n_rot", "ftype")
    header = {n: cur.u32(f"hyperparameter {n}") for n in names}
    if header["n_head"] == 0 or header["n_embd"] == 0 or header["n_embd"] % header["n_head"]:
        raise cur.fail(f"inconsistent hyperparameters: n_embd {header['n_embd']}, n_head {header['n_head']}")

    # Vocabulary: u32 length, bytes, f32 score (no score in unversioned files).
    has_scores = kind != "ggml"
    n_vocab = header["n_vocab"]
    cur.require_count(n_vocab, 8 if has_scores else 4, "vocabulary entry")
    tokens = _scan_vocab(cur, n_vocab, has_scores)

    # n_layer drives how many tensor names are expected: an untrusted count, so it must fit
    # in what is left of the file before anything is built from it.
    n_layer = header["n_layer"]
    if n_layer * len(_LAYER_NAMES) * _MIN_LAYER_RECORD > cur.remaining:
        raise cur.fail(
            f"corrupt: n_layer {n_layer} needs at least {n_layer * len(_LAYER_NAMES)} tensor "
            f"records, which cannot fit in the {cur.remaining} bytes left after the vocabulary"
        )

    tensors = []
    seen = set()
    while cur.remaining > 0:
        start = cur.pos
        n_dims = cur.u32("tensor dimension count")
        name_len = cur.u32("tensor name length")
        type_id = cur.u32("tensor type")
        if not 1 <= n_dims <= 4:
            raise cur.fail(f"tensor record at byte {start} has {n_dims} dimensions (1 to 4 allowed)")
        shape = tuple(cur.u32("tensor dimensions") for _ in range(n_dims))
        raw_name = cur.raw(name_len, "tensor name")
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise cur.fail(f"tensor name at byte {cur.pos - name_len} is not valid UTF-8") from None
        gguf_name, layer = _gguf_name_and_layer(name)
        if gguf_name is None:
            raise cur.fail(f"unknown tensor {name!r} in a GGML llama file")
        if gguf_name in seen:
            raise cur.fail(f"duplicate tensor {name!r}")
        if layer is not None and layer >= n_layer:
            # Checked here so that no more than the 9 x n_layer + 3 expected records are kept.
            raise cur.fail(f"tensor {gguf_name} belongs to a layer beyond n_layer {n_layer}")
        seen.add(gguf_name)
        try:
            gtype = GGMLType(type_id)
        except ValueError:
            gtype = None
        if gtype not in GGML_V3_TYPES:
            raise cur.fail(f"tensor {name} has type id {type_id} ({ggml_type_name(type_id)}), which GGML files never used")
        if (kind, version) != ("ggjt", 3):
            readable = _READABLE_BEFORE_V3.get((kind, version), _UNQUANTIZED)
            if gtype not in readable:
                raise cur.fail(
                    f"{label} file with {gtype.name} tensors: that quantization's block layout "
                    "changed before ggjt v3 (May 2023), so its bytes cannot be read today; "
                    "re-quantize from the F16 original (codeup quantize) or re-convert the "
                    "original weights with llama.cpp's convert_hf_to_gguf.py"
                )
        traits = TYPE_TRAITS[gtype]
        n_elements = int(np.prod(shape, dtype=object))
        if shape[0] % traits.block_size:
            raise cur.fail(f"tensor {name}: row length {shape[0]} is not a multiple of the {gtype.name} block size")
        if kind == "ggjt":
            cur.skip_to_alignment(GGJT_ALIGNMENT)
        nbytes = n_elements // traits.block_size * traits.type_size
        cur.need(nbytes, f"data of tensor {name}")
        tensors.append((gguf_name, gtype, shape, cur.pos, nbytes))
        cur.pos += nbytes

    _check_complete(cur, n_layer, seen)
    _check_dimensions(cur, header, tensors)
    scores, types = _vocab_scores_and_types(buf, tokens, has_scores)
    metadata = _gguf_metadata(cur, header, tensors, tokens, scores, types, overrides)
    return label, header, metadata, tensors


def _check_complete(cur: ByteCursor, n_layer: int, names: set[str]) -> None:
    """GGML files carry no tensor count: a file cut between two tensor records would look
    whole. A llama file has a known set of tensors; check it is all there.

    n_layer was checked against the file's size and every record against n_layer, so the
    expected names cost no more than the records that were read could."""
    expected = set(_GLOBAL_NAMES.values())
    for layer in range(n_layer):
        expected.update(f"blk.{layer}.{part}.weight" for part in _LAYER_NAMES.values())
    missing = expected - names
    if missing:
        first = min(missing, key=lambda n: (len(n), n))
        raise cur.fail(
            f"{len(missing)} of the model's {len(expected)} tensors are missing (first: {first}); "
            "the file is truncated or not a complete llama model"
        )
    extra = names - expected
    if extra:
        raise cur.fail(f"tensor {sorted(extra)[0]} belongs to a layer beyond n_layer {n_layer}")


def _check_dimensions(cur: ByteCursor, header: dict[str, int], tensors) -> None:
    """The header's n_vocab and n_embd must be what the token embeddings hold: the rest of
    the engine sizes its buffers by them."""
    for gguf_name, _gtype, shape, _offset, _nbytes in tensors:
        if gguf_name == "token_embd.weight":
            if shape != (header["n_embd"], header["n_vocab"]):
                raise cur.fail(
                    f"the header says n_embd {header['n_embd']} and n_vocab {header['n_vocab']}, "
                    f"but tok_embeddings.weight has shape {list(shape)}"
                )
            return


def _gguf_metadata(cur, header, tensors, tokens, scores, types, overrides) -> dict[str, Any]:
    by_name = {t[0]: t for t in tensors}
    n_embd, n_head = header["n_embd"], header["n_head"]
    head_dim = n_embd // n_head
    # n_ff: the 2023 loader derived it from n_mult, whose value depended on the converter;
    # the shape of the first feed-forward matrix is the truth (as convert_llama_ggml_to_gguf).
    w1 = by_name.get("blk.0.ffn_gate.weight")
    if w1 is not None and len(w1[2]) == 2:
        n_ff = w1[2][1]
    else:
        n_mult = max(header["n_mult"], 1)
        n_ff = ((2 * (4 * n_embd) // 3 + n_mult - 1) // n_mult) * n_mult
    # Grouped-query attention was not stored: read it off the K projection's shape.
    wk = by_name.get("blk.0.attn_k.weight")
    if wk is not None and len(wk[2]) == 2:
        if wk[2][1] % head_dim:
            raise cur.fail(f"attention K width {wk[2][1]} is not a multiple of the head size {head_dim}")
        n_head_kv = wk[2][1] // head_dim
    else:
        n_head_kv = n_head // (overrides.gqa or 1)

    def pick(name):
        value = getattr(overrides, name)
        return value if value else getattr(GGML_DEFAULTS, name)

    md: dict[str, Any] = {
        "general.architecture": "llama",
        "general.file_type": header["ftype"],
        "llama.context_length": pick("context_length"),
        "llama.embedding_length": n_embd,
        "llama.block_count": header["n_layer"],
        "llama.feed_forward_length": n_ff,
        "llama.rope.dimension_count": head_dim,
        "llama.attention.head_count": n_head,
        "llama.attention.head_count_kv": n_head_kv,
        "llama.attention.layer_norm_rms_epsilon": pick("rms_eps"),
        "llama.rope.freq_base": pick("rope_freq_base"),
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
    }
    scale = pick("rope_freq_scale")
    if scale != 1.0:
        md["llama.rope.scaling.type"] = "linear"
        md["llama.rope.scaling.factor"] = 1.0 / scale
    md["general.description"] = (
        f"read from a legacy GGML file ({file_type_name(header['ftype'])}); "
        "context length, RMS epsilon and RoPE were not stored and come from options or defaults"
    )
    return md

"""A Hugging Face tokenizer as GGUF `tokenizer.ggml.*` metadata, as llama.cpp's converter
writes it: SentencePiece (`tokenizer.model`) or byte-level BPE (`tokenizer.json`), then the
special tokens, add-BOS/EOS flags and chat template of `tokenizer_config.json`/`config.json`.

`tokenizer.model` is a protobuf (sentencepiece's ModelProto); only its pieces are needed
(field 1: piece text, score, type), read here with a small wire-format decoder instead of
the sentencepiece package.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError

# GGUF token types (llama.cpp's llama_token_type), which sentencepiece's piece types equal.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPECIAL_TYPES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
SPECIAL_ID_KEYS = {
    "bos": "tokenizer.ggml.bos_token_id", "eos": "tokenizer.ggml.eos_token_id",
    "unk": "tokenizer.ggml.unknown_token_id", "sep": "tokenizer.ggml.seperator_token_id",  # llama.cpp's spelling
    "pad": "tokenizer.ggml.padding_token_id", "cls": "tokenizer.ggml.cls_token_id",
    "mask": "tokenizer.ggml.mask_token_id",
}
ADD_KEYS = {"bos": "tokenizer.ggml.add_bos_token", "eos": "tokenizer.ggml.add_eos_token", "sep": "tokenizer.ggml.add_sep_token"}


@dataclass
class Vocab:
    """GGUF keys in the order llama.cpp writes them: (key, value, value type, element type)."""

    entries: list[tuple[str, Any, str, str | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, value: Any, vtype: str, etype: str | None = None) -> None:
        self.entries.append((key, value, vtype, etype))


def _json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(path, f"unreadable JSON ({e})") from None
    return data if isinstance(data, dict) else {}


# ---- protobuf --------------------------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes):
    """(field number, wire type, value) of each field of one message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated message")
        yield num, wire, value


def read_sentencepiece(path: Path) -> list[tuple[str, float, int]]:
    """(piece, score, sentencepiece type) of every piece of a tokenizer.model."""
    try:
        data = path.read_bytes()
        pieces = []
        for num, wire, value in _fields(data):
            if num != 1 or wire != 2:
                continue
            text, score, ptype = "", 0.0, NORMAL
            for n, w, v in _fields(value):
                if n == 1 and w == 2:
                    text = v.decode("utf-8")
                elif n == 2 and w == 5:
                    (score,) = struct.unpack("<f", v)
                elif n == 3 and w == 0:
                    ptype = v
            pieces.append((text, score, ptype))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(path, f"not a SentencePiece model ({e})") from None
    if not pieces:
        raise ModelFileError(path, "not a SentencePiece model (no pieces)")
    return pieces


# ---- the vocabularies ------------------------------------------------------------------------
def looks_special(token: str) -> bool:
    return (
        token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (token.startswith("<|") and token.endswith("|>"))
        or (token.startswith("<\uff5c") and token.endswith("\uff5c>"))
        or (token.startswith("<start_of_") and token.endswith(">"))
    )


def sentencepiece_vocab(folder: Path, vocab_size: int | None) -> tuple[list[str], list[float], list[int]]:
    pieces = read_sentencepiece(folder / "tokenizer.model")
    n = vocab_size if vocab_size is not None else len(pieces)
    tokens = [f"[PAD{i}]" for i in range(n)]  # ids the model has and the tokenizer lacks
    scores = [-10000.0] * n
    types = [UNUSED] * n
    for i, (text, score, ptype) in enumerate(pieces[:n]):
        tokens[i], scores[i] = text, score
        # sentencepiece's user-defined pieces count as normal ones in llama.cpp's converter
        types[i] = ptype if ptype in (UNKNOWN, CONTROL, UNUSED, BYTE) else NORMAL
    for text, tid in _json(folder / "added_tokens.json").items():
        if isinstance(tid, int) and 0 <= tid < n:
            tokens[tid], scores[tid], types[tid] = text, -1000.0, USER_DEFINED
    decoder = _json(folder / "tokenizer_config.json").get("added_tokens_decoder", {})
    for key, data in (decoder.items() if isinstance(decoder, dict) else ()):
        try:
            tid, text = int(key), data["content"]
        except (ValueError, KeyError, TypeError):
            continue
        if not 0 <= tid < n:
            continue
        if data.get("special") or looks_special(text):
            types[tid] = CONTROL
        else:
            text = text.replace("\u2581", " ")
            types[tid] = USER_DEFINED
        tokens[tid], scores[tid] = text, -1000.0
    return tokens, scores, types


def _pre_tokenizer_name(tok: dict) -> str | None:
    """llama.cpp names the pre-tokenizer by hashing how transformers tokenizes a test text;
    without transformers, the split regexes in tokenizer.json tell the known ones apart."""
    pre = tok.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if isinstance(pre, dict) else []
    patterns = []
    for s in steps:
        if isinstance(s, dict) and s.get("type") == "Split":
            p = s.get("pattern", {})
            patterns.append(p.get("Regex") or p.get("String") or "" if isinstance(p, dict) else "")
    joined = "".join(patterns)
    if r"[^\r\n\p{L}\p{N}]?\p{L}+" in joined:
        return "llama-bpe" if r"\p{N}{1,3}" in joined else "qwen2"
    if not patterns and any(isinstance(s, dict) and s.get("type") == "ByteLevel" and s.get("use_regex", True) for s in steps):
        return "gpt-2"
    return None


def bpe_vocab(folder: Path, vocab_size: int | None) -> tuple[list[str], list[int], list[str], str | None]:
    path = folder / "tokenizer.json"
    tok = _json(path)
    model = tok.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ModelFileError(path, "not a BPE tokenizer.json (model.type is not BPE)")
    reverse = {int(i): t for t, i in model["vocab"].items()}
    added = {}
    for a in tok.get("added_tokens", []):
        if isinstance(a, dict) and isinstance(a.get("id"), int):
            reverse[a["id"]] = a["content"]
            added[a["id"]] = a
    n = vocab_size if vocab_size is not None else (max(reverse) + 1 if reverse else 0)
    tokens, types = [], []
    for i in range(n):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
            continue
        text = reverse[i]
        if i in added:
            if added[i].get("special") or looks_special(text):
                types.append(CONTROL)
            else:
                text = text.replace("\u2581", " ")
                types.append(USER_DEFINED)
        else:
            types.append(NORMAL)
        tokens.append(text)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return tokens, types, merges, _pre_tokenizer_name(tok)


def build_vocab(folder: Path, config: dict, llama: bool = False) -> Vocab:
    """The tokenizer keys. `llama`: llama.cpp's LlamaModel extras (CodeLlama's infill
    tokens, tokenizer_config's add_prefix_space)."""
    v = Vocab()
    vocab_size = config.get("vocab_size") if isinstance(config.get("vocab_size"), int) else None
    merges: list[str] = []
    added_tokens: list[dict] = []
    if (folder / "tokenizer.model").is_file():
        tokens, scores, types = sentencepiece_vocab(folder, vocab_size)
        v.add("tokenizer.ggml.model", "llama", "string")
        v.add("tokenizer.ggml.pre", "default", "string")
        v.add("tokenizer.ggml.tokens", tokens, "array", "string")
        v.add("tokenizer.ggml.scores", np.asarray(scores, dtype=np.float32), "array", "f32")
        v.add("tokenizer.ggml.token_type", np.asarray(types, dtype=np.int32), "array", "i32")
        if (folder / "tokenizer.json").is_file():
            added_tokens = _json(folder / "tokenizer.json").get("added_tokens", []) or []
    elif (folder / "tokenizer.json").is_file():
        tokens, types, merges, pre = bpe_vocab(folder, vocab_size)
        if pre is None:
            pre = "default"
            v.notes.append("unknown BPE pre-tokenizer in tokenizer.json: wrote tokenizer.ggml.pre = default")
        added_tokens = _json(folder / "tokenizer.json").get("added_tokens", []) or []
        v.add("tokenizer.ggml.model", "gpt2", "string")
        v.add("tokenizer.ggml.pre", pre, "string")
        v.add("tokenizer.ggml.tokens", tokens, "array", "string")
        v.add("tokenizer.ggml.token_type", np.asarray(types, dtype=np.int32), "array", "i32")
    else:
        raise ModelFileError(folder, "no tokenizer: expected tokenizer.model (SentencePiece) or tokenizer.json (BPE)")
    _special_vocab(v, folder, config, len(tokens), merges, added_tokens)
    if llama:
        if config.get("vocab_size", 32000) == 32016:  # CodeLlama: fill-in-the-middle tokens
            for typ, tid in (("prefix", 32007), ("suffix", 32008), ("middle", 32009), ("eot", 32010)):
                v.add(f"tokenizer.ggml.{typ}_token_id", tid, "u32")
        add_prefix = _json(folder / "tokenizer_config.json").get("add_prefix_space")
        if isinstance(add_prefix, bool):
            v.add("tokenizer.ggml.add_space_prefix", add_prefix, "bool")
    return v


def _special_vocab(v: Vocab, folder: Path, config: dict, n_vocab: int, merges: list[str], added_tokens: list) -> None:
    tc = _json(folder / "tokenizer_config.json")
    if merges:
        v.add("tokenizer.ggml.merges", merges, "array", "string")
    ids: dict[str, int] = {}
    by_content = {a.get("content"): a.get("id") for a in added_tokens if isinstance(a, dict)}
    for typ in SPECIAL_TYPES:  # tokenizer_config's token strings found among tokenizer.json's added tokens
        entry = tc.get(f"{typ}_token")
        content = entry.get("content") if isinstance(entry, dict) else entry
        tid = by_content.get(content) if isinstance(content, str) else None
        if isinstance(tid, int) and 0 <= tid < n_vocab:
            ids[typ] = tid
    for typ in SPECIAL_TYPES:  # then config.json's ids
        tid = config.get(f"{typ}_token_id")
        if typ not in ids and isinstance(tid, int) and not isinstance(tid, bool) and 0 <= tid < n_vocab:
            ids[typ] = tid
    for typ in SPECIAL_TYPES:
        if typ in ids:
            v.add(SPECIAL_ID_KEYS[typ], ids[typ], "u32")
    for typ in SPECIAL_TYPES:
        value = tc.get(f"add_{typ}_token")
        if typ in ADD_KEYS and isinstance(value, bool):
            v.add(ADD_KEYS[typ], value, "bool")
    template = tc.get("chat_template")
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    if isinstance(template, list):  # named templates: llama.cpp keeps the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if isinstance(template, str):
        v.add("tokenizer.chat_template", template, "string")

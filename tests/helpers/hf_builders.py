"""Writers of Hugging Face checkpoints for tests, independent of engine/: safetensors files,
PyTorch zip checkpoints (the layout torch.save writes, pickle opcodes emitted by hand so no
torch is needed), SentencePiece tokenizer.model protobufs and BPE tokenizer.json files.

`hf_folder_from_gguf` turns a llama GGUF (tiny-llama-F32.gguf) back into an HF folder: GGUF
names to HF names, and Q/K rows un-permuted to HF's layout, so that converting the folder
must give the GGUF's tensors back bit for bit.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np

HF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "ffn_gate_inp.weight": "mlp.gate.weight",
}
EXPERT_KINDS = {"ffn_gate_exps.weight": "gate_proj", "ffn_up_exps.weight": "up_proj", "ffn_down_exps.weight": "down_proj"}
ST_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("uint16"): "BF16"}
TORCH_STORAGES = {"F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage"}


def hf_name(gguf_name: str) -> str:
    if gguf_name.startswith("blk."):
        _, layer, rest = gguf_name.split(".", 2)
        return f"model.layers.{layer}.{HF_NAMES[rest]}"
    return HF_NAMES[gguf_name]


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K row order back to HF's (the inverse of the converter's permutation)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# ---- safetensors ------------------------------------------------------------------------------
def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtypes: dict[str, str] | None = None) -> None:
    """`tensors` in numpy shape; bf16 as uint16 bits (dtype name from `dtypes` or the array)."""
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        data = np.ascontiguousarray(a).tobytes()
        dt = (dtypes or {}).get(name) or ST_DTYPES[a.dtype]
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


# ---- PyTorch zip ------------------------------------------------------------------------------
def _p_str(s: str) -> bytes:
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def _p_int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def _p_tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _p_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def state_dict_pickle(entries: list[tuple[str, str, str, int, tuple, tuple]]) -> bytes:
    """The pickle torch.save writes for a dict of tensors: each entry (name, storage class,
    storage key, numel, shape, stride) becomes _rebuild_tensor_v2(persistent storage, 0,
    shape, stride, False, OrderedDict())."""
    out = bytearray(b"\x80\x02}(")  # PROTO 2, EMPTY_DICT, MARK
    for name, storage, key, numel, shape, stride in entries:
        out += _p_str(name) + _p_global("torch._utils", "_rebuild_tensor_v2")
        pid = _p_tuple([_p_str("storage"), _p_global("torch", storage), _p_str(key), _p_str("cpu"), _p_int(numel)]) + b"Q"
        args = [pid, _p_int(0), _p_tuple([_p_int(d) for d in shape]), _p_tuple([_p_int(s) for s in stride]),
                b"\x89", _p_global("collections", "OrderedDict") + b")R"]
        out += _p_tuple(args) + b"R"
    out += b"u."  # SETITEMS, STOP
    return bytes(out)


def write_torch_zip(path: Path, tensors: dict[str, np.ndarray], dtypes: dict[str, str] | None = None,
                    pickle_bytes: bytes | None = None) -> None:
    """A torch.save-style zip: <stem>/data.pkl, byteorder, data/<key> stored, 64-byte aligned."""
    stem = path.name.rsplit(".", 1)[0]
    entries, blobs = [], []
    for i, (name, a) in enumerate(tensors.items()):
        dt = (dtypes or {}).get(name) or ST_DTYPES[a.dtype]
        strides, step = [], 1
        for d in reversed(a.shape):
            strides.insert(0, step)
            step *= d
        entries.append((name, TORCH_STORAGES[dt], str(i), a.size, tuple(a.shape), tuple(strides)))
        blobs.append((str(i), np.ascontiguousarray(a).tobytes()))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{stem}/data.pkl", pickle_bytes if pickle_bytes is not None else state_dict_pickle(entries))
        z.writestr(f"{stem}/byteorder", "little")
        for key, data in blobs:
            info = zipfile.ZipInfo(f"{stem}/data/{key}")
            # torch aligns each record's data to 64 bytes with a padding extra field
            header_end = z.fp.tell() + 30 + len(info.filename)
            pad = -(header_end + 4) % 64
            info.extra = struct.pack("<HH", 0xCAFE, pad) + b"Z" * pad
            z.writestr(info, data)
        z.writestr(f"{stem}/version", "3\n")


# ---- tokenizers -------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field_bytes(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def sentencepiece_model(pieces: list[tuple[str, float, int]]) -> bytes:
    """A ModelProto with its pieces (text, score, type) and a trainer spec field to skip."""
    out = bytearray()
    for text, score, ptype in pieces:
        msg = _field_bytes(1, text.encode("utf-8")) + _varint(2 << 3 | 5) + struct.pack("<f", score)
        if ptype != 1:
            msg += _varint(3 << 3) + _varint(ptype)
        out += _field_bytes(1, msg)
    out += _field_bytes(2, _varint(3 << 3) + _varint(1))  # trainer_spec { model_type: UNIGRAM }
    return bytes(out)


LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def bpe_tokenizer_json(tokens: list[str], types: list[int], merges: list[str], split_regex: str = LLAMA3_SPLIT) -> dict:
    """tokenizer.json of a byte-level BPE vocabulary; control (3) and user-defined (4) tokens
    as added tokens, special for control ones."""
    vocab = {t: i for i, t in enumerate(tokens) if types[i] not in (3, 4)}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": types[i] == 4, "special": types[i] == 3} for i, t in enumerate(tokens) if types[i] in (3, 4)]
    return {
        "version": "1.0", "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split_regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "vocab": vocab, "merges": merges},
    }


# ---- a whole folder -----------------------------------------------------------------------------
def hf_tensors_from_gguf(mf, permuted: bool = True) -> dict[str, np.ndarray]:
    """The GGUF's float32 tensors under HF names in HF's layout (numpy shape): llama's Q/K
    rows un-permuted (`permuted`), MoE expert stacks split into one matrix per expert."""
    hp = mf.hparams
    out = {}
    for name in mf.tensors:
        a = np.array(mf.tensor_view(name))
        kind = name.split(".", 2)[-1]
        if kind in EXPERT_KINDS:
            layer = name.split(".")[1]
            for x in range(a.shape[0]):
                out[f"model.layers.{layer}.mlp.experts.{x}.{EXPERT_KINDS[kind]}.weight"] = np.ascontiguousarray(a[x])
            continue
        if permuted and name.endswith("attn_q.weight"):
            a = unpermute(a, hp.n_head)
        elif permuted and name.endswith("attn_k.weight"):
            a = unpermute(a, hp.n_head_kv)
        out[hf_name(name)] = a
    return out


def llama_config(mf) -> dict:
    hp = mf.hparams
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hp.n_embd,
        "intermediate_size": hp.n_ff, "num_attention_heads": hp.n_head, "num_key_value_heads": hp.n_head_kv,
        "num_hidden_layers": hp.n_layer, "rms_norm_eps": float(np.float32(hp.rms_eps)), "rope_theta": hp.rope_freq_base,
        "vocab_size": hp.n_vocab, "max_position_embeddings": hp.n_ctx_train, "tie_word_embeddings": False,
        "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    }


def write_spm_tokenizer(folder: Path, mf) -> None:
    tok = mf.tokenizer
    folder.joinpath("tokenizer.model").write_bytes(
        sentencepiece_model([(t, float(s), int(ty)) for t, s, ty in zip(tok.tokens, tok.scores, tok.token_types)]))
    folder.joinpath("tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
         "tokenizer_class": "LlamaTokenizer"}))

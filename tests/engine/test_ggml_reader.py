"""Legacy GGML llama files: ggjt v3 fully, older variants read or refused with a reason."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from tests.helpers.paths import FIXTURES, fixtures_or_skip
from tests.helpers.model_builders import GGMLBuilder, default_ggml_vocab, tensor_nbytes

from codeup_tui.engine import ModelFileError, open_model_file

GGML_TYPES = ["F32", "Q4_0", "Q4_K_M", "Q6_K"]
_LAYER_PARTS = {
    "attention_norm": "attn_norm", "attention.wq": "attn_q", "attention.wk": "attn_k",
    "attention.wv": "attn_v", "attention.wo": "attn_output", "ffn_norm": "ffn_norm",
    "feed_forward.w1": "ffn_gate", "feed_forward.w2": "ffn_down", "feed_forward.w3": "ffn_up",
}
_GLOBALS = {"tok_embeddings.weight": "token_embd.weight", "norm.weight": "output_norm.weight",
            "output.weight": "output.weight"}


def gguf_name(old: str) -> str:
    """The GGUF name of a 2023 tensor name (convert_llama_ggml_to_gguf's mapping)."""
    if old in _GLOBALS:
        return _GLOBALS[old]
    _, layer, rest = old.split(".", 2)
    return f"blk.{layer}.{_LAYER_PARTS[rest.removesuffix('.weight')]}.weight"


BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
          10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210)}


def walk_ggjt_v3(data: bytes):
    """An independent walk over a ggjt v3 file: header, vocab, tensor records."""
    magic, version = struct.unpack_from("<2I", data, 0)
    hp = struct.unpack_from("<7I", data, 8)
    pos = 36
    vocab = []
    for _ in range(hp[0]):
        (n,) = struct.unpack_from("<I", data, pos)
        text = data[pos + 4 : pos + 4 + n]
        (score,) = struct.unpack_from("<f", data, pos + 4 + n)
        vocab.append((text, score))
        pos += 8 + n
    tensors = {}
    while pos < len(data):
        n_dims, name_len, ttype = struct.unpack_from("<3I", data, pos)
        pos += 12
        shape = struct.unpack_from(f"<{n_dims}I", data, pos)
        pos += 4 * n_dims
        name = data[pos : pos + name_len].decode()
        pos += name_len
        pos += (-pos) % 32
        blk, size = BLOCKS[ttype]
        nbytes = int(np.prod(shape)) // blk * size
        tensors[name] = (ttype, shape, pos, data[pos : pos + nbytes])
        pos += nbytes
    return magic, version, hp, vocab, tensors


@pytest.mark.parametrize("qtype", GGML_TYPES)
def test_ggml_v3_fixture_reads_back(qtype):
    path = fixtures_or_skip("ggml-v3", f"ggml-llama-{qtype}.ggmlv3.bin")
    cfg = json.loads((FIXTURES / "ggml-v3" / "ggml-llama.json").read_text())["config"]
    data = path.read_bytes()
    magic, version, hp, vocab, tensors = walk_ggjt_v3(data)
    assert (magic, version) == (0x67676A74, 3)
    with open_model_file(path) as mf:
        assert mf.format_name == "GGML ggjt v3"
        assert mf.file_type_name == qtype
        h = mf.hparams
        assert (h.n_vocab, h.n_embd, h.n_layer, h.n_head, h.n_head_kv, h.n_ff) == (
            cfg["n_vocab"], cfg["n_embd"], cfg["n_layer"], cfg["n_head"], cfg["n_head_kv"], cfg["n_ff"])
        assert h.rms_eps == cfg["eps"] == 5e-6 and h.rope_freq_base == cfg["rope_base"]
        assert h.n_ctx_train == 2048 and h.rope_freq_scale == 1.0
        # vocabulary with scores, in GGUF form
        tok = mf.tokenizer
        assert tok.model == "llama" and (tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
        assert np.array_equal(tok.scores, np.array([s for _, s in vocab], dtype=np.float32))
        for i, (raw, _score) in enumerate(vocab):
            if i >= 3 and len(raw) > 1:
                assert tok.tokens[i] == raw.decode().replace(" ", "\u2581")
        # every tensor: GGUF name, type, shape, bytes
        assert len(mf.tensors) == len(tensors)
        for old_name, (ttype, shape, offset, raw) in tensors.items():
            info = mf.tensors[gguf_name(old_name)]
            assert (info.ggml_type, info.shape, info.offset) == (ttype, shape, offset)
            assert info.offset % 32 == 0
            assert mf.tensor_bytes_view(info.name).tobytes() == raw


def test_ggml_v3_vocabulary_equals_the_same_models_gguf_vocabulary():
    """The fixtures' GGML and GGUF models share one vocabulary: reading the 2023 text form
    must give exactly llama.cpp's GGUF tokens, scores and token types."""
    old = open_model_file(fixtures_or_skip("ggml-v3", "ggml-llama-F32.ggmlv3.bin")).tokenizer
    new = open_model_file(fixtures_or_skip("tiny-llama", "tiny-llama-F32.gguf")).tokenizer
    assert old.tokens == new.tokens
    assert np.array_equal(old.scores, new.scores)
    assert np.array_equal(old.token_types, new.token_types)


def _layer_tensors(b: GGMLBuilder, n_embd: int, n_head_kv_dim: int, n_ff: int, t: int = 0):
    b.add_tensor("tok_embeddings.weight", 0, (n_embd, 8), seed=1)
    b.add_tensor("norm.weight", 0, (n_embd,), seed=2)
    b.add_tensor("output.weight", t, (n_embd, 8), seed=3)
    b.add_tensor("layers.0.attention_norm.weight", 0, (n_embd,), seed=4)
    b.add_tensor("layers.0.attention.wq.weight", t, (n_embd, n_embd), seed=5)
    b.add_tensor("layers.0.attention.wk.weight", t, (n_embd, n_head_kv_dim), seed=6)
    b.add_tensor("layers.0.attention.wv.weight", t, (n_embd, n_head_kv_dim), seed=7)
    b.add_tensor("layers.0.attention.wo.weight", t, (n_embd, n_embd), seed=8)
    b.add_tensor("layers.0.ffn_norm.weight", 0, (n_embd,), seed=9)
    b.add_tensor("layers.0.feed_forward.w1.weight", t, (n_embd, n_ff), seed=10)
    b.add_tensor("layers.0.feed_forward.w2.weight", t, (n_ff, n_embd), seed=11)
    b.add_tensor("layers.0.feed_forward.w3.weight", t, (n_embd, n_ff), seed=12)
    return b


def test_built_ggml_v3_with_every_supported_type_reads_back(write_file):
    types = [0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14]  # F32 F16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K..Q6_K
    b = GGMLBuilder(hparams=(300, 256, 256, 4, 2, 64, 15), vocab=default_ggml_vocab(300))
    b.add_tensor("tok_embeddings.weight", 0, (256, 300), seed=1)
    b.add_tensor("norm.weight", 0, (256,), seed=2)
    b.add_tensor("output.weight", types[-1], (256, 300), seed=3)
    matrices = ["attention.wq", "attention.wk", "attention.wv", "attention.wo",
                "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"]
    for layer, layer_types in ((0, types[:7]), (1, types[5:])):
        b.add_tensor(f"layers.{layer}.attention_norm.weight", 0, (256,), seed=4)
        b.add_tensor(f"layers.{layer}.ffn_norm.weight", 0, (256,), seed=5)
        for i, (m, t) in enumerate(zip(matrices, layer_types)):
            shape = (512, 256) if m == "feed_forward.w2" else (256, 512) if m.startswith("feed") else (256, 256)
            b.add_tensor(f"layers.{layer}.{m}.weight", t, shape, seed=10 * layer + i)
    path = write_file(b.build(), ".bin")
    with open_model_file(path) as mf:
        assert mf.file_type_name == "Q4_K_M"
        assert {int(t.ggml_type) for t in mf.tensors.values()} == set(types)
        assert len(mf.tensors) == len(b.tensors)
        for name, t, shape, data in b.tensors:
            info = mf.tensors[gguf_name(name)]
            assert (info.ggml_type, info.shape) == (t, shape)
            assert mf.tensor_bytes_view(info.name).tobytes() == data
        assert mf.hparams.n_ff == 512 and mf.hparams.n_layer == 2
        tok = mf.tokenizer
        assert tok.tokens[:5] == ["<unk>", "<s>", "</s>", "<0x00>", "<0x01>"]
        assert tok.tokens[259] == "\u2581w259" and tok.scores[259] == -259.0
        assert tok.token_types[:4].tolist() == [2, 3, 3, 6] and tok.token_types[259] == 1


def test_ggml_overrides_and_gqa_from_tensor_shapes(write_file):
    # 8 heads of 32, 2 KV heads: the K projection is 64 wide
    b = GGMLBuilder(hparams=(8, 256, 256, 8, 1, 32, 0), vocab=default_ggml_vocab(8))
    path = write_file(_layer_tensors(b, 256, 64, 512).build(), ".bin")
    mf = open_model_file(path)
    assert mf.hparams.n_head_kv == 2 and mf.hparams.gqa == 4 and mf.hparams.n_ff == 512
    mf = open_model_file(path, gqa=4, rms_eps=1e-5, rope_freq_base=1e6, rope_freq_scale=0.5, context_length=4096)
    h = mf.hparams
    assert (h.n_head_kv, h.rms_eps, h.rope_freq_base, h.rope_freq_scale, h.n_ctx_train) == (2, 1e-5, 1e6, 0.5, 4096)
    assert mf.metadata["llama.rope.scaling.factor"] == 2.0
    with pytest.raises(ModelFileError, match="--gqa 8 gives 1 KV heads, but the tensors have 2"):
        open_model_file(path, gqa=8)


@pytest.mark.parametrize(
    "kind,version,ttype,readable",
    [
        ("ggjt", 2, 0, True), ("ggjt", 2, 1, True), ("ggjt", 2, 6, True), ("ggjt", 2, 7, True),
        ("ggjt", 2, 2, False), ("ggjt", 2, 3, False), ("ggjt", 2, 8, False),
        ("ggjt", 1, 0, True), ("ggjt", 1, 6, False), ("ggjt", 1, 2, False),
        ("ggmf", 1, 1, True), ("ggmf", 1, 2, False), ("ggml", 0, 0, True), ("ggml", 0, 8, False),
    ],
)
def test_older_ggml_variants_read_or_refused_with_reason(write_file, kind, version, ttype, readable):
    b = GGMLBuilder(kind=kind, version=version, hparams=(8, 256, 256, 4, 1, 64, 0), vocab=default_ggml_vocab(8))
    _layer_tensors(b, 256, 256, 512, t=ttype)
    path = write_file(b.build(), ".bin")
    if readable:
        with open_model_file(path) as mf:
            assert mf.version.startswith(kind)
            assert mf.tensor_bytes_view("blk.0.attn_q.weight").tobytes() == b.tensors[4][3]
            if kind == "ggml":  # unversioned files had no scores
                assert not mf.tokenizer.scores.any()
    else:
        with pytest.raises(ModelFileError) as e:
            open_model_file(path)
        msg = str(e.value)
        assert "layout changed before ggjt v3" in msg and "convert" in msg and "\n" not in msg

"""The tokenizer against llama.cpp's own tokenizer tests and the SmolLM2 reference prompt.

Fixture-free tests (synthetic vocabularies, the splitters, the clean-up pass) run anywhere;
the rest skip when ../shared is absent.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.paths import FIXTURES, REPO, fixtures_or_skip

from codeup_tui.engine import open_model_file
from codeup_tui.engine.errors import ModelFileError, UsageError
from codeup_tui.engine.formats import TokenizerData
from codeup_tui.engine.tokenizer import IncrementalDecoder, Tokenizer, build_tokenizer
from codeup_tui.engine.tokenizer.byte_unicode import BYTE_TO_CHAR, bytes_to_unicode_text, unicode_text_to_bytes
from codeup_tui.engine.tokenizer.pieces import clean_up_spaces
from codeup_tui.engine.tokenizer.pretokenizers import PRE_TOKENIZERS, PreTokenizer

VOCABS = ("llama-spm", "gpt-2", "llama-bpe", "qwen2", "deepseek-coder", "starcoder", "phi-3")
SEPARATOR = "\n__ggml_vocab_test__\n"


# ---- helpers ----------------------------------------------------------------------------------
def vocab_cases(name: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's test-tokenizer-0 vectors: strings split on SEPARATOR (bytes as is, no
    newline translation), one line of ids per string."""
    base = fixtures_or_skip("vocab", f"ggml-vocab-{name}.gguf")
    texts = Path(f"{base}.inp").read_bytes().decode("utf-8").split(SEPARATOR)
    if texts and texts[-1] == "":
        texts.pop()  # the file ends with a separator
    lines = Path(f"{base}.out").read_bytes().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    assert len(texts) == len(lines), f"{name}: {len(texts)} inputs, {len(lines)} outputs"
    return [(t, [int(x) for x in line.split()]) for t, line in zip(texts, lines)]


def stream(tok: Tokenizer, ids, **kw) -> tuple[list[str], str]:
    dec = IncrementalDecoder(tok, **kw)
    parts = [dec.push(i) for i in ids]
    return parts, dec.flush()


def source_text(n_chars: int = 100_000) -> str:
    """100 KB of this project's Python source, without U+2581 (a literal "▁" in the text is
    SentencePiece's space marker, which does not round-trip as itself)."""
    text = "".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "engine").rglob("*.py")))
    text = text.replace("\u2581", "")
    return (text * (n_chars // len(text) + 1))[:n_chars]


@pytest.fixture(scope="module")
def vocab_tokenizers() -> dict[str, Tokenizer]:
    # Built once: the Llama 3 vocabulary has 128k tokens and 280k merges.
    fixtures_or_skip("vocab")
    out = {}
    for name in VOCABS:
        with open_model_file(FIXTURES / "vocab" / f"ggml-vocab-{name}.gguf") as mf:
            out[name] = build_tokenizer(mf.tokenizer)
    return out


@pytest.fixture(scope="module")
def smollm2(default_model_file) -> Tokenizer:
    with open_model_file(default_model_file) as mf:
        return build_tokenizer(mf.tokenizer)


# ---- llama.cpp's tokenizer tests -----------------------------------------------------------------
@pytest.mark.parametrize("name", VOCABS)
def test_vocab_cases_match_llama_cpp(vocab_tokenizers, name):
    tok = vocab_tokenizers[name]
    cases = vocab_cases(name)
    assert len(cases) == 46
    wrong = [(text, want, tok.encode(text)) for text, want in cases if tok.encode(text) != want]
    assert not wrong, f"{name}: {len(cases) - len(wrong)}/{len(cases)} match; first: {wrong[0]!r}"


@pytest.mark.parametrize("name", VOCABS)
def test_vocab_cases_round_trip(vocab_tokenizers, name):
    tok = vocab_tokenizers[name]
    for text, want in vocab_cases(name):
        # Exact text back, as long as the vocabulary's space clean-up is off ...
        assert tok.decode(want, clean_spaces=False) == text
        # ... which is the default for SPM. GPT-2 and Llama 3 clean up like llama.cpp's
        # llama_detokenize (" ?" -> "?", " 's" -> "'s", ...), so those cases are lossy.
        expected = clean_up_spaces(text.encode()).decode() if tok.clean_spaces else text
        assert tok.decode(want) == expected


def test_round_trip_limits_of_spm(vocab_tokenizers):
    tok = vocab_tokenizers["llama-spm"]
    # '▁' (U+2581) is how SentencePiece stores a space, so it comes back as a space.
    assert tok.decode(tok.encode("a\u2581b")) == "a b"
    # llama_detokenize keeps the dummy-prefix space when it removed a leading BOS.
    ids = tok.encode("Hello", add_bos=True)
    assert ids[0] == tok.bos_id
    assert tok.decode(ids) == " Hello"
    assert tok.decode(ids[1:]) == "Hello"
    assert tok.decode(ids, skip_special=False) == "<s> Hello"
    assert tok.decode(ids[1:], strip_leading_space=False) == " Hello"


def test_defaults_from_metadata(vocab_tokenizers):
    spm, gpt2, llama3 = (vocab_tokenizers[n] for n in ("llama-spm", "gpt-2", "llama-bpe"))
    assert (spm.model, spm.pre, spm.bos_id, spm.eos_id, spm.add_bos, spm.add_space_prefix) == (
        "llama", None, 1, 2, True, True)
    assert spm.eog_ids == {2}
    assert (gpt2.add_bos, gpt2.bos_id, gpt2.eog_ids, gpt2.clean_spaces) == (False, 50256, {50256}, True)
    # "llama-bpe" forces add_bos (and ignore_merges); <|eot_id|> ends generation as well
    assert (llama3.add_bos, llama3.bos_id, llama3.eos_id) == (True, 128000, 128001)
    assert llama3.eog_ids == {128001, 128009} and llama3.eot_id == 128009
    assert not (spm.warnings or gpt2.warnings or llama3.warnings)


# ---- SmolLM2 (the default model) ---------------------------------------------------------------
def test_smollm2_prompt_matches_llama_cpp(smollm2):
    ref = json.loads(fixtures_or_skip("smollm2", "alpaca-fib.json").read_text())
    assert smollm2.pre == "smollm" and not smollm2.warnings
    assert smollm2.encode(ref["prompt"]) == ref["tokens"]
    assert smollm2.decode(ref["tokens"]) == ref["prompt"]
    assert smollm2.decode(ref["greedy"]) == ref["greedy_text"]
    assert smollm2.add_bos is False and smollm2.clean_spaces is False
    assert smollm2.eog_ids == {0, 2}  # <|endoftext|>, <|im_end|>


def test_smollm2_special_tokens(smollm2):
    im_start = smollm2.token_id("<|im_start|>")
    assert smollm2.encode("<|im_start|>", parse_special=True) == [im_start]
    plain = smollm2.encode("<|im_start|>")
    assert im_start not in plain and len(plain) > 1
    assert smollm2.decode(plain) == "<|im_start|>"
    ids = smollm2.encode("<|im_start|>user\nHi<|im_end|>\n", parse_special=True)
    assert ids[0] == im_start and smollm2.token_id("<|im_end|>") in ids
    assert smollm2.decode(ids) == "user\nHi\n"
    assert smollm2.decode(ids, skip_special=False) == "<|im_start|>user\nHi<|im_end|>\n"


def test_smollm2_digits_are_split(smollm2):
    pieces = [smollm2.token_text(i) for i in smollm2.encode("x = 12345")]
    assert pieces == ["x", "Ġ=", "Ġ", "1", "2", "3", "4", "5"]


# ---- special tokens --------------------------------------------------------------------------
def test_spm_special_tokens(vocab_tokenizers):
    tok = vocab_tokenizers["llama-spm"]
    assert tok.encode("<s>", parse_special=True) == [tok.bos_id]
    plain = tok.encode("<s>")
    assert tok.bos_id not in plain
    assert tok.decode(plain) == "<s>"
    # the dummy-prefix space follows a special token
    ids = tok.encode("<s>Hello</s>", parse_special=True)
    assert ids == [tok.bos_id, tok.token_id("\u2581Hello"), tok.eos_id]
    assert tok.decode([tok.bos_id]) == "" and tok.decode([tok.bos_id], skip_special=False) == "<s>"
    assert tok.token_to_piece(tok.bos_id) == b""
    assert tok.token_to_piece(tok.bos_id, special=True) == b"<s>"
    assert tok.token_text(tok.bos_id) == "<s>"
    assert tok.token_to_piece(tok.token_id("<0x0A>")) == b"\n"


def test_llama3_special_tokens(vocab_tokenizers):
    tok = vocab_tokenizers["llama-bpe"]
    ids = tok.encode("<|begin_of_text|>hi<|eot_id|>", parse_special=True)
    assert ids[0] == 128000 and ids[-1] == 128009
    assert 128000 not in tok.encode("<|begin_of_text|>")


def test_bad_ids(vocab_tokenizers):
    tok = vocab_tokenizers["llama-spm"]
    for bad in (-1, tok.n_vocab):
        with pytest.raises(UsageError):
            tok.token_to_piece(bad)
        with pytest.raises(UsageError):
            tok.decode([bad])


# ---- GGML v3 vocabulary ----------------------------------------------------------------------------
def test_tiny_llama_and_ggml_v3_vocab_agree():
    with open_model_file(fixtures_or_skip("tiny-llama", "tiny-llama-F32.gguf")) as mf:
        gguf_tok = build_tokenizer(mf.tokenizer)
    with open_model_file(fixtures_or_skip("ggml-v3", "ggml-llama-F32.ggmlv3.bin")) as mf:
        ggml_tok = build_tokenizer(mf.tokenizer)
    for attr in ("n_vocab", "bos_id", "eos_id", "unk_id", "eog_ids", "add_bos", "add_space_prefix"):
        assert getattr(gguf_tok, attr) == getattr(ggml_tok, attr), attr
    texts = ["Hello world", "tok12 tok345", " leading", "ünïcödé 😀\n\tx", "<s> and </s>", ""]
    for text in texts:
        for special in (False, True):
            ids = gguf_tok.encode(text, add_bos=True, parse_special=special)
            assert ids == ggml_tok.encode(text, add_bos=True, parse_special=special)
        # This synthetic vocabulary ("tok0".."tok3836" and byte tokens) has no '▁' token,
        # so every character, the escaped space included, goes through byte fallback and
        # the space comes back as '▁' (llama.cpp does the same).
        expected = "\u2581" + text.replace(" ", "\u2581") if text else ""
        assert gguf_tok.decode(gguf_tok.encode(text)) == expected
        assert ggml_tok.decode(ggml_tok.encode(text)) == expected


# ---- streaming -----------------------------------------------------------------------------------
def test_incremental_decoder_never_breaks_characters(vocab_tokenizers):
    spm = vocab_tokenizers["llama-spm"]
    ids = spm.encode("a😀b")
    assert [spm.token_text(i) for i in ids[-5:-1]] == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    parts, rest = stream(spm, ids)
    assert parts == ["a", "", "", "", "😀", "b"] and rest == ""
    # cut inside the character: nothing until flush, which gives U+FFFD like decode
    parts, rest = stream(spm, ids[:-3])
    assert "".join(parts) == "a" and rest == "\ufffd" == spm.decode(ids[:-3])[1:]


@pytest.mark.parametrize("name", VOCABS)
def test_incremental_decoder_equals_decode(vocab_tokenizers, name):
    tok = vocab_tokenizers[name]
    for text, ids in vocab_cases(name):
        for skip_special, prefix in ((True, []), (True, [tok.bos_id]), (False, [tok.bos_id])):
            seq = prefix + ids
            parts, rest = stream(tok, seq, skip_special=skip_special)
            assert "".join(parts) + rest == tok.decode(seq, skip_special, clean_spaces=False)
            for part in parts:
                assert "\ufffd" not in part, (text, part)


def test_incremental_decoder_smollm2(smollm2):
    text = "naïve café — 你好 😀🚀 done"
    ids = smollm2.encode(text)
    parts, rest = stream(smollm2, ids)
    assert "".join(parts) + rest == text
    assert all("\ufffd" not in p for p in parts)
    assert len(ids) > len([p for p in parts if p])  # some characters span several tokens


# ---- errors and fallbacks --------------------------------------------------------------------
def _gpt2_data() -> TokenizerData:
    with open_model_file(fixtures_or_skip("vocab", "ggml-vocab-gpt-2.gguf")) as mf:
        return mf.tokenizer


def test_unknown_pre_tokenizer_falls_back_with_warning():
    data = _gpt2_data()
    for pre in ("no-such-pre", None):
        tok = build_tokenizer(dataclasses.replace(data, pre=pre))
        assert tok.pre == "default" and len(tok.warnings) == 1
        assert "default" in tok.warnings[0]
        assert tok.decode(tok.encode("Hello, world 12345!")) == "Hello, world 12345!"


def test_unsupported_model_is_one_line_error():
    data = _gpt2_data()
    with pytest.raises(ModelFileError) as e:
        build_tokenizer(dataclasses.replace(data, model="bert"), "m.gguf")
    assert "'bert'" in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("m.gguf: ")
    with pytest.raises(ModelFileError):
        build_tokenizer(dataclasses.replace(data, merges=None))


# ---- a whole source file (its speed: tests/bench/bench_tokenizer.py) ---------------------------
@pytest.mark.parametrize("name", ["llama-spm", "llama-bpe"])
def test_encode_100kb_source_round_trips(vocab_tokenizers, name):
    tok = vocab_tokenizers[name]
    text = source_text()
    ids = tok.encode(text)
    assert tok.decode(ids, clean_spaces=False) == text.replace("\u2581", " ")


# ---- without fixtures: synthetic vocabularies ------------------------------------------------
def _data(**kw) -> TokenizerData:
    base = dict(pre=None, scores=None, token_types=None, merges=None, bos_id=None, eos_id=None,
                unk_id=None, pad_id=None, add_bos=None, add_eos=None, add_space_prefix=None)
    base.update(kw)
    return TokenizerData(**base)


def _tiny_spm() -> Tokenizer:
    normal = ["\u2581", "h", "e", "l", "o", "\u2581h", "ll", "\u2581he", "llo", "\u2581hello", "\u2581w"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + normal
    types = [2, 3, 3] + [6] * 256 + [1] * len(normal)
    scores = [0.0] * 259 + [-float(i) for i in range(len(normal))]
    return build_tokenizer(_data(model="llama", tokens=tokens, scores=np.array(scores, np.float32),
                                 token_types=np.array(types, np.int32)))


def test_synthetic_spm():
    tok = _tiny_spm()
    assert (tok.bos_id, tok.eos_id, tok.unk_id, tok.add_bos) == (1, 2, 0, True)
    ids = tok.encode("hello hello")
    assert [tok.token_text(i) for i in ids] == ["\u2581hello", "\u2581hello"]
    # 'z' and 'é' are not tokens: byte fallback, and back
    ids = tok.encode("hé z")
    assert [tok.token_text(i) for i in ids] == ["\u2581h", "<0xC3>", "<0xA9>", "\u2581", "<0x7A>"]
    assert tok.decode(ids) == "hé z"
    assert tok.encode("", add_bos=True) == [1]


def _tiny_bpe(pre="gpt-2") -> Tokenizer:
    merges = ["Ġ h", "h i", "Ġh i"]
    tokens = list(BYTE_TO_CHAR) + ["Ġh", "hi", "Ġhi", "<|end|>"]
    types = [1] * (len(tokens) - 1) + [3]
    return build_tokenizer(_data(model="gpt2", pre=pre, tokens=tokens, merges=merges,
                                 token_types=np.array(types, np.int32), eos_id=len(tokens) - 1))


def test_synthetic_bpe():
    tok = _tiny_bpe()
    ids = tok.encode("hi hi!")
    assert [tok.token_text(i) for i in ids] == ["hi", "Ġhi", "!"]
    end = tok.token_id("<|end|>")
    assert tok.encode("hi<|end|>", parse_special=True) == [tok.token_id("hi"), end]
    assert end not in tok.encode("hi<|end|>")
    assert end in tok.eog_ids
    assert tok.decode(tok.encode("héllo\n\tworld ?")) == "héllo\n\tworld?"  # clean_spaces
    assert tok.decode(tok.encode("héllo\n\tworld ?"), clean_spaces=False) == "héllo\n\tworld ?"


def test_synthetic_errors():
    with pytest.raises(ModelFileError):
        build_tokenizer(_data(model="t5", tokens=["a"]))
    tok = build_tokenizer(_data(model="gpt2", pre="gpt-2", tokens=["a"], merges=["a a"]))
    assert tok.bos_id is None and not tok.add_bos
    with pytest.raises(UsageError):
        tok.encode("a", add_bos=True)


def test_byte_unicode_table():
    assert len(set(BYTE_TO_CHAR)) == 256
    assert BYTE_TO_CHAR[0x20] == "Ġ" and BYTE_TO_CHAR[0x0A] == "Ċ" and BYTE_TO_CHAR[ord("a")] == "a"
    data = bytes(range(256))
    assert unicode_text_to_bytes(bytes_to_unicode_text(data)) == data


def test_clean_up_spaces():
    assert clean_up_spaces(b"Hello , world ! Yes . No ?") == b"Hello, world! Yes. No?"
    assert clean_up_spaces(b"it 's I 'm we 're they 've") == b"it's I'm we're they've"
    assert clean_up_spaces(b"don 't I 'd we 'll") == b"don 't I 'd we 'll"
    assert clean_up_spaces(b"a ' b") == b"a'b"


@pytest.mark.parametrize(
    "pre, text, words",
    [
        ("gpt-2", "Hello world's  123 !!\n\nx", ["Hello", " world", "'s", " ", " 123", " !!", "\n", "\n", "x"]),
        ("llama-bpe", "Hello WORLD'S 12345\n\n  x", ["Hello", " WORLD", "'S", " ", "123", "45", "\n\n", " ", " x"]),
        ("smollm", "abc 123", ["abc", " ", "1", "2", "3"]),
        ("default", "a+b=12345;", ["a", "+", "b", "=", "123", "45", ";"]),
        ("qwen2", "x 123", ["x", " ", "1", "2", "3"]),
    ],
)
def test_pre_tokenizer_words(pre, text, words):
    assert PreTokenizer(PRE_TOKENIZERS[pre]).split(text) == words


def test_decoders_agree_on_leading_tokens():
    tok = _tiny_spm()
    hello = tok.token_id("\u2581hello")
    for ids in ([1, hello], [1, 1, hello], [hello, hello], [2, hello], []):
        for skip in (True, False):
            for strip in (None, True, False):
                parts, rest = stream(tok, ids, skip_special=skip, strip_leading_space=strip)
                want = tok.decode(ids, skip, strip_leading_space=strip)
                assert "".join(parts) + rest == want, (ids, skip, strip)

"""Tokenizers built from a model file's vocabulary, following llama.cpp's rules exactly.

    from codeup_tui.engine import open_model_file
    from codeup_tui.engine.tokenizer import build_tokenizer, IncrementalDecoder

    tok = build_tokenizer(open_model_file(path).tokenizer)
    ids = tok.encode(prompt, add_bos=tok.add_bos)
    text = tok.decode(ids)

Modules: `tokenizer` (the Tokenizer), `spm` (SentencePiece merging), `bpe` (byte-level BPE
merging), `pretokenizers` (BPE word splitting), `unicode_data` (codepoint classes),
`byte_unicode` (GPT-2's byte alphabet), `special_tokens` (token types, end-of-generation,
special-token partition), `pieces` (token -> bytes), `streaming` (IncrementalDecoder).
"""

from .special_tokens import TokenAttr, TokenType
from .streaming import IncrementalDecoder
from .tokenizer import Tokenizer, build_tokenizer

__all__ = ["IncrementalDecoder", "TokenAttr", "TokenType", "Tokenizer", "build_tokenizer"]

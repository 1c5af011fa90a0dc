"""The tokenizer of a model file: text <-> token ids, with llama.cpp's rules.

Built from the vocabulary alone (`TokenizerData`, GGUF `tokenizer.ggml.*`). Two models:
SentencePiece-style ("llama", see `spm`) and byte-level BPE ("gpt2", see `bpe` and
`pretokenizers`). Encoding first splits out special tokens (`special_tokens.partition`), then
tokenizes each raw-text fragment; decoding renders pieces (`pieces`) and applies llama.cpp's
`llama_detokenize` rules.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import ModelFileError, UsageError
from ..formats.model_file import TokenizerData
from .bpe import BpeModel
from .pieces import clean_up_spaces, render_piece
from .pretokenizers import PreTokenizer, resolve_pre_tokenizer
from .special_tokens import (
    HIDDEN,
    TokenAttr,
    detect_end_of_generation,
    partition,
    special_candidates,
    token_attributes,
)
from .spm import SpmModel

_SPM_SPACE = "\u2581"

# What llama.cpp calls the models we do not implement, for the error message.
_UNSUPPORTED_MODELS = {
    "bert": "WordPiece (BERT)",
    "t5": "Unigram (T5)",
    "rwkv": "RWKV",
    "no_vocab": "no vocabulary",
    "none": "no vocabulary",
}


def _sanitize(text: str, keep_escapes: bool) -> str:
    """Text that encodes to UTF-8. Lone surrogates cannot. Given invalid UTF-8, llama.cpp
    tokenizes U+FFFD in BPE vocabularies and the raw bytes in SPM ones (byte fallback), so
    surrogate escapes (raw bytes read with errors="surrogateescape") are kept for SPM, and
    every other surrogate becomes U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass

    def fix(c: str) -> str:
        if not "\ud800" <= c <= "\udfff":
            return c
        if keep_escapes and "\udc80" <= c <= "\udcff":
            return c
        return "\ufffd"

    return "".join(map(fix, text))


class Tokenizer:
    """Encode and decode text for one vocabulary. Build it with `build_tokenizer`.

    Attributes (read-only by convention):
    - `model`: "llama" (SentencePiece) or "gpt2" (byte-level BPE); `pre`: the BPE
      pre-tokenizer in use (None for SPM);
    - `n_vocab`, `bos_id`, `eos_id`, `eot_id`, `eom_id`, `unk_id`, `pad_id` (None when absent);
    - `eog_ids`: the tokens that end generation;
    - `add_bos`, `add_eos`: what the model wants around a prompt by default;
    - `add_space_prefix` (SPM: a space before the first word), `clean_spaces` (BPE decode
      clean-up);
    - `warnings`: things the caller should tell the user (an unknown pre-tokenizer, ...).
    """

    def __init__(self, data: TokenizerData, source: str = "tokenizer") -> None:
        model = data.model
        if model not in ("llama", "gpt2"):
            what = _UNSUPPORTED_MODELS.get(model, repr(model))
            raise ModelFileError(
                source,
                f"tokenizer model {model!r} ({what}) is not supported; supported: "
                "'llama' (SentencePiece) and 'gpt2' (byte-level BPE)",
            )
        n = data.n_vocab
        if n == 0:
            raise ModelFileError(source, "the vocabulary (tokenizer.ggml.tokens) is empty")
        if data.embedding_rows is not None and data.embedding_rows != n:
            # Before the strings are built: millions of tokens cost ~60 bytes each as text.
            raise ModelFileError(
                source,
                f"the vocabulary has {n} tokens, but token_embd.weight has {data.embedding_rows} "
                "rows (one per token): the file is corrupt",
            )
        self.model = model
        self.n_vocab = n
        self.warnings: list[str] = []
        is_spm = model == "llama"
        self._is_spm = is_spm

        # llama.cpp replaces empty token texts, which would otherwise match everywhere.
        texts = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(data.tokens)]
        self._texts = texts
        # Text -> id; with duplicate texts the last id wins, as in llama.cpp's map.
        self._token_to_id = {t: i for i, t in enumerate(texts)}
        self._attrs = token_attributes(data.token_types, n)

        def known(tid: int | None, default: int | None) -> int | None:
            if tid is not None:
                return tid
            return default if default is not None and default < n else None

        if is_spm:
            self.pre = None
            spec = None
            self.bos_id = known(data.bos_id, 1)
            self.eos_id = known(data.eos_id, 2)
            self.unk_id = known(data.unk_id, 0)
            self.add_space_prefix = data.add_space_prefix if data.add_space_prefix is not None else True
            self.clean_spaces = False
            add_bos = True
        else:
            if not data.merges:
                raise ModelFileError(source, "BPE vocabulary without merges (tokenizer.ggml.merges)")
            spec, warning = resolve_pre_tokenizer(data.pre)
            if warning:
                self.warnings.append(warning)
            self.pre = data.pre if warning is None else "default"
            # llama.cpp's defaults for "gpt2" vocabularies are 11 and 11 (GPT-NeoX); a
            # chatglm vocabulary has no BOS unless the file names one.
            self.bos_id = known(data.bos_id, None if spec.no_bos else 11)
            self.eos_id = known(data.eos_id, 11)
            self.unk_id = data.unk_id
            # Read but unused by BPE encoding; decode strips a leading space if it is set.
            self.add_space_prefix = bool(data.add_space_prefix)
            self.clean_spaces = spec.clean_spaces
            add_bos = bool(spec.add_bos)
        self.pad_id = data.pad_id
        self.add_bos = data.add_bos if data.add_bos is not None else add_bos
        self.add_eos = bool(data.add_eos) if data.add_eos is not None else False
        if self.add_bos and self.bos_id is None:
            self.add_bos = False
            self.warnings.append("the model asks for a BOS token but has none: not adding one")

        self.eot_id, self.eom_id, self.eog_ids = detect_end_of_generation(
            self._token_to_id, self._attrs, self.eos_id
        )

        self._candidates = {
            flag: special_candidates(texts, self._attrs, flag) for flag in (False, True)
        }
        self._pieces: list[bytes | None] = [None] * n

        if is_spm:
            scores = data.scores.tolist() if data.scores is not None else [0.0] * n
            self._spm = SpmModel(self._token_to_id, scores, self._spm_byte_ids())
        else:
            self._pretok = PreTokenizer(spec)
            self._bpe = BpeModel(self._token_to_id, data.merges, spec.ignore_merges)

    def _spm_byte_ids(self) -> list[int | None]:
        # "<0xXX>" tokens, else the raw single byte as a token, else <unk> (llama.cpp would
        # throw here; a vocabulary without byte tokens cannot encode such characters).
        out: list[int | None] = []
        for b in range(256):
            tid = self._token_to_id.get(f"<0x{b:02X}>")
            if tid is None:
                tid = self._token_to_id.get(bytes([b]).decode("utf-8", "surrogateescape"))
            out.append(tid if tid is not None else self.unk_id)
        return out

    # ---- encoding ------------------------------------------------------------------------------
    def encode(self, text: str, add_bos: bool = False, parse_special: bool = False) -> list[int]:
        """Token ids of `text`.

        `add_bos`: put BOS first (pass `tokenizer.add_bos` to do what the model wants).
        `parse_special`: recognise the text of control tokens such as "<s>" or
        "<|im_start|>"; without it only user-defined tokens are recognised and control-token
        text is tokenized as ordinary text (safe for untrusted text).
        """
        out: list[int] = []
        if add_bos:
            if self.bos_id is None:
                raise UsageError("this model's vocabulary has no BOS token")
            out.append(self.bos_id)
        text = _sanitize(text, keep_escapes=self._is_spm)
        fragments = partition(text, self._candidates[parse_special], self._texts)
        if self._is_spm:
            # A space goes in front of every raw fragment that starts the text or follows a
            # special token (SentencePiece's "dummy prefix"); spaces become '▁'.
            prev_special = True
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                    prev_special = True
                    continue
                if self.add_space_prefix and prev_special:
                    frag = " " + frag
                self._spm.tokenize(frag.replace(" ", _SPM_SPACE), out)
                prev_special = False
        else:
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                else:
                    self._bpe.tokenize(self._pretok.split(frag), out)
        return out

    def count_tokens(self, text: str) -> int:
        """The number of tokens of `text` (no BOS, special tokens not parsed)."""
        return len(self.encode(text))

    # ---- decoding ------------------------------------------------------------------------------
    def _check_id(self, token_id: int) -> None:
        if not (0 <= token_id < self.n_vocab):
            raise UsageError(f"token id {token_id} is out of range (vocabulary of {self.n_vocab})")

    def token_to_piece(self, token_id: int, special: bool = False) -> bytes:
        """The bytes of one token (llama.cpp `llama_token_to_piece`, no lstrip).

        Control and unknown tokens render empty unless `special` is true, as in `decode`
        (`token_text` gives any token's stored text). A piece may be part of a UTF-8
        character: byte tokens are single bytes; use `IncrementalDecoder` to stream text."""
        if not (0 <= token_id < self.n_vocab):
            raise UsageError(f"token id {token_id} is out of range (vocabulary of {self.n_vocab})")
        piece = self._pieces[token_id]
        if piece is None:
            piece = self._pieces[token_id] = render_piece(
                self._texts[token_id], self._attrs[token_id], self._is_spm
            )
        if not special and self._attrs[token_id] & HIDDEN:
            return b""
        return piece

    def token_text(self, token_id: int) -> str:
        """The token as stored in the vocabulary (e.g. "▁Hello", "ĠHello", "<0x0A>")."""
        self._check_id(token_id)
        return self._texts[token_id]

    def token_id(self, text: str) -> int | None:
        """The id of the token stored as `text`, or None."""
        return self._token_to_id.get(text)

    def is_eog(self, token_id: int) -> bool:
        return token_id in self.eog_ids

    def is_control(self, token_id: int) -> bool:
        self._check_id(token_id)
        return bool(self._attrs[token_id] & TokenAttr.CONTROL)

    def decode_bytes(
        self,
        ids: Iterable[int],
        skip_special: bool = True,
        *,
        clean_spaces: bool | None = None,
        strip_leading_space: bool | None = None,
    ) -> bytes:
        """`decode` before the bytes become text."""
        ids = list(ids)
        # llama_detokenize: with remove_special, a leading BOS and a trailing EOS go (when
        # the model adds them); a leading space from the SPM dummy prefix goes, unless the
        # text followed a BOS.
        strip = self.add_space_prefix if strip_leading_space is None else strip_leading_space
        if skip_special and self.add_bos and ids and ids[0] == self.bos_id:
            if strip_leading_space is None:
                strip = False
            ids = ids[1:]
        if skip_special and self.add_eos and ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        special = not skip_special
        parts = [self.token_to_piece(t, special) for t in ids]
        if parts and strip and parts[0].startswith(b" "):
            parts[0] = parts[0][1:]
        data = b"".join(parts)
        if self.clean_spaces if clean_spaces is None else clean_spaces:
            data = clean_up_spaces(data)
        return data

    def decode(
        self,
        ids: Iterable[int],
        skip_special: bool = True,
        *,
        clean_spaces: bool | None = None,
        strip_leading_space: bool | None = None,
    ) -> str:
        """Text of `ids`, following llama.cpp's `llama_detokenize`.

        `skip_special`: control and unknown tokens render empty (and a leading BOS / trailing
        EOS the model adds is dropped); False shows their text.
        `clean_spaces`: None uses the vocabulary's setting (GPT-2 and Llama 3 remove the
        space before "?!.," and some apostrophes, so such text does not round-trip); pass
        False for the exact text.
        `strip_leading_space`: None drops the space SPM encoding put in front of the first
        word (so decode(encode(s)) == s), except after a leading BOS that skip_special
        removed (llama.cpp keeps the space then: decode(encode(s, add_bos=True)) == " " + s);
        False keeps it, True always drops one.
        Bytes that are not valid UTF-8 become U+FFFD.
        """
        data = self.decode_bytes(
            ids, skip_special, clean_spaces=clean_spaces, strip_leading_space=strip_leading_space
        )
        return data.decode("utf-8", "replace")

    def __repr__(self) -> str:
        kind = "SentencePiece" if self._is_spm else f"BPE, pre={self.pre!r}"
        return f"<Tokenizer {kind}, {self.n_vocab} tokens>"


def build_tokenizer(tokenizer_data: TokenizerData, source: str = "tokenizer") -> Tokenizer:
    """The tokenizer for a model file's vocabulary (`ModelFile.tokenizer`).

    `source` names the file in error messages. Raises `ModelFileError` (one line) for a
    tokenizer model other than "llama" or "gpt2".
    """
    if tokenizer_data is None:
        raise ModelFileError(source, "the model file has no vocabulary (tokenizer.ggml.tokens)")
    return Tokenizer(tokenizer_data, source)

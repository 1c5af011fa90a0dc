"""Token attributes, end-of-generation tokens and the special-token partition.

GGUF stores one token type per token; llama.cpp turns it into attribute flags, then
overrides some of them by the token's text (a token that reads `<|im_end|>` is treated as
control and ends generation, whatever the file says). Before any model-specific splitting,
the text is partitioned around special tokens so that, for example, `<|im_start|>` becomes
one token instead of seven.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Sequence, Union


class TokenType(IntEnum):
    """`tokenizer.ggml.token_type` values."""

    UNDEFINED = 0
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


class TokenAttr(IntFlag):
    """llama.cpp's `llama_token_attr` bits that the tokenizer uses."""

    UNDEFINED = 0
    UNKNOWN = 1 << 0
    UNUSED = 1 << 1
    NORMAL = 1 << 2
    CONTROL = 1 << 3
    USER_DEFINED = 1 << 4
    BYTE = 1 << 5


_ATTR_OF_TYPE = {
    TokenType.NORMAL: TokenAttr.NORMAL,
    TokenType.UNKNOWN: TokenAttr.UNKNOWN,
    TokenType.CONTROL: TokenAttr.CONTROL,
    TokenType.USER_DEFINED: TokenAttr.USER_DEFINED,
    TokenType.UNUSED: TokenAttr.UNUSED,
    TokenType.BYTE: TokenAttr.BYTE,
}

# Shown only when the caller asks for special tokens (llama.cpp's `attr_special`).
HIDDEN = TokenAttr.UNKNOWN | TokenAttr.CONTROL
# Candidates for the special-token partition.
SPECIAL = TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN


def token_attributes(token_types, n_vocab: int) -> list[int]:
    """One attribute word per token. Without types every token is normal, as in llama.cpp;
    a type it does not know (0, or out of range) means "undefined": never rendered."""
    if token_types is None:
        return [int(TokenAttr.NORMAL)] * n_vocab
    return [int(_ATTR_OF_TYPE.get(t, TokenAttr.UNDEFINED)) for t in token_types.tolist()]


# Texts by which llama.cpp recognises tokens the metadata did not name (llama-vocab.cpp,
# "auto-detect special tokens by text"). Every such token is forced to be a control token.
EOT_TEXTS = (
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",  # DeepSeek
)
EOM_TEXTS = ("<|eom_id|>",)
FIM_TEXTS = {
    "pre": ("<|fim_prefix|>", "<fim-prefix>", "<\uff5cfim\u2581begin\uff5c>", "<PRE>"),
    "suf": ("<|fim_suffix|>", "<fim-suffix>", "<\uff5cfim\u2581hole\uff5c>", "<SUF>"),
    "mid": ("<|fim_middle|>", "<fim-middle>", "<\uff5cfim\u2581end\uff5c>", "<MID>"),
    "pad": ("<|fim_pad|>", "<fim-pad>", "<PAD>"),
    "rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"),
    "sep": ("<|file_sep|>",),
}
# Any token with one of these texts ends generation.
EOG_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>")


def _first_present(texts: Sequence[str], token_to_id: dict[str, int]) -> int | None:
    # llama.cpp takes whichever its hash map yields first; we take the first in list order,
    # which is deterministic (the choice matters only for `eot_id`, all of them end generation).
    for text in texts:
        tid = token_to_id.get(text)
        if tid is not None:
            return tid
    return None


def detect_end_of_generation(
    token_to_id: dict[str, int], attrs: list[int], eos_id: int | None
) -> tuple[int | None, int | None, frozenset[int]]:
    """(eot_id, eom_id, eog_ids). Marks every recognised token as control in `attrs`."""

    def force_control(tid: int | None) -> int | None:
        if tid is not None:
            attrs[tid] |= TokenAttr.CONTROL
        return tid

    eot_id = force_control(_first_present(EOT_TEXTS, token_to_id))
    eom_id = force_control(_first_present(EOM_TEXTS, token_to_id))
    fim = {k: force_control(_first_present(v, token_to_id)) for k, v in FIM_TEXTS.items()}

    eog: set[int] = set()
    for key in ("pad", "rep", "sep"):  # a FIM model emits these when it is done
        if fim[key] is not None:
            eog.add(fim[key])
    for text in EOG_TEXTS:
        tid = token_to_id.get(text)
        if tid is not None:
            eog.add(force_control(tid))
    for tid in (eos_id, eot_id, eom_id):
        if tid is not None:
            eog.add(tid)
    return eot_id, eom_id, frozenset(eog)


def special_candidates(texts: Sequence[str], attrs: Sequence[int], parse_special: bool) -> list[int]:
    """Token ids to split out of raw text, longest text first.

    With parse_special=False only user-defined tokens are split out (control and unknown
    tokens are then ordinary text), as in llama.cpp and HF tokenizers.
    """
    wanted = SPECIAL if parse_special else TokenAttr.USER_DEFINED
    ids = [i for i, a in enumerate(attrs) if a & wanted]
    # Stable sort: among texts of equal length the lower id is tried first.
    ids.sort(key=lambda i: -len(texts[i]))
    return ids


Fragment = Union[str, int]


def partition(text: str, candidates: Sequence[int], texts: Sequence[str]) -> list[Fragment]:
    """Split `text` into raw-text pieces (str) and special tokens (int ids).

    Each candidate, in order, splits every remaining raw piece at each of its occurrences
    (leftmost first, non-overlapping); empty pieces are dropped.
    """
    if not text:
        return []
    fragments: list[Fragment] = [text]
    for tid in candidates:
        special = texts[tid]
        if not any(isinstance(f, str) and special in f for f in fragments):
            continue
        out: list[Fragment] = []
        for frag in fragments:
            if isinstance(frag, str) and special in frag:
                for j, part in enumerate(frag.split(special)):
                    if j:
                        out.append(tid)
                    if part:
                        out.append(part)
            else:
                out.append(frag)
        fragments = out
    return fragments

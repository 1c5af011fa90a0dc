"""Fill-in-the-middle (the server's `/infill`): the vocabulary's FIM tokens, and the prompt
built from the code before and after the cursor.

A model trained for it sees ``PRE prefix SUF suffix MID`` and writes the middle. The three
tokens come from the GGUF keys llama.cpp's converter writes (``tokenizer.ggml.fim_pre_token_id``
..., or the older ``prefix_token_id`` / ``suffix_token_id`` / ``middle_token_id``); a file
without them is searched for the spellings of the known families (``FIM_STYLES``). Other
files of the project (``input_extra``) go before it, each after the vocabulary's file
separator token when it has one, else after a plain ``--- name ---`` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .tokenizer import Tokenizer

# (family, prefix, suffix, middle, file separator or None, repository name or None)
FIM_STYLES: tuple[tuple[str, str, str, str, str | None, str | None], ...] = (
    ("qwen", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>", "<|repo_name|>"),
    ("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<reponame>"),
    ("deepseek-coder", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", None, None),
    ("codellama", "▁<PRE>", "▁<SUF>", "▁<MID>", None, None),
    ("codellama", "<PRE>", "<SUF>", "<MID>", None, None),
)
_KEYS = {
    "prefix": ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"),
    "suffix": ("tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"),
    "middle": ("tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"),
    "separator": ("tokenizer.ggml.fim_sep_token_id",),
    "repository": ("tokenizer.ggml.fim_rep_token_id",),
}


@dataclass(frozen=True)
class FimTokens:
    prefix: int
    suffix: int
    middle: int
    separator: int | None = None  # between the files given as context
    repository: int | None = None  # before the repository's name


def find_fim_tokens(tokenizer: Tokenizer, metadata: Mapping[str, Any] | None) -> FimTokens | None:
    """The model's FIM tokens, or None when its vocabulary has none."""
    metadata = metadata or {}
    found: dict[str, int | None] = {}
    for role, keys in _KEYS.items():
        found[role] = None
        for key in keys:
            value = metadata.get(key)
            if isinstance(value, int) and 0 <= value < tokenizer.n_vocab:
                found[role] = int(value)
                break
    if found["prefix"] is None or found["suffix"] is None or found["middle"] is None:
        for _family, pre, suf, mid, sep, rep in FIM_STYLES:
            ids = [tokenizer.token_id(t) for t in (pre, suf, mid)]
            if None not in ids:
                found.update(prefix=ids[0], suffix=ids[1], middle=ids[2],
                             separator=found["separator"] if found["separator"] is not None
                             else (tokenizer.token_id(sep) if sep else None),
                             repository=found["repository"] if found["repository"] is not None
                             else (tokenizer.token_id(rep) if rep else None))
                break
        else:
            return None
    return FimTokens(found["prefix"], found["suffix"], found["middle"], found["separator"], found["repository"])


def infill_tokens(tokenizer: Tokenizer, fim: FimTokens, prefix: str, suffix: str, middle: str = "",
                  extra: Sequence[tuple[str, str]] = (), budget: int | None = None) -> list[int]:
    """[BOS] [files] PRE prefix SUF suffix MID middle, as token ids. With `budget` (tokens),
    the files go first, then the start of the prefix and the end of the suffix (the code
    farthest from the cursor) until it fits."""
    encode = lambda text: tokenizer.encode(text, add_bos=False, parse_special=False)  # noqa: E731
    context: list[int] = []
    for name, text in extra:
        if fim.separator is not None:
            context += [fim.separator] + encode(f"{name}\n{text}")
        else:
            context += encode(f"--- {name} ---\n{text}\n")
    before, after, start = encode(prefix), encode(suffix), encode(middle)
    bos = [tokenizer.bos_id] if tokenizer.add_bos and tokenizer.bos_id is not None else []
    if budget is not None:
        fixed = len(bos) + 3 + len(start)
        room = max(budget - fixed, 0)
        if len(before) + len(after) > room:
            context = []
            keep_after = min(len(after), room // 4)  # the cursor's surroundings: mostly what comes before
            keep_before = min(len(before), room - keep_after)
            keep_after = min(len(after), room - keep_before)
            before = before[len(before) - keep_before:] if keep_before else []
            after = after[:keep_after]
        else:
            room -= len(before) + len(after)
            context = context[len(context) - room:] if len(context) > room else context
            if room == 0:
                context = []
    return bos + context + [fim.prefix] + before + [fim.suffix] + after + [fim.middle] + start

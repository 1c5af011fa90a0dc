"""Vocabulary data from GGUF-named metadata (`tokenizer.ggml.*`)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import ModelFileError
from .model_file import TokenizerData
from .string_array import StringArray


def _special_id(metadata: Mapping[str, Any], key: str, n_vocab: int) -> int | None:
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    # Files in the wild carry -1 (or its u32 image) for "none"; llama.cpp ignores ids out
    # of range, and so do we.
    return value if 0 <= value < n_vocab else None


def _flag(metadata: Mapping[str, Any], key: str) -> bool | None:
    value = metadata.get(key)
    return value if isinstance(value, bool) else None


def _is_string_array(value: Any) -> bool:
    # A StringArray holds strings by construction; looking at them would build them all.
    return isinstance(value, StringArray) or (
        isinstance(value, list) and all(isinstance(t, str) for t in value)
    )


def tokenizer_data(path: str, metadata: Mapping[str, Any], embedding_rows: int | None = None) -> TokenizerData | None:
    model = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if model is None and tokens is None:
        return None
    if not isinstance(model, str):
        raise ModelFileError(path, "tokenizer.ggml.model is missing or not a string")
    if not _is_string_array(tokens):
        raise ModelFileError(path, "tokenizer.ggml.tokens is missing or not an array of strings")
    n = len(tokens)

    def per_token(key: str, kind: str) -> np.ndarray | None:
        arr = metadata.get(key)
        if arr is None:
            return None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in kind or arr.shape != (n,):
            raise ModelFileError(path, f"{key} must be a numeric array of {n} entries, one per token")
        return arr

    scores = per_token("tokenizer.ggml.scores", "f")
    types = per_token("tokenizer.ggml.token_type", "iu")
    merges = metadata.get("tokenizer.ggml.merges")
    if merges is not None and not _is_string_array(merges):
        raise ModelFileError(path, "tokenizer.ggml.merges must be an array of strings")
    pre = metadata.get("tokenizer.ggml.pre")
    return TokenizerData(
        model=model,
        pre=pre if isinstance(pre, str) else None,
        tokens=tokens,
        scores=scores.astype(np.float32, copy=False) if scores is not None else None,
        token_types=types.astype(np.int32, copy=False) if types is not None else None,
        merges=merges,
        bos_id=_special_id(metadata, "tokenizer.ggml.bos_token_id", n),
        eos_id=_special_id(metadata, "tokenizer.ggml.eos_token_id", n),
        unk_id=_special_id(metadata, "tokenizer.ggml.unknown_token_id", n),
        pad_id=_special_id(metadata, "tokenizer.ggml.padding_token_id", n),
        add_bos=_flag(metadata, "tokenizer.ggml.add_bos_token"),
        add_eos=_flag(metadata, "tokenizer.ggml.add_eos_token"),
        add_space_prefix=_flag(metadata, "tokenizer.ggml.add_space_prefix"),
        embedding_rows=embedding_rows,
    )

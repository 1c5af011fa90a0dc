"""`load_model`: a model file made ready to evaluate — weights, tokenizer, KV cache."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import ModelFileError, UsageError
from .formats import LlamaHParams, ModelFile, open_model_file
from .llama import KVCache, LlamaWeights, forward, shift_kv_cache
from .lora import apply_lora, load_adapters
from .resident_weights import start_copy
from .threads import ThreadPolicy
from .tokenizer import Tokenizer, build_tokenizer

DEFAULT_MAX_CTX = 4096  # the default n_ctx: the model's own, capped here


@dataclass(frozen=True)
class ModelInfo(LlamaHParams):
    """The model's hyperparameters, where it came from, and the context it was loaded with."""

    path: Path
    name: str
    format_name: str
    file_type: str
    n_ctx: int


class Model:
    """A loaded model. Not thread-safe: one evaluation at a time."""

    def __init__(self, mf: ModelFile, n_ctx: int | None = None, n_threads: int | None = None, lora=None,
                 in_memory: bool = True) -> None:
        self.file = mf
        # the thread count each evaluation runs on: n_threads, or adapted to the machine
        self.threads = ThreadPolicy(n_threads)
        self.weights = LlamaWeights(mf)
        hp = self.weights.hp
        # LoRA adapters [(path, scale), ...], applied at evaluation (engine/lora.py)
        self.adapters = load_adapters(lora, mf.architecture) if lora else []
        if self.adapters:
            apply_lora(self.weights, self.adapters)
        if mf.tokenizer is None:
            raise ModelFileError(mf.path, "the file has no tokenizer vocabulary")
        self.tokenizer: Tokenizer = build_tokenizer(mf.tokenizer, str(mf.path))
        if n_ctx is None:
            n_ctx = min(hp.n_ctx_train or DEFAULT_MAX_CTX, DEFAULT_MAX_CTX)
        if n_ctx < 1:
            raise UsageError(f"context size must be at least 1, got {n_ctx}")
        self.cache = KVCache(hp, n_ctx)
        self._tokens: list[int] = []  # what each cached position holds
        # the matrices read into memory behind the first answer (resident_weights.py): faster to stream
        if in_memory and mf.fd is not None and mf._mm is not None:
            self.weights.resident = start_copy(mf.fd, mf._mm, self.weights.resident_groups(),
                                               self.cache.k.nbytes + self.cache.v.nbytes)
        self.info = ModelInfo(
            **asdict(hp), path=mf.path, name=mf.name, format_name=mf.format_name,
            file_type=mf.file_type_name, n_ctx=n_ctx,
        )

    @property
    def n_ctx(self) -> int:
        return self.cache.n_ctx

    @property
    def n_past(self) -> int:
        """How many positions the KV cache holds."""
        return self.cache.n_past

    @property
    def tokens(self) -> list[int]:
        """The token at each position the KV cache holds (a copy)."""
        return list(self._tokens)

    def reset(self) -> None:
        self.rewind(0)

    def rewind(self, n_past: int) -> None:
        """Forget every position from `n_past` on (keep the common prefix of a new prompt)."""
        if not 0 <= n_past <= self.cache.n_past:
            raise UsageError(f"cannot rewind to {n_past}: the cache holds {self.cache.n_past} positions")
        self.cache.n_past = n_past
        del self._tokens[n_past:]

    def shift_context(self, n_keep: int, n_discard: int) -> None:
        """llama.cpp's context shift: drop positions [n_keep, n_keep + n_discard) and move the
        rest down, re-rotating the cached keys to their new positions."""
        n_past = self.cache.n_past
        if n_keep < 0 or n_discard <= 0 or n_keep + n_discard > n_past:
            raise UsageError(f"cannot discard {n_discard} positions after {n_keep} of {n_past}")
        shift_kv_cache(self.weights.hp, self.cache, n_keep, n_discard, self.weights.rope_freqs)
        del self._tokens[n_keep : n_keep + n_discard]

    def eval(self, ids, *, all_logits: bool = False) -> np.ndarray:
        """Evaluate `ids` after what the cache holds; logits of the last token (1, n_vocab),
        or of every token with all_logits."""
        tokens = self._check_ids(ids)
        start = self.cache.n_past
        if start + len(tokens) > self.n_ctx:
            raise UsageError(
                f"{start + len(tokens)} tokens do not fit the context of {self.n_ctx} "
                f"({start} already evaluated, {len(tokens)} new)"
            )
        self.threads.apply()  # numba's count is per calling thread: set it on this one
        logits = forward(self.weights, self.cache, tokens, start, all_logits)
        self._tokens.extend(int(t) for t in tokens)
        return logits

    def logits(self, ids) -> np.ndarray:
        """float32 logits (len(ids), n_vocab) for every position, from an empty cache."""
        self.reset()
        return self.eval(ids, all_logits=True)

    def _check_ids(self, ids) -> np.ndarray:
        tokens = np.asarray(ids, dtype=np.int64).reshape(-1)
        if tokens.size == 0:
            raise UsageError("nothing to evaluate: the token list is empty")
        bad = tokens[(tokens < 0) | (tokens >= self.info.n_vocab)]
        if bad.size:
            raise UsageError(f"token id {int(bad[0])} is outside the vocabulary of {self.info.n_vocab}")
        return tokens

    @property
    def in_memory(self) -> str:
        """Where the weights are read from: "memory", "being read into memory" or "mapped"."""
        copy = self.weights.resident
        if copy is None or copy.error is not None:
            return "mapped"
        return "memory" if copy.done else "being read into memory"

    def wait_in_memory(self) -> None:
        """Until the weights are read into memory (at once when they stay mapped)."""
        if self.weights.resident is not None:
            self.weights.resident.wait_all()

    def close(self) -> None:
        if self.weights.resident is not None:
            self.weights.resident.stop()
        self.file.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_model(
    path: str | os.PathLike,
    *,
    n_ctx: int | None = None,
    n_threads: int | None = None,
    gqa: int | None = None,
    rms_eps: float | None = None,
    rope_freq_base: float | None = None,
    rope_freq_scale: float | None = None,
    context_length: int | None = None,
    lora=None,
    mmap: bool = False,
) -> Model:
    """Open a GGUF or GGML v3 llama model and make it ready to evaluate.

    `lora`: LoRA adapters applied without merging, [(adapter.gguf, scale), ...] (a bare
    path means scale 1.0). `mmap`: keep the weights mapped from the file instead of reading
    them into memory behind the first answer (resident_weights.py).

    Raises ModelFileError (one line) for files that cannot be read or are not supported.
    """
    if n_threads is not None and n_threads < 1:
        raise UsageError(f"threads must be at least 1, got {n_threads}")
    mf = open_model_file(
        path, gqa=gqa, rms_eps=rms_eps, rope_freq_base=rope_freq_base,
        rope_freq_scale=rope_freq_scale, context_length=context_length,
    )
    try:
        return Model(mf, n_ctx=n_ctx, n_threads=n_threads, lora=lora, in_memory=not mmap)
    except BaseException:
        mf.close()
        raise

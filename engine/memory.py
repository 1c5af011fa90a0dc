"""How much memory a model needs at a context size (the model card's "Max RAM required"),
from its header alone, and whether the machine has it.

    weights    the file: read into memory behind the first answer (resident_weights.py),
               or, mapped (--mmap), every weight page read by the first answer
    KV cache   keys and values of every position, half precision, as KVCache allocates them
    working    one prompt chunk's activations (generate.MAX_CHUNK tokens), the tokenizer's
               tables, and the interpreter with numpy and the compiled kernels

Measured on the default model (SmolLM2-135M, n_ctx 2048): peak resident 316 MB, estimate
352 MB. The estimate errs high: it is there to warn before the system starts swapping.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .formats import LlamaHParams

MiB = 1 << 20
RUNTIME_BYTES = 160 * MiB  # Python, numpy, numba and its compiled kernels, resident (measured ~165 MB)
TOKEN_TABLE_BYTES = 400  # the tokenizer's Python tables, per vocabulary entry (text, id, merges)
DEFAULT_MAX_CTX = 4096  # as engine.model: the model's own context, capped here
CHUNK_TOKENS = 64  # as engine.generate.MAX_CHUNK: prompt tokens evaluated at once


@dataclass(frozen=True)
class MemoryEstimate:
    n_ctx: int
    weights_bytes: int
    kv_cache_bytes: int
    working_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.working_bytes

    def as_dict(self) -> dict:
        return {"n_ctx": self.n_ctx, "weights_bytes": self.weights_bytes, "kv_cache_bytes": self.kv_cache_bytes,
                "working_bytes": self.working_bytes, "memory_required_bytes": self.total_bytes}


def default_n_ctx(hp: LlamaHParams) -> int:
    return min(hp.n_ctx_train or DEFAULT_MAX_CTX, DEFAULT_MAX_CTX)


def kv_cache_bytes(hp: LlamaHParams, n_ctx: int) -> int:
    """Keys and values, every layer and position, 2 bytes each (engine.llama.KVCache)."""
    return 2 * hp.n_layer * n_ctx * hp.n_head_kv * hp.head_dim * 2


def working_bytes(hp: LlamaHParams, n_ctx: int) -> int:
    """float32 activations of one prompt chunk: the residual stream and its norms, q/k/v and
    the attention output (~6 x n_embd), gate/up/SwiGLU (3 x n_ff), a head's attention
    scores over the context, the logits; then the tokenizer and the runtime."""
    per_token = 4 * (6 * hp.n_embd + 3 * hp.n_ff + hp.n_head * n_ctx + hp.n_vocab)
    return CHUNK_TOKENS * per_token + hp.n_vocab * TOKEN_TABLE_BYTES + RUNTIME_BYTES


def estimate(model_file, n_ctx: int | None = None) -> MemoryEstimate:
    """What `model_file` (a ModelFile) needs resident at `n_ctx` (None: the engine's default)."""
    hp = model_file.hparams
    n = n_ctx or default_n_ctx(hp)
    return MemoryEstimate(n, int(model_file.file_size), kv_cache_bytes(hp, n), working_bytes(hp, n))


def available_bytes(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """MemAvailable: what can be had without swapping (None where the system does not say)."""
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def memory_warning(need: MemoryEstimate, available: int | None = None) -> str | None:
    """One line when the model needs more memory than is available; None when it fits."""
    if available is None:
        available = available_bytes()
    if available is None or need.total_bytes <= available:
        return None
    return (f"warning: the model needs about {gib(need.total_bytes)} at context {need.n_ctx} and "
            f"{gib(available)} is available: expect swapping (a smaller -c or a smaller quantization helps)")


def anonymous_buffer(nbytes: int) -> mmap.mmap:
    """Zeroed memory of its own, in huge pages where the system grants them: the weights read
    into memory (resident_weights.py) and the KV cache are streamed whole, and with 4 KB pages
    their reads miss the TLB (a 7B's cache: one head's keys are 256 bytes every 8 KB; at 2,000
    positions attention takes 4.6 ms a layer with 4 KB pages, 2.6 with huge pages). The pages
    are only taken as they are first written."""
    buf = mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buf.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # huge pages off: 4 KB pages work, slower
            pass
    return buf


def anonymous_zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """np.zeros(shape, dtype) in an anonymous_buffer of its own."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(anonymous_buffer(count * dtype.itemsize), dtype=dtype, count=count).reshape(shape)

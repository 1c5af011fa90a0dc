"""The one description of a model file that every reader produces.

Whatever the source (GGUF, GGML v3), a `ModelFile` holds GGUF-named metadata, tensors by
their GGUF names with zero-copy views of their bytes in the mapped file, the Llama
hyperparameters, and the tokenizer data. Nothing in tensor data is read until asked for.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ModelFileError
from ..ggml_types import TYPE_TRAITS, GGMLType, file_type_name
from .hparams import LlamaHParams

# numpy element types of the unquantized ggml types, for typed views.
_PLAIN_DTYPES = {
    GGMLType.F32: np.dtype("<f4"),
    GGMLType.F16: np.dtype("<f2"),
    GGMLType.BF16: np.dtype("<u2"),  # raw bf16 bits; widen with `u32(x) << 16`
    GGMLType.F64: np.dtype("<f8"),
    GGMLType.I8: np.dtype("i1"),
    GGMLType.I16: np.dtype("<i2"),
    GGMLType.I32: np.dtype("<i4"),
    GGMLType.I64: np.dtype("<i8"),
}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lies in the file. `shape` is in ggml order: shape[0] is the row."""

    name: str
    ggml_type: GGMLType
    shape: tuple[int, ...]
    offset: int  # absolute byte offset of the data in the file
    nbytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_rows(self) -> int:
        return self.n_elements // self.shape[0] if self.shape[0] else 0

    @property
    def row_bytes(self) -> int:
        traits = TYPE_TRAITS[self.ggml_type]
        return self.shape[0] // traits.block_size * traits.type_size


@dataclass(frozen=True)
class TokenizerData:
    """The vocabulary as stored (GGUF `tokenizer.ggml.*`); the tokenizer is built from it."""

    model: str  # "llama" (SentencePiece), "gpt2" (byte-level BPE), ...
    pre: str | None  # pre-tokenizer name for BPE vocabularies
    tokens: Sequence[str]  # from a file, a StringArray: its strings are built when read
    scores: np.ndarray | None  # float32 [n_vocab]
    token_types: np.ndarray | None  # int32 [n_vocab], 1 normal .. 6 byte
    merges: Sequence[str] | None
    bos_id: int | None
    eos_id: int | None
    unk_id: int | None
    pad_id: int | None
    add_bos: bool | None
    add_eos: bool | None
    add_space_prefix: bool | None
    # Rows of the file's token_embd.weight (None in a vocabulary-only file): a model has one
    # token per row, checked before the vocabulary's strings are built (a lying vocabulary
    # is then bounded by the model's own tensor data).
    embedding_rows: int | None = None

    @property
    def n_vocab(self) -> int:
        return len(self.tokens)


@dataclass
class ModelFile:
    path: Path
    format: str  # "GGUF" or "GGML"
    version: str  # "3", "ggjt v3", ...
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]
    hparams: LlamaHParams | None
    tokenizer: TokenizerData | None
    file_size: int
    _mm: Any = field(default=None, repr=False)  # the mapped file (or any buffer)
    notes: list[str] = field(default_factory=list)  # facts a user should know (assumed values)
    fd: int | None = field(default=None, repr=False)  # the file, open for reading (None for a buffer)

    # ---- descriptions -------------------------------------------------------------------
    @property
    def format_name(self) -> str:
        if self.format == "GGUF":
            return f"GGUF v{self.version}"
        return f"GGML {self.version}"

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        name = self.metadata.get("general.name")
        return str(name) if name else self.path.stem

    @property
    def file_type(self) -> int | None:
        ft = self.metadata.get("general.file_type")
        return int(ft) if isinstance(ft, (int, np.integer)) else None

    @property
    def file_type_name(self) -> str:
        return file_type_name(self.file_type)

    @property
    def n_params(self) -> int:
        return sum(t.n_elements for t in self.tensors.values())

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def bits_per_weight(self) -> float:
        n = self.n_params
        return 8.0 * self.tensor_bytes / n if n else 0.0

    # ---- tensor data (zero-copy) ---------------------------------------------------------
    def _buffer(self):
        if self._mm is None:
            raise ModelFileError(self.path, "the model file is closed")
        return self._mm

    def tensor_bytes_view(self, name: str) -> np.ndarray:
        """The tensor's bytes as a read-only uint8 view into the mapped file."""
        t = self.tensors[name]
        return np.frombuffer(self._buffer(), dtype=np.uint8, count=t.nbytes, offset=t.offset)

    def tensor_view(self, name: str) -> np.ndarray:
        """A zero-copy view shaped like numpy (reversed ggml shape).

        Plain types (F32, F16, ...) come as their element type; BF16 as uint16 bits;
        block-quantized types as uint8 rows: (…, ne1, row_bytes).
        """
        t = self.tensors[name]
        dtype = _PLAIN_DTYPES.get(t.ggml_type)
        if dtype is not None:
            arr = np.frombuffer(self._buffer(), dtype=dtype, count=t.n_elements, offset=t.offset)
            return arr.reshape(tuple(reversed(t.shape)))
        raw = self.tensor_bytes_view(name)
        return raw.reshape(tuple(reversed(t.shape[1:])) + (t.row_bytes,))

    # ---- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
        mm, self._mm = self._mm, None
        if isinstance(mm, mmap.mmap):
            try:
                mm.close()
            except BufferError:
                # Views handed out earlier still point into the map; it is unmapped when
                # the last of them is gone.
                pass

    def __enter__(self) -> "ModelFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

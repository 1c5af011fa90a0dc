"""Open any llama.cpp model file: sniff the magic, map the file, hand it to its reader."""

from __future__ import annotations

import mmap
import os
import stat
import struct
from pathlib import Path

from ..errors import ModelFileError
from .ggml_reader import LEGACY_MAGICS, OTHER_MAGICS, parse_ggml
from .gguf_reader import GGUF_MAGIC, GGUFParser
from .hparams import HParamOverrides, llama_hparams
from .model_file import ModelFile, TensorInfo
from .tokenizer_data import tokenizer_data


def open_model_file(
    path: str | os.PathLike,
    *,
    gqa: int | None = None,
    rms_eps: float | None = None,
    rope_freq_base: float | None = None,
    rope_freq_scale: float | None = None,
    context_length: int | None = None,
) -> ModelFile:
    """Map a GGUF or GGML file and describe it. Raises `ModelFileError` with one line.

    The keyword arguments override hyperparameters the way llama.cpp's 2023 command line
    did; GGML files need them for what they did not store (see `hparams.GGML_DEFAULTS`).
    """
    overrides = HParamOverrides(gqa, rms_eps, rope_freq_base, rope_freq_scale, context_length)
    p = Path(path)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ModelFileError(p, "is a directory, not a model file")
        if not stat.S_ISREG(st.st_mode):
            # A FIFO or device would block or never end: refuse before opening it.
            raise ModelFileError(p, "is not a regular file")
        f = open(p, "rb")
    except ModelFileError:
        raise
    except FileNotFoundError:
        raise ModelFileError(p, "no such file") from None
    except PermissionError:
        raise ModelFileError(p, "permission denied") from None
    except OSError as e:
        raise ModelFileError(p, f"cannot open: {e.strerror or e}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise ModelFileError(p, "the file is empty")
        if size < 8:
            raise ModelFileError(p, f"too short to be a model file ({size} bytes)")
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:
            raise ModelFileError(p, f"cannot map the file: {e}") from None
    try:
        mf = _describe(p, mm, size, overrides)
    except BaseException:
        try:
            mm.close()
        except BufferError:
            # The error's traceback still holds what was read (a vocabulary's view into
            # the map): the map goes when the error does.
            pass
        raise
    # A second handle on the same file, for reading the weights into memory behind the
    # first answer (engine/resident_weights.py) without mapping their pages.
    try:
        mf.fd = os.open(p, os.O_RDONLY)
        if not os.path.samestat(os.fstat(mf.fd), st):  # replaced since: read nothing from it
            os.close(mf.fd)
            mf.fd = None
    except OSError:
        mf.fd = None
    return mf


def read_model_buffer(buf, name: str = "<memory>", **overrides) -> ModelFile:
    """Describe a model held in memory (bytes, bytearray, mmap): the same checks as a file."""
    if len(buf) == 0:
        raise ModelFileError(name, "the file is empty")
    if len(buf) < 8:
        raise ModelFileError(name, f"too short to be a model file ({len(buf)} bytes)")
    return _describe(Path(name), buf, len(buf), HParamOverrides(**overrides))


def _describe(p: Path, mm, size: int, overrides: HParamOverrides) -> ModelFile:
    path = str(p)
    head = mm[:4]
    (magic,) = struct.unpack("<I", head)
    if head == GGUF_MAGIC:
        version, metadata, _types, infos, data_start, alignment = GGUFParser(mm, path, lazy_strings=True).parse()
        tensors = _place_gguf_tensors(path, infos, data_start, alignment, size)
        fmt, version_label = "GGUF", str(version)
        notes: list[str] = []
    elif magic in LEGACY_MAGICS:
        version_label, header, metadata, infos = parse_ggml(mm, path, overrides)
        tensors = {
            name: TensorInfo(name, gtype, shape, offset, nbytes)
            for name, gtype, shape, offset, nbytes in infos
        }
        fmt = "GGML"
        notes = [
            "GGML files do not store the RMS epsilon, RoPE settings or context length: "
            "defaults or your options are used (Llama 2: --eps 1e-5 -c 4096)"
        ]
    elif magic in OTHER_MAGICS:
        raise ModelFileError(path, f"this is {OTHER_MAGICS[magic]}, not a model")
    else:
        raise ModelFileError(path, f"not a GGUF or GGML model file (magic bytes {head.hex()})")

    embd = tensors.get("token_embd.weight")
    embedding_rows = embd.shape[1] if embd is not None and len(embd.shape) == 2 else None
    tok = tokenizer_data(path, metadata, embedding_rows)
    hparams = llama_hparams(path, metadata, tok.n_vocab if tok else None, overrides)
    return ModelFile(
        path=p,
        format=fmt,
        version=version_label,
        metadata=metadata,
        tensors=tensors,
        hparams=hparams,
        tokenizer=tok,
        file_size=size,
        _mm=mm,
        notes=notes,
    )


def _place_gguf_tensors(path, infos, data_start, alignment, size) -> dict[str, TensorInfo]:
    """Check every tensor's offset (aligned, inside the file, not overlapping another)."""
    tensors: dict[str, TensorInfo] = {}
    for name, gtype, shape, rel_offset, nbytes in infos:
        if name in tensors:
            raise ModelFileError(path, f"duplicate tensor {name}")
        if rel_offset % alignment:
            raise ModelFileError(path, f"tensor {name}: offset {rel_offset} is not a multiple of the alignment {alignment}")
        start = data_start + rel_offset
        if start > size or nbytes > size - start:
            raise ModelFileError(
                path,
                f"tensor {name}: data ({nbytes} bytes at byte {start}) runs past the end of the "
                f"file ({size} bytes); the file is truncated or corrupt",
            )
        tensors[name] = TensorInfo(name, gtype, shape, start, nbytes)
    ordered = sorted(tensors.values(), key=lambda t: t.offset)
    for prev, nxt in zip(ordered, ordered[1:]):
        if nxt.offset < prev.offset + prev.nbytes:
            raise ModelFileError(path, f"tensors {prev.name} and {nxt.name} overlap in the file")
    return tensors

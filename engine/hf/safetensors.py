"""safetensors files: an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte range, then the data. Tensors are views of the mapped file.

Names are listed sorted, as the safetensors library (and so llama.cpp's converter) lists them.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ..errors import ModelFileError
from .tensor_source import DTYPES, LazyTensor, MappedFile

_MAX_HEADER = 100 << 20


def read_safetensors(path: Path) -> tuple[MappedFile, dict[str, LazyTensor]]:
    mf = MappedFile(path)
    try:
        return mf, _parse(path, mf)
    except BaseException:
        mf.close()
        raise


def _parse(path: Path, mf: MappedFile) -> dict[str, LazyTensor]:
    if mf.size < 8:
        raise ModelFileError(path, f"too short to be a safetensors file ({mf.size} bytes)")
    (n,) = struct.unpack_from("<Q", mf.mm, 0)
    if n > _MAX_HEADER or 8 + n > mf.size:
        raise ModelFileError(path, f"not a safetensors file (header of {n} bytes in a file of {mf.size})")
    try:
        header = json.loads(bytes(mf.mm[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(path, f"not a safetensors file: the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise ModelFileError(path, "not a safetensors file: the header is not a JSON object")
    data_start = 8 + n
    tensors = {}
    for name in sorted(k for k in header if k != "__metadata__"):
        meta = header[name]
        try:
            dtype, shape, (begin, end) = meta["dtype"], tuple(int(d) for d in meta["shape"]), meta["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(path, f"tensor {name}: malformed header entry") from None
        if dtype not in DTYPES:
            raise ModelFileError(path, f"tensor {name} has dtype {dtype}, which cannot be converted")
        t = LazyTensor(name, dtype, shape, mf, data_start + int(begin))
        if any(d < 0 for d in shape) or int(end) - int(begin) != t.nbytes:
            raise ModelFileError(path, f"tensor {name}: {int(end) - int(begin)} bytes for shape {list(shape)} {dtype}")
        t.check_bounds()
        tensors[name] = t
    return tensors

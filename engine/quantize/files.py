"""Reading a model's tensor data and writing a new model file: the checks and the input
map that `codeup quantize` and `codeup convert` share."""

from __future__ import annotations

import mmap
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import UsageError


class InputMap:
    """The input file mapped read-only, handing out tensor bytes and giving the pages of a
    tensor back once it is written (llama-quantize unmaps each weight likewise): without
    that, every page read stays resident and a 13 GB input shows a 13 GB RSS."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def view(self, offset: int, nbytes: int) -> np.ndarray:
        return np.frombuffer(self.mm, dtype=np.uint8, count=nbytes, offset=offset)

    def release(self, offset: int, nbytes: int) -> None:
        if not hasattr(mmap, "MADV_DONTNEED") or nbytes <= 0:
            return
        start = offset - offset % mmap.PAGESIZE
        try:
            self.mm.madvise(mmap.MADV_DONTNEED, start, offset + nbytes - start)
        except (OSError, ValueError):
            pass  # only a hint

    def close(self) -> None:
        try:
            self.mm.close()
        except BufferError:
            pass  # views handed out earlier still point into the map; it goes with them


def check_output_path(out: Path, *, overwrite: bool, source: Path | None = None) -> None:
    """Refuse, with one line, an output that cannot or should not be written."""
    folder = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise UsageError(f"{out} is a directory: give a file name")
    if not folder.is_dir():
        raise UsageError(f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to folder {folder}: permission denied")
    if source is not None and out.exists() and source.exists() and os.path.samefile(out, source):
        raise UsageError(f"{out} is the input file: give another output name")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists (use --force to overwrite it)")


def check_free_space(out: Path, need: int) -> None:
    folder = out.parent if str(out.parent) else Path(".")
    free = shutil.disk_usage(folder).free
    if need > free:
        raise UsageError(f"{out}: needs {need / 1e6:,.0f} MB, only {free / 1e6:,.0f} MB free in {folder}")

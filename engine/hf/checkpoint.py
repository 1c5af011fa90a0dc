"""A Hugging Face model folder's weights: one safetensors file or PyTorch `.bin`, or shards
of either listed by their `*.index.json`, as one ordered map of lazy tensors.

Order, as llama.cpp's converter reads them: part files sorted by name, and within a part
the safetensors names sorted, the PyTorch pickle's own order.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelFileError
from .safetensors import read_safetensors
from .tensor_source import LazyTensor, MappedFile
from .torch_zip import read_torch_zip

# (file prefix, suffix, index file, reader), in order of preference.
WEIGHT_FORMATS = (
    ("model", ".safetensors", "model.safetensors.index.json", read_safetensors),
    ("pytorch_model", ".bin", "pytorch_model.bin.index.json", read_torch_zip),
)


class Checkpoint:
    """The weights of a model folder. Close it (or use `with`) to unmap the files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[MappedFile] = []
        self.tensors: dict[str, LazyTensor] = {}
        self.parts: list[Path] = []
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        for prefix, suffix, index_name, reader in WEIGHT_FORMATS:
            parts = sorted(p for p in self.folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix) and p.is_file())
            index_path = self.folder / index_name
            if not parts and not index_path.exists():
                continue
            weight_map = _read_index(index_path) if index_path.exists() else None
            if weight_map is not None:
                listed = sorted(set(weight_map.values()))
                missing = [n for n in listed if not (self.folder / n).is_file()]
                if missing:
                    raise ModelFileError(self.folder / missing[0], f"no such file (listed in {index_name})")
                parts = [self.folder / n for n in listed]
            self.parts = parts
            for part in parts:
                mf, tensors = reader(part)
                self.files.append(mf)
                for name, t in tensors.items():
                    if name in self.tensors:
                        raise ModelFileError(part, f"tensor {name} is also in another part")
                    self.tensors[name] = t
            if weight_map is not None:
                absent = [n for n in weight_map if n not in self.tensors]
                if absent:
                    raise ModelFileError(self.folder / weight_map[absent[0]], f"tensor {absent[0]} listed in {index_name} is not in it")
            return
        raise ModelFileError(self.folder, "no weights: expected model*.safetensors or pytorch_model*.bin")

    @property
    def format_name(self) -> str:
        if not self.parts:
            return "none"
        kind = "safetensors" if self.parts[0].suffix == ".safetensors" else "PyTorch zip"
        return f"{kind}, {len(self.parts)} file{'s' if len(self.parts) > 1 else ''}"

    def close(self) -> None:
        for f in self.files:
            f.close()
        self.files = []

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_index(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        weight_map = data["weight_map"]
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise TypeError("weight_map is not a map of names to files")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ModelFileError(path, f"unreadable index ({type(e).__name__}: {e})") from None
    for f in weight_map.values():
        if "/" in f or "\\" in f or f.startswith("."):
            raise ModelFileError(path, f"index names a file outside the folder: {f}")
    return weight_map

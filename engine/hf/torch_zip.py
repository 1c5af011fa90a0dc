"""PyTorch `.bin` checkpoints (torch.save's zip format) read without PyTorch and without
running pickled code.

A checkpoint is a zip archive: `<name>/data.pkl` pickles the state dict, and each tensor's
storage is the stored (uncompressed) entry `<name>/data/<key>`, referenced from the pickle
by a persistent id ('storage', <storage class>, key, location, numel). The pickle itself
is read by `SafeUnpickler`: it resolves only the globals a state dict is made of (the
tensor-rebuild functions, the typed storage classes and collections.OrderedDict), each to
a stand-in of ours; any other global (os.system, builtins.eval, ...) stops the load with
one line naming it, before anything is called. Tensor data is never copied: a tensor is a
LazyTensor pointing into the mapped archive.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

from ..errors import ModelFileError
from .tensor_source import LazyTensor, MappedFile

# torch's typed storage classes -> checkpoint dtype names.
STORAGE_DTYPES = {
    "DoubleStorage": "F64", "FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16",
    "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
    "ByteStorage": "U8", "BoolStorage": "BOOL",
}


class UnsafePickleError(ModelFileError):
    """The pickle names a global that a checkpoint has no business with."""


class _StorageType:
    __slots__ = ("dtype",)  # no __dict__: a pickle's BUILD cannot retag a storage class

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def __setstate__(self, state):
        raise pickle.UnpicklingError("a storage class cannot be modified")


class _Storage:
    def __init__(self, dtype: str, key: str, numel: int) -> None:
        self.dtype, self.key, self.numel = dtype, key, numel


class _TensorRef:
    """What _rebuild_tensor_v2 would have built: a view of a storage."""

    def __init__(self, storage: _Storage, offset: int, size, stride) -> None:
        self.storage, self.offset = storage, int(offset)
        self.shape = tuple(int(d) for d in size)
        self.strides = tuple(int(s) for s in stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return data


class _OrderedDict(collections.OrderedDict):
    pass


# (module, name) -> the stand-in the pickle gets. Nothing else resolves.
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("collections", "OrderedDict"): _OrderedDict,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickles a state dict; refuses every global outside `_ALLOWED`."""

    def __init__(self, data: bytes, path) -> None:
        super().__init__(io.BytesIO(data))
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            found = _ALLOWED[(module, name)]
            return _StorageType(found.dtype) if isinstance(found, _StorageType) else found
        except KeyError:
            raise UnsafePickleError(
                self.path, f"refusing the pickled global {module}.{name}: a PyTorch checkpoint needs only tensors"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:60]}")
        return _Storage(pid[1].dtype, str(pid[2]), int(pid[4]))


def is_torch_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def read_torch_zip(path: Path) -> tuple[MappedFile, dict[str, LazyTensor]]:
    """The tensors of a PyTorch zip checkpoint, in the pickle's order."""
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError as e:
        raise ModelFileError(path, f"cannot open: {e.strerror or e}") from None
    if not magic.startswith(b"PK\x03\x04"):
        if magic[:2] == b"\x80\x02" or magic[:1] == b"\x80":
            raise ModelFileError(path, "a legacy (pre-1.6, non-zip) PyTorch file: re-save it with a newer torch, or use safetensors")
        raise ModelFileError(path, "not a PyTorch zip checkpoint")
    mf = MappedFile(path)
    try:
        return mf, _read(path, mf)
    except BaseException:
        mf.close()
        raise


def _read(path: Path, mf: MappedFile) -> dict[str, LazyTensor]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ModelFileError(path, f"not a readable zip archive ({e}); truncated?") from None
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        pkl = [n for n in infos if n.endswith("data.pkl") and n.count("/") <= 1]
        if len(pkl) != 1:
            raise ModelFileError(path, "not a PyTorch checkpoint: no data.pkl in the archive")
        prefix = pkl[0][: -len("data.pkl")]
        try:
            raw = zf.read(pkl[0])
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ModelFileError(path, f"cannot read data.pkl ({e})") from None
        byteorder = infos.get(prefix + "byteorder")
        if byteorder is not None and zf.read(byteorder).strip() not in (b"little", b""):
            raise ModelFileError(path, "a big-endian checkpoint cannot be converted")
        try:
            obj = SafeUnpickler(raw, path).load()
        except ModelFileError:
            raise
        except Exception as e:  # noqa: BLE001 - any malformed pickle is one line
            raise ModelFileError(path, f"malformed checkpoint pickle ({type(e).__name__}: {e})") from None
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise ModelFileError(path, f"the pickle holds a {type(obj).__name__}, not a state dict of tensors")
        tensors = {}
        offsets: dict[str, int] = {}
        for name, ref in obj.items():
            if not isinstance(ref, _TensorRef):
                continue  # e.g. a step counter stored next to the weights
            key = ref.storage.key
            if key not in offsets:
                info = infos.get(f"{prefix}data/{key}")
                if info is None:
                    raise ModelFileError(path, f"tensor {name}: storage {key} is missing from the archive")
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ModelFileError(path, f"tensor {name}: storage {key} is compressed; torch.save stores it plain")
                offsets[key] = _data_offset(path, mf, info)
            t = LazyTensor(str(name), ref.storage.dtype, ref.shape, mf, 0, ref.strides)
            t.offset = offsets[key] + ref.offset * (t.nbytes // t.n_elements if t.n_elements else 0)
            if t.n_elements:
                itemsize = t.nbytes // t.n_elements
                need = ref.offset + t._span() // itemsize
                if need > ref.storage.numel:
                    raise ModelFileError(path, f"tensor {name} reaches past its storage")
            t.check_bounds()
            tensors[str(name)] = t
        return tensors


def _data_offset(path: Path, mf: MappedFile, info: zipfile.ZipInfo) -> int:
    """Where a stored entry's bytes begin: after its local header, name and extra field."""
    h = info.header_offset
    if h + 30 > mf.size or mf.mm[h : h + 4] != b"PK\x03\x04":
        raise ModelFileError(path, f"{info.filename}: bad local header (truncated?)")
    name_len, extra_len = struct.unpack_from("<HH", mf.mm, h + 26)
    start = h + 30 + name_len + extra_len
    if start + info.file_size > mf.size:
        raise ModelFileError(path, f"{info.filename} lies beyond the end of the file (truncated?)")
    return start

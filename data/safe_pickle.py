"""Reading the pickles of untrusted label files without running them.

A pickle is a program: plain `pickle.load` (and `torch.load(weights_only=False)`) calls whatever globals it
names, so a label file from the internet could run any code. ArrayUnpickler resolves only the globals that a
dict of numpy arrays or of integer tensors needs, to functions of its own or to harmless classes, and refuses
every other global before anything is called. `load_torch_file` reads both containers of `torch.save`: the zip
archive of torch >= 1.6 (CIFAR-N's files) and the legacy stream of pickles before it (CAL's IDN files), with
every integer tensor turned into a numpy array; float tensors, modules and everything else are refused.
"""

import codecs
import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

try:  # numpy >= 2 moved it; pickles name it under either module path
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core.multiarray import _reconstruct

# torch's integer storage types, by the name a pickle gives them, and the numpy type of their bytes.
_INTEGER_STORAGES = {
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
}
# The legacy format's first two pickles (torch/serialization.py, _legacy_save).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


@dataclass(frozen=True)
class _Storage:
    """A tensor storage named by the pickle; its bytes come after the pickle (legacy) or beside it (zip)."""

    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _Tensor:
    """A tensor as the pickle describes it, turned into a numpy array once its storage's bytes are read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stands in for torch._utils._rebuild_tensor_v2: records the view, calls nothing."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"a tensor over a {type(storage).__name__}, not over an integer storage")
    ints = (storage_offset, *size, *stride)
    if not all(type(v) is int and v >= 0 for v in ints) or len(size) != len(stride):
        raise pickle.UnpicklingError(f"a tensor with an invalid view (offset {storage_offset}, size {size})")
    return _Tensor(storage, storage_offset, tuple(size), tuple(stride))


_ALLOWED_GLOBALS = {
    # numpy arrays
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    # torch tensors, as records of their views (the empty OrderedDict is a tensor's backward hooks)
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): OrderedDict,
    **{("torch", name): dtype for name, dtype in _INTEGER_STORAGES.items()},
}


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain data (dicts, lists, numbers, strings), numpy arrays and integer tensor storages only: any
    other global, and any persistent id but an integer storage's, is refused before anything is called."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None

    def persistent_load(self, pid):
        # ("storage", storage type, key, location, numel) in zip archives, plus view metadata in legacy files.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] in ("storage", b"storage")):
            raise pickle.UnpicklingError(f"refused a persistent id {str(pid)[:60]!r} (not a tensor storage)")
        _, dtype, key, _, numel, *view = pid
        integer = isinstance(dtype, np.dtype) and dtype in _INTEGER_STORAGES.values()
        if not integer or not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise pickle.UnpicklingError(f"refused a persistent id {str(pid)[:60]!r} (not an integer storage)")
        if view and view[0] is not None:
            raise pickle.UnpicklingError("refused a storage view (label files hold whole storages)")
        return _Storage(key, dtype, numel)


def _load(stream) -> object:
    return ArrayUnpickler(stream).load()


def _array(tensor: _Tensor, storages: dict[str, np.ndarray]) -> np.ndarray:
    base = storages[tensor.storage.key]
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride, strict=True))
    if 0 in tensor.size:
        return np.empty(tensor.size, dtype=base.dtype)
    if last >= len(base):
        raise ValueError(f"a tensor reaches past its storage of {len(base)} elements")
    strides = tuple(s * base.itemsize for s in tensor.stride)
    return np.lib.stride_tricks.as_strided(base[tensor.offset :], tensor.size, strides).copy()


def _materialize(node, storages: dict[str, np.ndarray]):
    """`node` with every _Tensor in it (in dicts, lists, tuples) replaced by its numpy array."""
    if isinstance(node, _Tensor):
        return _array(node, storages)
    if isinstance(node, dict):
        return {key: _materialize(value, storages) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return type(node)(_materialize(value, storages) for value in node)
    return node


def _storages_in(node) -> dict[str, _Storage]:
    if isinstance(node, _Tensor):
        return {node.storage.key: node.storage}
    values = node.values() if isinstance(node, dict) else node if isinstance(node, list | tuple) else ()
    return {key: storage for value in values for key, storage in _storages_in(value).items()}


def _storage_array(storage: _Storage, raw: bytes) -> np.ndarray:
    if len(raw) != storage.numel * storage.dtype.itemsize:
        raise ValueError(f"storage {storage.key} holds {len(raw)} bytes, not {storage.numel} elements")
    return np.frombuffer(raw, dtype=storage.dtype)


def _load_zip(content: bytes) -> object:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name == "data.pkl" or name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError("not a torch.save archive (no single data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
            raise ValueError("a big-endian torch.save archive")
        obj = _load(io.BytesIO(archive.read(pickles[0])))
        storages = {key: _storage_array(s, archive.read(f"{prefix}data/{key}")) for key, s in _storages_in(obj).items()}
    return _materialize(obj, storages)


def _load_legacy(content: bytes) -> object:
    stream = io.BytesIO(content)
    if _load(stream) != _LEGACY_MAGIC or _load(stream) != _LEGACY_PROTOCOL:
        raise ValueError("neither a zip archive nor a legacy torch.save file (no magic number)")
    sys_info = _load(stream)
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise ValueError("a legacy torch.save file written on a big-endian machine")
    obj = _load(stream)
    keys = _load(stream)  # the order in which the storages' bytes follow
    named = _storages_in(obj)
    if not isinstance(keys, list) or sorted(keys) != sorted(named):
        raise ValueError("the storage keys after the pickle do not match the tensors in it")
    storages = {}
    for key in keys:
        storage = named[key]
        numel = int.from_bytes(stream.read(8), "little")
        if numel != storage.numel:
            raise ValueError(f"storage {key} holds {numel} elements, the pickle says {storage.numel}")
        storages[key] = _storage_array(storage, stream.read(numel * storage.dtype.itemsize))
    return _materialize(obj, storages)


def load_torch_file(content: bytes) -> object:
    """The object a torch.save file's bytes hold, every integer tensor in it as a numpy array; dicts, lists,
    numpy arrays and plain values only. Raises pickle.UnpicklingError for what it refuses to unpickle and
    ValueError (or whatever zipfile and pickle raise) for a damaged file."""
    return _load_zip(content) if zipfile.is_zipfile(io.BytesIO(content)) else _load_legacy(content)

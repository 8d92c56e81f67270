"""Noisy-label files (noise_type=file): the published ones in the field's formats, read without running anything
and checked against the training set; and a run's labels written in those formats (scripts.export_labels).

The format is the file's suffix:
  .npy   an integer vector, read with allow_pickle=False: PLC's cifar{10,100}-{1,2,3}-{0.35,0.70}.npy, and a
         run's own noisy_labels.npy, so any run's labels can be reused exactly;
  .csv   a header line and one line per image, with a column label_noisy and, where present, label (the clean
         label): chenpf1025/IDN's dependent{rate}.csv;
  .json  a list of ints: LogitClip's, ε-softmax's and JAL's cifar{10,100}_dependent_{rate}.json;
  .pt    a torch.save dict with noise_label_train and, where present, clean_label_train: UCSC-REAL/CAL's
         IDN_{rate}_C{10,100}.pt, in torch's legacy (pre-zip) format; a zip archive is read too. Only integer
         arrays are unpickled (data.safe_pickle).
A file labels the training images in torchvision's order from the first one, so its length must equal the
training set's: a file of the first 45,000 labels (PLC's) goes with dataset.train_size=45000. Where it carries
clean labels, they must equal the dataset's.
"""

import csv
import hashlib
import io
import json
import pathlib
from dataclasses import dataclass

import numpy as np
import torch

from data.errors import DatasetError, one_line
from data.safe_pickle import load_torch_file

READ_FORMATS = ("npy", "csv", "json", "pt")
WRITE_FORMATS = ("npy", "csv", "json")
CSV_COLUMNS = ("label", "label_noisy")  # clean, noisy
PT_KEYS = ("clean_label_train", "noise_label_train")  # clean, noisy


class LabelFileError(ValueError):
    """A label file that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class LabelFile:
    noisy: np.ndarray  # int64 (N,)
    clean: np.ndarray | None  # int64 (N,), for the formats that carry the clean labels too
    sha256: str  # of the file's bytes


def integer_labels(values, num_classes: int) -> np.ndarray:
    """`values` as an int64 vector; ValueError (a phrase) unless a 1-D integer array of labels in [0, num_classes)."""
    array = np.asarray(values)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"is not a 1-D integer array ({array.dtype}, shape {array.shape})")
    if len(array) and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"has labels outside [0, {num_classes}) (from {array.min()} to {array.max()})")
    return array.astype(np.int64)


def mismatch(clean: torch.Tensor, train_labels: torch.Tensor) -> str | None:
    """Where a file's clean labels differ from the dataset's: "at K of N positions (first at index I)", or None."""
    differ = (clean.to(torch.int64).cpu() != train_labels.to(torch.int64).cpu()).nonzero().flatten()
    if len(differ) == 0:
        return None
    return f"at {len(differ)} of {len(clean)} positions (first at index {int(differ[0])})"


def _npy(content: bytes) -> tuple[object, None]:
    return np.load(io.BytesIO(content), allow_pickle=False), None


def _csv(content: bytes) -> tuple[object, object]:
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
    header = [name.strip() for name in rows[0]] if rows else []
    if CSV_COLUMNS[1] not in header:
        raise LabelFileError(f"has no column {CSV_COLUMNS[1]!r} in its header {','.join(header)!r}")
    table = np.array([[int(v) for v in row] for row in rows[1:] if row], dtype=np.int64).reshape(-1, len(header))
    clean = table[:, header.index(CSV_COLUMNS[0])] if CSV_COLUMNS[0] in header else None
    return table[:, header.index(CSV_COLUMNS[1])], clean


def _json(content: bytes) -> tuple[object, None]:
    values = json.loads(content)
    if not isinstance(values, list) or not all(type(v) is int for v in values):
        raise LabelFileError("is not a JSON list of integers")
    return np.array(values, dtype=np.int64), None


def _pt(content: bytes) -> tuple[object, object]:
    data = load_torch_file(content)
    if not isinstance(data, dict) or PT_KEYS[1] not in data:
        keys = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise LabelFileError(f"holds no {PT_KEYS[1]!r} (found: {keys})")
    return data[PT_KEYS[1]], data.get(PT_KEYS[0])


_READERS = {"npy": _npy, "csv": _csv, "json": _json, "pt": _pt}


def read_label_file(path: str | pathlib.Path, num_classes: int) -> LabelFile:
    """The labels of a noise file, in the format its suffix names; LabelFileError (one line) when the file is
    missing, unreadable, refused (a pickle that would call anything but integer arrays), or holds anything but
    labels in [0, num_classes) with as many clean labels as noisy ones."""
    path = pathlib.Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in _READERS:
        raise LabelFileError(f"{path}: unknown format {path.suffix!r}; the suffix must be one of "
                             f"{', '.join('.' + f for f in READ_FORMATS)}")
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise LabelFileError(f"{path}: no such file") from None
    except OSError as error:
        raise LabelFileError(f"{path}: cannot be read ({one_line(error)})") from None
    try:
        noisy, clean = _READERS[fmt](content)
    except LabelFileError as error:
        raise LabelFileError(f"{path} {error}") from None
    except Exception as error:  # noqa: BLE001 - a damaged or hostile file fails in many ways; all read as one line
        raise LabelFileError(f"{path}: cannot be read as .{fmt} safely ({one_line(error)})") from None
    labels = {}
    for name, values in (("noisy", noisy), ("clean", clean)):
        if values is not None:
            try:
                labels[name] = integer_labels(values, num_classes)
            except ValueError as error:
                raise LabelFileError(f"{path}: its {name} labels {error}") from None
    if "clean" in labels and len(labels["clean"]) != len(labels["noisy"]):
        raise LabelFileError(f"{path} holds {len(labels['noisy'])} noisy but {len(labels['clean'])} clean labels")
    return LabelFile(labels["noisy"], labels.get("clean"), hashlib.sha256(content).hexdigest())


def sha256_of(path: str | pathlib.Path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def checked_label_file(
    path: str | pathlib.Path, sha256: str | None, num_classes: int, dataset: str, train_images: int
) -> LabelFile:
    """read_label_file, then the checks that need no dataset: the SHA-256 when given, and the length."""
    file = read_label_file(path, num_classes)
    if sha256 is not None and file.sha256 != sha256.lower():
        raise LabelFileError(f"{path} has sha256 {file.sha256}, not the noise_sha256 given ({sha256})")
    if len(file.noisy) != train_images:
        hint = ""
        if len(file.noisy) < train_images:  # PLC's files label the first 45,000 of 50,000 images
            hint = f"; a file of the first {len(file.noisy)} training labels needs dataset.train_size={len(file.noisy)}"
        raise LabelFileError(
            f"{path} holds {len(file.noisy)} labels but the training set of {dataset} has {train_images}{hint}"
        )
    return file


def label_file_bytes(noisy: np.ndarray, clean: np.ndarray | None, fmt: str) -> bytes:
    """The bytes of a label file in format `fmt` (WRITE_FORMATS), as the published files of that format are
    laid out; csv needs the clean labels."""
    noisy = np.asarray(noisy, dtype=np.int64)
    if fmt == "npy":
        out = io.BytesIO()
        np.save(out, noisy)
        return out.getvalue()
    if fmt == "json":
        return json.dumps(noisy.tolist()).encode()
    if fmt == "csv":
        if clean is None:
            raise ValueError("csv holds the clean labels too")
        rows = "".join(f"{c},{n}\n" for c, n in zip(np.asarray(clean).tolist(), noisy.tolist(), strict=True))
        return (",".join(CSV_COLUMNS) + "\n" + rows).encode()
    raise ValueError(f"format must be one of {', '.join(WRITE_FORMATS)}, got {fmt!r}")


def file_noisy_labels(
    path: str | pathlib.Path, sha256: str | None, train_labels: torch.Tensor, num_classes: int, dataset: str
) -> torch.Tensor:
    """The noisy labels of a noise file for the training set `train_labels`: int64 (N,), after every check
    (checked_label_file's, and where the file carries clean labels, that they equal `train_labels`); a
    DatasetError of one line starting with "noise_file:" otherwise."""
    try:
        file = checked_label_file(path, sha256, num_classes, dataset, len(train_labels))
    except LabelFileError as error:
        raise DatasetError(f"noise_file: {error}") from None
    differ = None if file.clean is None else mismatch(torch.from_numpy(file.clean), train_labels)
    if differ:
        raise DatasetError(
            f"noise_file: the clean labels of {path} differ from the {dataset} training labels {differ}; the file "
            "belongs to another dataset or order"
        )
    return torch.from_numpy(file.noisy)

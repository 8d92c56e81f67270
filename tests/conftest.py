import gzip
import ipaddress
import os
import pathlib
import socket
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# `data`, `models` and `experiments` are top-level packages of the repository, imported without installing it.
sys.path.insert(0, str(REPO))

# No test touches the network, even where it is reachable (a test that would download a dataset fails instead): this
# process refuses connections to anything but this machine, and the train.py processes that tests start send their
# downloads (urllib honours these variables) to a local port where nothing listens.
os.environ.update({name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")})
for name in ("no_proxy", "NO_PROXY"):
    os.environ.pop(name, None)
_connect = socket.socket.connect


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return host == "localhost"


def _local_only(self: socket.socket, address) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        raise OSError(f"a test tried to reach {address[0]}: tests never touch the network")
    _connect(self, address)


socket.socket.connect = _local_only

# A folder holding the real MNIST test set as published (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz);
# the tests that need it skip without it.
MNIST_T10K = os.environ.get("TCE_MNIST_T10K")


def write_idx(path: pathlib.Path, array: np.ndarray) -> None:
    """A uint8 array in MNIST's IDX format: magic (0, 0, 8 = uint8, ndim), big-endian int32 dims, the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.fixture
def mnist_writer():
    """write_mnist_root, for tests that build MNIST roots of their own."""
    return write_mnist_root


def write_mnist_root(root: pathlib.Path, train_images, train_labels, test_images, test_labels) -> pathlib.Path:
    """An MNIST root as torchvision.datasets.MNIST reads it: <root>/MNIST/raw/ with the four uncompressed files."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    write_idx(raw / "train-images-idx3-ubyte", train_images)
    write_idx(raw / "train-labels-idx1-ubyte", train_labels)
    write_idx(raw / "t10k-images-idx3-ubyte", test_images)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_labels)
    return root


@pytest.fixture(scope="session")
def mnist_t10k() -> tuple[np.ndarray, np.ndarray]:
    """The real MNIST test set: uint8 images (10000, 28, 28) and labels (10000,); skips the test when absent."""
    folder = pathlib.Path(MNIST_T10K or "")
    images_gz, labels_gz = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    if not (MNIST_T10K and images_gz.is_file() and labels_gz.is_file()):
        pytest.skip("real MNIST test digits not found: set TCE_MNIST_T10K to their folder")
    images = np.frombuffer(gzip.decompress(images_gz.read_bytes()), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.decompress(labels_gz.read_bytes()), np.uint8, offset=8)
    return images, labels


@pytest.fixture(scope="session")
def mnist_t10k_root(mnist_t10k, tmp_path_factory) -> pathlib.Path:
    """A data root holding real digits as MNIST: the first 8000 test images as its train split, the last 2000
    as its test split. load_dataset("mnist", root, download=False) reads it."""
    images, labels = mnist_t10k
    root = tmp_path_factory.mktemp("mnist-t10k-root")
    return write_mnist_root(root, images[:8000], labels[:8000], images[8000:], labels[8000:])


@pytest.fixture
def fresh_models(monkeypatch):
    """The engine keeps one model per process and shape (experiments/trainer.py); a test that compiles or changes
    it gets its own, and leaves none behind."""
    from experiments import trainer

    monkeypatch.setattr(trainer, "_MODELS", {})

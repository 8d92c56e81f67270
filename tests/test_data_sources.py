"""Reading the four real datasets through torchvision, in their real on-disk formats, and the cache."""

import pathlib
import pickle
import warnings

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets as tvd

from data import DATASETS, ENV_ROOT, DatasetError, class_map, corrupt_labels, load_dataset, resolve_root, train_set_size

RNG = np.random.default_rng(0)


def _images(count: int, channels: int, size: int = 32) -> np.ndarray:
    return RNG.integers(0, 256, (count, channels, size, size), dtype=np.uint8)


def _without_md5(monkeypatch, cls) -> None:
    """torchvision verifies the official files' md5 sums; tiny files in the same format get None (exists only).
    The parsing stays torchvision's."""
    monkeypatch.setattr(cls, "train_list", [[name, None] for name, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[name, None] for name, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": None})


def _pickle(path: pathlib.Path, obj) -> None:
    path.write_bytes(pickle.dumps(obj))


def write_cifar10(root: pathlib.Path, monkeypatch):
    _without_md5(monkeypatch, tvd.CIFAR10)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train, test = _images(10, 3), _images(4, 3)
    train_labels, test_labels = RNG.integers(0, 10, 10), RNG.integers(0, 10, 4)
    # Five training batches of two images each; rows are the 3072 bytes R plane, G plane, B plane.
    for batch in range(5):
        part = slice(2 * batch, 2 * batch + 2)
        _pickle(
            folder / f"data_batch_{batch + 1}",
            {"data": train[part].reshape(2, -1), "labels": train_labels[part].tolist()},
        )
    _pickle(folder / "test_batch", {"data": test.reshape(4, -1), "labels": test_labels.tolist()})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return train, train_labels, test, test_labels


def write_cifar100(root: pathlib.Path, monkeypatch):
    _without_md5(monkeypatch, tvd.CIFAR100)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    train, test = _images(6, 3), _images(3, 3)
    train_labels, test_labels = np.array([0, 99, 42, 7, 63, 99]), np.array([5, 0, 98])
    # Coarse labels differ from the fine ones, so reading the wrong key would show.
    _pickle(
        folder / "train",
        {
            "data": train.reshape(6, -1),
            "fine_labels": train_labels.tolist(),
            "coarse_labels": (train_labels // 5).tolist(),
        },
    )
    _pickle(
        folder / "test",
        {
            "data": test.reshape(3, -1),
            "fine_labels": test_labels.tolist(),
            "coarse_labels": (test_labels // 5).tolist(),
        },
    )
    _pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)]})
    return train, train_labels, test, test_labels


def write_svhn(root: pathlib.Path, monkeypatch):
    monkeypatch.setattr(
        tvd.SVHN, "split_list", {k: [url, name, None] for k, (url, name, _) in tvd.SVHN.split_list.items()}
    )
    root.mkdir(parents=True, exist_ok=True)
    train, test = _images(7, 3), _images(3, 3)
    train_digits, test_digits = np.array([0, 1, 2, 9, 0, 5, 0]), np.array([3, 0, 8])
    # The .mat files hold X as (H, W, C, N) and y as (N, 1), with digit 0 stored as label 10.
    for name, images, digits in (("train", train, train_digits), ("test", test, test_digits)):
        scipy.io.savemat(
            root / f"{name}_32x32.mat",
            {"X": images.transpose(2, 3, 1, 0), "y": np.where(digits == 0, 10, digits)[:, None]},
        )
    return train, train_digits, test, test_digits


def write_mnist(root: pathlib.Path, monkeypatch, writer):
    train, test = _images(5, 1, 28)[:, 0], _images(3, 1, 28)[:, 0]
    train_labels, test_labels = np.array([3, 1, 4, 1, 5]), np.array([9, 2, 6])
    writer(root, train, train_labels, test, test_labels)
    # As the datasets come as 32x32: MNIST padded with two black pixels on each side.
    pad = ((0, 0), (0, 0), (2, 2), (2, 2))
    return np.pad(train[:, None], pad), train_labels, np.pad(test[:, None], pad), test_labels


WRITERS = {"cifar10": write_cifar10, "cifar100": write_cifar100, "svhn": write_svhn, "mnist": write_mnist}


@pytest.fixture
def write(monkeypatch, mnist_writer):
    """write(name, root) -> (train_images, train_labels, test_images, test_labels) as the loader should return."""

    def write_dataset(name: str, root: pathlib.Path):
        if name == "mnist":
            return write_mnist(root, monkeypatch, mnist_writer)
        return WRITERS[name](root, monkeypatch)

    return write_dataset


@pytest.mark.parametrize(
    "name, channels, num_classes, flip",
    [("mnist", 1, 10, False), ("cifar10", 3, 10, True), ("cifar100", 3, 100, True), ("svhn", 3, 10, False)],
)
def test_reads_the_real_format(name, channels, num_classes, flip, write, tmp_path):
    train, train_labels, test, test_labels = write(name, tmp_path)
    dataset = load_dataset(name, str(tmp_path), download=False)
    assert dataset.name == name
    assert dataset.train_images.dtype == torch.uint8 and dataset.train_labels.dtype == torch.int64
    assert dataset.train_images.shape == (len(train), channels, 32, 32)
    assert dataset.test_images.shape == (len(test), channels, 32, 32)
    assert np.array_equal(dataset.train_images.numpy(), train)
    assert np.array_equal(dataset.test_images.numpy(), test)
    assert dataset.train_labels.tolist() == train_labels.tolist()
    assert dataset.test_labels.tolist() == test_labels.tolist()
    assert (dataset.num_classes, dataset.flip, dataset.in_channels) == (num_classes, flip, channels)
    assert (dataset.superclass is None) == (name != "cifar100")


def test_mnist_border_is_black(write, tmp_path):
    write("mnist", tmp_path)
    images = load_dataset("mnist", str(tmp_path), download=False).train_images
    inner = torch.zeros(32, 32, dtype=torch.bool)
    inner[2:30, 2:30] = True
    assert (images[:, :, ~inner] == 0).all()
    assert (images[:, :, inner] > 0).any()


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "svhn"])
def test_second_load_reads_the_cache(name, write, tmp_path):
    write(name, tmp_path)
    first = load_dataset(name, str(tmp_path), download=False)
    cache = tmp_path / "tce-cache" / f"{name}.pt"
    assert cache.is_file()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary file left behind
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != cache:
            path.unlink()
    second = load_dataset(name, str(tmp_path), download=False)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, field), getattr(second, field))
    if name == "cifar100":
        assert torch.equal(first.superclass, second.superclass)


def test_sizes_keep_the_first_images(write, tmp_path):
    train, train_labels, test, _ = write("cifar10", tmp_path)
    full = load_dataset("cifar10", str(tmp_path), download=False)
    small = load_dataset("cifar10", str(tmp_path), train_size=3, test_size=2, download=False)
    assert np.array_equal(small.train_images.numpy(), train[:3])
    assert small.train_labels.tolist() == train_labels[:3].tolist()
    assert np.array_equal(small.test_images.numpy(), test[:2])
    # The cache holds the full splits: a later larger request still gets everything.
    assert torch.equal(load_dataset("cifar10", str(tmp_path), download=False).train_images, full.train_images)
    assert len(load_dataset("cifar10", str(tmp_path), train_size=1000, download=False).train_images) == 10


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "svhn"])
def test_missing_files_name_the_root(name, tmp_path):
    with pytest.raises(DatasetError) as caught:
        load_dataset(name, str(tmp_path), download=False)
    message = str(caught.value)
    assert "\n" not in message
    assert name in message and str(tmp_path) in message
    assert not (tmp_path / "tce-cache").exists()


@pytest.mark.parametrize(
    "name, corrupted",
    [
        ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("cifar10", "cifar-10-batches-py/data_batch_3"),
        ("cifar100", "cifar-100-python/test"),
        ("svhn", "train_32x32.mat"),
    ],
)
def test_corrupt_files_raise_dataset_error(name, corrupted, write, tmp_path):
    write(name, tmp_path)
    (tmp_path / corrupted).write_bytes(b"\x00\x01 not a dataset file")
    with pytest.raises(DatasetError) as caught:
        load_dataset(name, str(tmp_path), download=False)
    assert "\n" not in str(caught.value) and str(tmp_path) in str(caught.value)


def test_corrupt_cache_raises_dataset_error(write, tmp_path):
    write("cifar10", tmp_path)
    load_dataset("cifar10", str(tmp_path), download=False)
    (tmp_path / "tce-cache" / "cifar10.pt").write_bytes(b"truncated")
    with pytest.raises(DatasetError, match="delete it"):
        load_dataset("cifar10", str(tmp_path), download=False)


def test_unknown_name_lists_the_valid_ones(tmp_path):
    with pytest.raises(DatasetError) as caught:
        load_dataset("imagenet", str(tmp_path))
    assert all(name in str(caught.value) for name in DATASETS)
    with pytest.raises(DatasetError):
        train_set_size("imagenet", None)


def test_environment_variable_overrides_the_root(write, tmp_path, monkeypatch):
    write("svhn", tmp_path / "elsewhere")
    monkeypatch.setenv(ENV_ROOT, str(tmp_path / "elsewhere"))
    assert resolve_root("/nonexistent") == tmp_path / "elsewhere"
    assert len(load_dataset("svhn", "/nonexistent", download=False).train_labels) == 7


def test_root_expands_home_and_refuses_the_code_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_ROOT, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_root("~/datasets") == tmp_path / "datasets"
    code_folder = pathlib.Path(__file__).resolve().parents[1] / "data"
    for inside in (code_folder, code_folder / "cifar"):
        with pytest.raises(DatasetError, match=ENV_ROOT):
            resolve_root(str(inside))


@pytest.mark.parametrize(
    "name, train_size, expected",
    [
        ("mnist", None, 60000),
        ("cifar10", None, 50000),
        ("cifar100", 100, 100),
        ("svhn", None, 73257),
        ("svhn", 10**6, 73257),
        ("synthetic", None, 10000),
        ("synthetic", 1500, 1500),
    ],
)
def test_train_set_size(name, train_size, expected):
    assert train_set_size(name, train_size) == expected


def test_synthetic_sizes_match_train_set_size(tmp_path):
    dataset = load_dataset("synthetic", str(tmp_path / "unused"), train_size=30, test_size=20, num_classes=3)
    assert (len(dataset.train_images), len(dataset.test_images), dataset.num_classes) == (30, 20, 3)
    assert not (tmp_path / "unused").exists()


def test_real_mnist_digits(mnist_t10k, mnist_t10k_root):
    images, labels = mnist_t10k
    dataset = load_dataset("mnist", str(mnist_t10k_root), download=False)
    assert dataset.train_images.shape == (8000, 1, 32, 32) and dataset.test_images.shape == (2000, 1, 32, 32)
    assert np.array_equal(
        torch.bincount(dataset.train_labels, minlength=10).numpy(), np.bincount(labels[:8000], minlength=10)
    )
    assert np.array_equal(
        torch.bincount(dataset.test_labels, minlength=10).numpy(), np.bincount(labels[8000:], minlength=10)
    )
    assert np.array_equal(dataset.test_images[:, 0, 2:30, 2:30].numpy(), images[8000:])
    assert (dataset.train_images[:, :, :2] == 0).all() and (dataset.train_images[:, :, :, 30:] == 0).all()


# CIFAR-100's superclasses, from the coarse labels of its own files.

# The official fine -> coarse table (index = torchvision / pickle fine label), checked against three sources in
# the research notes (ryanchankh/cifar100coarse, UCSC-REAL/cifar-10-100n fine2coarse.py, google-research).
FINE_TO_COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]  # fmt: skip
# The next class within the true superclass (members sorted by fine index, cyclic), as listed in the notes.
NEXT_IN_SUPERCLASS = [
    51, 32, 11, 42, 30, 20, 7, 14, 13, 10, 16, 35, 17, 48, 18, 19, 28, 37, 24, 21,
    25, 31, 39, 33, 6, 84, 45, 29, 61, 44, 55, 38, 67, 49, 63, 46, 50, 68, 15, 40,
    86, 69, 43, 88, 78, 77, 98, 52, 58, 60, 65, 53, 56, 57, 62, 72, 59, 83, 90, 96,
    71, 9, 70, 64, 66, 74, 75, 73, 76, 81, 82, 23, 95, 91, 80, 34, 12, 79, 93, 99,
    36, 85, 92, 0, 94, 89, 87, 22, 97, 41, 8, 1, 54, 27, 5, 4, 47, 3, 2, 26,
]  # fmt: skip


def write_cifar100_superclasses(root: pathlib.Path, monkeypatch, test_coarse=None):
    """Tiny CIFAR-100 pickles whose coarse labels follow the real table: every fine label once in train (shuffled),
    three in test. `test_coarse` overrides the test split's coarse labels."""
    _without_md5(monkeypatch, tvd.CIFAR100)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    train_fine = RNG.permutation(100)
    test_fine = np.array([7, 0, 99])
    coarse = np.array(FINE_TO_COARSE)
    for name, fine, coarse_labels in (
        ("train", train_fine, coarse[train_fine]),
        ("test", test_fine, coarse[test_fine] if test_coarse is None else np.array(test_coarse)),
    ):
        images = _images(len(fine), 3)
        _pickle(
            folder / name,
            {
                "data": images.reshape(len(fine), -1),
                "fine_labels": fine.tolist(),
                "coarse_labels": coarse_labels.tolist(),
            },
        )
    _pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)]})
    return train_fine


def test_cifar100_superclass_map_comes_from_the_files(tmp_path, monkeypatch):
    train_fine = write_cifar100_superclasses(tmp_path, monkeypatch)
    dataset = load_dataset("cifar100", str(tmp_path), download=False)
    assert dataset.superclass.dtype == torch.int64 and dataset.superclass.tolist() == FINE_TO_COARSE
    targets = class_map("cifar100", "asymmetric", 100, dataset.superclass)
    assert targets.tolist() == NEXT_IN_SUPERCLASS
    # At rate 1 every training image moves to the next class of its superclass.
    noisy = corrupt_labels(dataset.train_labels, 1.0, 100, "asymmetric", 0, class_map=targets)
    assert noisy.tolist() == [NEXT_IN_SUPERCLASS[fine] for fine in train_fine.tolist()]
    # The superclass map also comes with a train_size cut, and from the cache.
    small = load_dataset("cifar100", str(tmp_path), train_size=5, download=False)
    assert small.superclass.tolist() == FINE_TO_COARSE


def test_cifar100_superclass_map_marks_absent_fine_labels(write, tmp_path):
    _, train_labels, _, test_labels = write("cifar100", tmp_path)  # coarse = fine // 5 there, few fine labels
    superclass = load_dataset("cifar100", str(tmp_path), download=False).superclass
    present = set(train_labels.tolist()) | set(test_labels.tolist())
    assert superclass.tolist() == [fine // 5 if fine in present else -1 for fine in range(100)]
    with pytest.raises(ValueError, match="superclass: fine labels"):
        class_map("cifar100", "asymmetric", 100, superclass)


def test_cifar100_fine_label_with_two_coarse_labels_is_refused(tmp_path, monkeypatch):
    # Fine label 7 is coarse 7 in train, but coarse 3 in test.
    write_cifar100_superclasses(tmp_path, monkeypatch, test_coarse=[3, 4, 13])
    with pytest.raises(DatasetError) as caught:
        load_dataset("cifar100", str(tmp_path), download=False)
    message = str(caught.value)
    assert "\n" not in message and "fine label 7 comes with coarse labels [3, 7]" in message
    assert str(tmp_path) in message
    assert not (tmp_path / "tce-cache").exists()


def test_cifar100_cache_without_superclass_is_rebuilt(tmp_path, monkeypatch):
    write_cifar100_superclasses(tmp_path, monkeypatch)
    first = load_dataset("cifar100", str(tmp_path), download=False)
    cache = tmp_path / "tce-cache" / "cifar100.pt"
    old = torch.load(cache, weights_only=True)
    del old["superclass"]
    torch.save(old, cache)  # as written before the superclass map was kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = load_dataset("cifar100", str(tmp_path), download=False)
    assert second.superclass.tolist() == FINE_TO_COARSE
    assert torch.equal(first.train_images, second.train_images)
    assert torch.load(cache, weights_only=True)["superclass"].tolist() == FINE_TO_COARSE
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]

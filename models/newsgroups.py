"""20 Newsgroups as bag-of-words (text, a second modality), through scikit-learn's maintained loader.

``fetch_20newsgroups`` reads its cache, ``20news-bydate_py3.pkz`` (a zlib-compressed pickle of the
``train`` and ``test`` splits), from ``root`` when it holds one, else from scikit-learn's data home
(``$SCIKIT_LEARN_DATA``, else ``~/scikit_learn_data``). Without ``download`` nothing is fetched: a missing
cache is one ``DatasetError``; ``download`` fetches it into ``root`` (or the data home when no root is given).
Four categories (scikit-learn's tutorial set) on the corpus's official by-date train/test split, headers,
signatures and quotes removed (so a model learns from the text, not the sender); TF-IDF over the
``VOCABULARY`` most frequent words of the training split (stop words dropped, sublinear term frequency,
each document L2-normalised, so every feature lies in [0, 1] as the Loihi input encoder needs), laid out
as a (1, 28, 28) grid in vocabulary order so every subject model takes it (the grid has no spatial meaning).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from .datasets import Dataset

NAME = "20newsgroups"
CATEGORIES = ("alt.atheism", "comp.graphics", "sci.med", "soc.religion.christian")
#: Bag-of-words features: 784 = 28 x 28.
VOCABULARY = 784
GRID = (1, 28, 28)
#: scikit-learn's cache file (``CACHE_NAME`` 20news-bydate.pkz with its Python 3 suffix).
CACHE_FILE = "20news-bydate_py3.pkz"
REMOVE = ("headers", "footers", "quotes")


def default_data_home() -> Path:
    """scikit-learn's data home, found without creating it (sklearn's ``get_data_home`` would create it)."""
    return Path(os.environ.get("SCIKIT_LEARN_DATA", os.path.join("~", "scikit_learn_data"))).expanduser()


def data_home(root: str | os.PathLike[str] | None) -> Path:
    """``root`` when it holds the cache (or no other place does), else the scikit-learn data home."""
    places = ([Path(root)] if root is not None else []) + [default_data_home()]
    return next((place for place in places if (place / CACHE_FILE).is_file()), places[0])


def present(root: str | os.PathLike[str] | None) -> bool:
    """Whether the cache is there to load without the network."""
    return (data_home(root) / CACHE_FILE).is_file()


def load_newsgroups(root: str | os.PathLike[str] | None = None, download: bool = False) -> "Dataset":
    """The four-category 20 Newsgroups bag-of-words dataset.

    Raises:
        DatasetError: the cache is missing (and ``download`` is False), corrupt or lacks the categories.
    """
    from sklearn.datasets import fetch_20newsgroups
    from sklearn.feature_extraction.text import TfidfVectorizer

    from .datasets import Dataset, DatasetError

    home = data_home(root)
    if not download and not present(root):
        raise DatasetError(f"{NAME}: no {CACHE_FILE} in {home} (scikit-learn's cache of the 20 Newsgroups corpus); "
                           "pass --download (download=True) to fetch it, or --root DIR holding it")
    said = io.StringIO()
    splits = {}
    try:
        with contextlib.redirect_stdout(said):  # scikit-learn prints a cache it cannot read to stdout
            for subset in ("train", "test"):
                splits[subset] = fetch_20newsgroups(data_home=str(home), subset=subset, categories=list(CATEGORIES),
                                                    remove=REMOVE, shuffle=False, download_if_missing=download)
    except OSError as exc:
        reason = "unreadable or corrupt" if "Cache loading failed" in said.getvalue() else str(exc)
        raise DatasetError(f"{NAME}: {home / CACHE_FILE}: {reason}") from exc
    except ValueError as exc:  # a category the cache does not hold
        raise DatasetError(f"{NAME}: {home / CACHE_FILE} lacks a category of {', '.join(CATEGORIES)}: {exc}") from exc
    vectorizer = TfidfVectorizer(max_features=VOCABULARY, stop_words="english", sublinear_tf=True, dtype=np.float32)
    train = vectorizer.fit_transform(splits["train"].data)
    test = vectorizer.transform(splits["test"].data)

    def grid(matrix: Any) -> torch.Tensor:
        dense = np.zeros((matrix.shape[0], VOCABULARY), dtype=np.float32)  # a small corpus may have fewer words
        dense[:, :matrix.shape[1]] = matrix.toarray()
        return torch.from_numpy(dense.reshape(-1, *GRID))

    return Dataset(NAME, grid(train), torch.from_numpy(np.asarray(splits["train"].target, dtype=np.int64)),
                   grid(test), torch.from_numpy(np.asarray(splits["test"].target, dtype=np.int64)), len(CATEGORIES),
                   f"scikit-learn fetch_20newsgroups ({', '.join(CATEGORIES)}; headers, footers and quotes removed) "
                   f"from {home}; TF-IDF over the {VOCABULARY} most frequent training words as a "
                   f"{GRID[1]}x{GRID[2]} grid; official by-date train/test split")

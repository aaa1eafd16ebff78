"""Drift of free-text columns: evidently's domain classifier on the words, and text descriptors.

**Content drift** (:func:`text_drift`): evidently's text column test. A TF-IDF (sublinear tf,
``max_df=0.5``, English stop words) and L1 ``SGDClassifier`` (modified Huber loss, ``alpha=1e-4``,
50 iterations, ``random_state=42``) learn to tell reference texts from current ones on a seeded
50/50 split; the score is the held-out ROC AUC. References above 1,000 rows use evidently's
``abs_text_content_drift`` (drift above 0.55), smaller ones ``perc_text_content_drift`` (drift
above the 95th percentile of 1,000 random classifiers' AUCs). The words with the largest positive
weights are the ones that mark the current window (``top_words``). The check runs on the
profile's sample of reference texts (every text when there are at most ``sample_rows``) and on a
seeded sample of as many current texts.

**Descriptors** (:func:`descriptors`), checked as numeric columns named ``<column>.<descriptor>``:
``length`` (characters), ``oov_share`` (share of words, split as evidently's OOV descriptor splits
them, outside the reference's vocabulary: its words used at least twice, since evidently's English
word list needs a download), ``non_letter_share`` (share of characters that are neither
letters nor spaces, as evidently's non-letter descriptor counts them). A null text has no
descriptors (a null in each).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from detectors.domain import random_aucs
from detectors.sketch import reduce_numbers
from detectors.stattests import Sample

DESCRIPTORS = ("length", "oov_share", "non_letter_share")
ABS_THRESHOLD = 0.55
PERC_P_VALUE = 0.05
# evidently switches from the percentile test to the fixed AUC threshold above this many reference texts
PERC_UP_TO_ROWS = 1000
DEFAULT_SAMPLE_ROWS = 2000
DEFAULT_VOCABULARY = 50_000
TOP_WORDS = 10
_NOT_WORD = re.compile("[^A-Za-z0-9 ]+")


def words_of(text: str) -> list[str]:
    """Lower-cased words as evidently's OOV descriptor splits a text.

    >>> words_of("Hello, world! It's 2 a.m.")
    ['hello', 'world', 'its', '2', 'am']
    """
    return [w.lower() for w in _NOT_WORD.sub("", text).split()]


def vocabulary_of(texts: Iterable[str], size: int = DEFAULT_VOCABULARY, min_count: int = 2) -> tuple[str, ...]:
    """The ``size`` most frequent words of ``texts`` used at least ``min_count`` times (ties in
    alphabetical order), sorted. Words used once are left out, so that the reference's own texts
    have out-of-vocabulary words too (its rare words) and the descriptor has a distribution to
    compare with, not a column of zeros.

    >>> vocabulary_of(["the cat sat", "the dog sat", "a bird"])
    ('sat', 'the')
    """
    counts = Counter(w for t in texts for w in words_of(t))
    top = sorted(((w, n) for w, n in counts.items() if n >= min_count), key=lambda kv: (-kv[1], kv[0]))[:size]
    return tuple(sorted(w for w, _ in top))


def descriptors(texts: pd.Series, vocabulary: Iterable[str]) -> pd.DataFrame:
    """The three descriptors of every text (NaN for a null text).

    >>> descriptors(pd.Series(["a cat sat", "a dog!", None]), ["a", "cat", "sat"]).round(3).values.tolist()
    [[9.0, 0.0, 0.0], [6.0, 0.5, 0.167], [nan, nan, nan]]
    """
    vocab = set(vocabulary)
    rows: list[tuple[float, float, float]] = []
    nan = float("nan")
    for value in texts.tolist():
        if not isinstance(value, str):
            rows.append((nan, nan, nan))
            continue
        words = words_of(value)
        oov = sum(w not in vocab for w in words) / len(words) if words else 0.0
        non_letter = sum(1 for ch in value if not ch.isalpha() and ch != " ") / len(value) if value else 0.0
        rows.append((float(len(value)), oov, non_letter))
    return pd.DataFrame(rows, columns=list(DESCRIPTORS), index=texts.index, dtype=np.float64)


def looks_like_text(series: pd.Series, min_words: float = 4.0, min_distinct: float = 0.5) -> bool:
    """A string column of free text rather than labels: on its first 1,000 non-null values, at
    least ``min_words`` words a value on average and at least ``min_distinct`` of them distinct.

    >>> looks_like_text(pd.Series(["the parcel came late and broken", "great value, would buy again"]))
    True
    >>> looks_like_text(pd.Series(["paris", "london", "paris"]))
    False
    """
    if not (pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)):
        return False
    head = series.iloc[:4000].dropna().iloc[:1000]  # the head first: dropping nulls copies a column
    if len(head) == 0:
        head = series.dropna().iloc[:1000]
    if len(head) == 0 or not all(isinstance(v, str) for v in head):
        return False
    mean_words = float(np.mean([len(v.split()) for v in head]))
    return mean_words >= min_words and head.nunique() / len(head) >= min_distinct


@dataclass(frozen=True, eq=False)
class TextProfile:
    """What the text checks need of a reference text column: a sample of its texts (in reference
    order; all of them when there are at most ``sample_rows``), its vocabulary, and each
    descriptor's distribution (exact, or a sketch on ``sketch_bins`` bins between lo and hi)."""

    column: str
    n_rows: int
    n_null: int
    texts: tuple[str, ...]
    vocabulary: tuple[str, ...]
    descriptor_samples: tuple[Sample, ...]
    descriptor_lo: tuple[float, ...]
    descriptor_hi: tuple[float, ...]
    sketch_bins: int
    descriptor_nulls: tuple[int, ...] = field(default=(0, 0, 0))

    @property
    def whole(self) -> bool:
        return len(self.texts) == self.n_rows - self.n_null


def build_text_profile(
    column: str,
    series: pd.Series,
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    vocabulary_size: int = DEFAULT_VOCABULARY,
    max_exact: int = 20_000,
    sketch_bins: int = 1 << 14,
    seed: int = 0,
) -> TextProfile:
    """Profile one reference text column (non-string values count as nulls)."""
    present = [v for v in series.tolist() if isinstance(v, str)]
    if len(present) <= sample_rows:
        kept = present
    else:
        idx = np.sort(np.random.default_rng(seed).choice(len(present), sample_rows, replace=False))
        kept = [present[i] for i in idx]
    vocab = vocabulary_of(present, vocabulary_size)
    described = descriptors(series, vocab)
    samples, lows, highs, nulls = [], [], [], []
    for name in DESCRIPTORS:
        values = described[name].to_numpy()
        finite = values[np.isfinite(values)]
        sample, lo, hi = reduce_numbers(finite, max_exact, sketch_bins)
        samples.append(sample)
        lows.append(lo)
        highs.append(hi)
        nulls.append(len(values) - len(finite))
    return TextProfile(column, len(series), len(series) - len(present), tuple(kept), vocab, tuple(samples),
                       tuple(lows), tuple(highs), sketch_bins, tuple(nulls))  # fmt: skip


@dataclass(frozen=True)
class TextDrift:
    """One text column's content drift: the domain classifier's AUC against its threshold."""

    column: str
    test: str
    score: float | None
    threshold: float
    drifted: bool | None
    top_words: tuple[str, ...]
    n_reference: int
    n_current: int
    exact: bool = True
    status: Literal["ok", "error"] = "ok"
    message: str = ""

    @classmethod
    def failed(cls, profile: TextProfile, message: str) -> TextDrift:
        return cls(profile.column, "", None, float("nan"), None, (), profile.n_rows - profile.n_null, 0,
                   status="error", message=message)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape of one text column (an error has null score, threshold and verdict)."""
        ok = self.status == "ok"
        return {
            "column": self.column,
            "score": float(self.score) if ok and self.score is not None else None,
            "threshold": float(self.threshold) if ok else None,
            "drifted": bool(self.drifted) if ok else None,
            "top_words": list(self.top_words),
        }


def text_drift(
    reference: TextProfile | pd.Series,
    current: pd.Series,
    *,
    threshold: float | None = None,
    max_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    top_words: int = TOP_WORDS,
) -> TextDrift:
    """Evidently's text content drift of ``current`` against the reference texts.

    ``threshold`` fixes the AUC threshold (evidently's ``abs_text_content_drift``); None takes
    evidently's automatic choice by the reference's size.

    >>> rng = np.random.default_rng(0)
    >>> words = [f"w{i}" for i in range(200)]
    >>> texts = lambda extra: pd.Series([" ".join(rng.choice(words + extra, 8)) for _ in range(400)])
    >>> r = text_drift(texts([]), texts(["refund", "broken"] * 10))
    >>> r.drifted, r.test, sorted(r.top_words[:2])
    (True, 'perc_text_content_drift', ['broken', 'refund'])
    >>> text_drift(texts([]), texts([])).drifted
    False
    """
    if isinstance(reference, TextProfile):
        profile = reference
    else:
        profile = build_text_profile(str(reference.name or "text"), reference, sample_rows=max(len(reference), 1))
    ref_texts = list(profile.texts)
    cur_texts = [v for v in current.tolist() if isinstance(v, str)]
    if not ref_texts or not cur_texts:
        side = "reference" if not ref_texts else "current window"
        raise ValueError(f"text column {profile.column!r}: no texts in the {side}")
    exact = profile.whole and len(cur_texts) <= max_rows
    if len(cur_texts) > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(len(cur_texts), max_rows, replace=False))
        cur_texts = [cur_texts[i] for i in idx]
    auc, y_test, weights, vocab = _domain_classifier(ref_texts, cur_texts)
    reference_rows = profile.n_rows - profile.n_null
    if threshold is None and reference_rows <= PERC_UP_TO_ROWS:
        test, limit = "perc_text_content_drift", _random_auc_percentile(y_test, PERC_P_VALUE)
    else:
        test, limit = "abs_text_content_drift", ABS_THRESHOLD if threshold is None else threshold
    order = np.argsort(-weights, kind="stable")
    words = tuple(vocab[i] for i in order[:top_words] if weights[i] > 0)
    return TextDrift(profile.column, test, auc, float(limit), bool(auc > limit), words, reference_rows,
                     len(current) - int(current.isna().sum()), exact)  # fmt: skip


def _domain_classifier(ref: Sequence[str], cur: Sequence[str]) -> tuple[float, np.ndarray, np.ndarray, list[str]]:
    """Evidently's text domain classifier: held-out AUC, held-out labels, word weights, words."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    texts = np.array([*ref, *cur], dtype=object)
    target = np.concatenate([np.zeros(len(ref), dtype=np.int64), np.ones(len(cur), dtype=np.int64)])
    x_train, x_test, y_train, y_test = train_test_split(texts, target, test_size=0.5, random_state=42, shuffle=True)
    pipeline = Pipeline([
        ("vectorization", TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english")),
        ("classification", SGDClassifier(alpha=0.0001, max_iter=50, penalty="l1", loss="modified_huber",
                                         random_state=42)),
    ])  # fmt: skip
    with warnings.catch_warnings():
        # 50 iterations, as evidently: the classifier need not converge to rank the held-out half
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            pipeline.fit(x_train, y_train)
        except ValueError as exc:  # sklearn: every word is a stop word or in more than half the texts
            raise ValueError(f"no word tells texts apart ({exc})") from None
    auc = float(roc_auc_score(y_test, pipeline.predict_proba(x_test)[:, 1]))
    vocab = pipeline["vectorization"].get_feature_names_out().tolist()
    return auc, np.asarray(y_test), pipeline["classification"].coef_[0], vocab


def _random_auc_percentile(y_test: np.ndarray, p_value: float, iter_num: int = 1000, seed: int = 42) -> float:
    """Evidently's percentile of random classifiers' AUCs (its global-seed draws, replayed)."""
    seeds = np.random.RandomState(seed).randint(0, iter_num * 10, size=iter_num)
    return float(np.percentile(random_aucs(y_test, seeds), 100 * (1 - p_value)))

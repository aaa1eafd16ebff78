"""Text columns: evidently's domain classifier (parity), the words that tell the windows apart,
the descriptors checked as numerical columns, and text recognised by its kind.

The corpora are generated here: reviews of 5 to 15 words drawn from 300 neutral words, and a
current window in which a share of the words comes from 10 complaint words.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.utils.data_drift_utils import calculate_text_drift_score

from detectors.drift import DriftOptions, detect_drift
from detectors.profile import ReferenceProfile, build_profile
from detectors.text import build_text_profile, descriptors, looks_like_text, text_drift, vocabulary_of, words_of

NEUTRAL = [f"w{i}" for i in range(300)] + "delivery quick box fine price good product works great happy".split()  # noqa: SIM905
COMPLAINTS = ["refund", "never", "came", "support", "ignored", "broken", "late", "missing", "damaged", "angry"]


def corpus(n: int, mix: float, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        k = int(rng.integers(5, 15))
        texts.append(" ".join(str(COMPLAINTS[rng.integers(10)] if rng.random() < mix else NEUTRAL[rng.integers(310)])
                              for _ in range(k)))  # fmt: skip
    return pd.Series(texts)


@pytest.mark.parametrize("n", [200, 1500])
@pytest.mark.parametrize("mix", [0.0, 0.1, 0.4])
def test_same_auc_and_verdict_as_evidently(n: int, mix: float) -> None:
    ref, cur = corpus(n, 0.0, seed=n), corpus(n, mix, seed=n + 1)
    stored = ReferenceProfile.from_bytes(build_profile(pd.DataFrame({"review": ref}), text=["review"]).to_bytes())
    got = text_drift(stored.text("review"), cur)
    # evidently's automatic choice: the percentile test up to 1,000 reference texts, then AUC > 0.55
    bootstrap = n <= 1000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score, drifted = calculate_text_drift_score(ref, cur, bootstrap=bootstrap)
    assert got.test == ("perc_text_content_drift" if bootstrap else "abs_text_content_drift")
    assert got.score == pytest.approx(score, abs=1e-12)
    assert got.drifted == drifted and got.exact
    assert got.drifted == (mix > 0)
    if got.drifted:
        assert len(set(got.top_words[:5]) & set(COMPLAINTS)) >= 3, got.top_words


def test_a_fixed_threshold_is_evidentlys_absolute_test() -> None:
    ref, cur = corpus(300, 0.0, 1), corpus(300, 0.1, 2)
    got = text_drift(ref, cur, threshold=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score, drifted = calculate_text_drift_score(ref, cur, bootstrap=False, threshold=0.9)
    assert (got.test, got.threshold, got.score, got.drifted) == ("abs_text_content_drift", 0.9, score, drifted)


def test_descriptors() -> None:
    vocab = vocabulary_of(["The cat sat.", "the dog"], min_count=1)
    assert vocab == ("cat", "dog", "sat", "the")
    assert words_of("Don't stop-me now!") == ["dont", "stopme", "now"]
    d = descriptors(pd.Series(["the cat", "a bird, 2 birds", "", None]), vocab)
    assert d["length"].tolist()[:3] == [7.0, 15.0, 0.0]
    assert d["oov_share"].tolist()[:3] == [0.0, 1.0, 0.0]
    assert d["non_letter_share"].tolist()[1] == pytest.approx(2 / 15)  # "," and "2"; spaces count as letters
    assert d.iloc[3].isna().all()


def test_descriptor_columns_and_content_verdict_join_the_report() -> None:
    ref = pd.DataFrame({"x": np.arange(1200.0), "review": corpus(1200, 0.0, 5)})
    # half the current reviews are longer and carry digits: length and non-letter share move, and
    # the new words mark the window (a word in more than half the texts would be dropped, max_df)
    tail = pd.Series([" order 12345 #9", ""] * 600)
    cur = pd.DataFrame({"x": np.arange(1200.0), "review": corpus(1200, 0.0, 6) + tail})
    stored = ReferenceProfile.from_bytes(build_profile(ref).to_bytes())  # text recognised by its kind
    assert stored.columns == ("x",) and [t.column for t in stored.texts] == ["review"]
    report = detect_drift(stored, cur)
    names = [c.column for c in report.columns]
    assert names == ["x", "review.length", "review.oov_share", "review.non_letter_share"]
    assert report.column("review.length").drifted and report.column("review.non_letter_share").drifted
    (text,) = report.text
    assert text.column == "review" and text.drifted and {"order", "12345"} & set(text.top_words)
    assert report.n_columns == 5  # x, three descriptors, the content test
    assert set(report.to_dict()["text"][0]) == {"column", "score", "threshold", "drifted", "top_words"}
    # the same from raw reference data
    assert detect_drift(ref, cur).to_dict() == report.to_dict()


def test_text_columns_are_recognised_only_when_they_look_like_text() -> None:
    assert looks_like_text(corpus(50, 0.0, 1))
    assert not looks_like_text(pd.Series(["paris", "london"] * 20))
    assert not looks_like_text(pd.Series(["the same long sentence of words"] * 40))  # one value: a label
    assert not looks_like_text(pd.Series(np.arange(10.0)))
    frame = pd.DataFrame({"city": ["paris", "rome"] * 50, "review": corpus(100, 0.0, 2)})
    assert [t.column for t in build_profile(frame, text=()).texts] == []
    assert [t.column for t in build_profile(frame, text=["city"]).texts] == ["city"]
    assert detect_drift(frame, frame, DriftOptions(text=())).column("review").kind == "categorical"


def test_a_text_column_the_classifier_cannot_read_gets_an_error_status() -> None:
    ref = pd.DataFrame({"t": ["the the the and"] * 30 + ["it is"] * 30})
    report = detect_drift(ref, ref, DriftOptions(text=["t"]))
    (text,) = report.text
    assert text.status == "error" and "no word tells texts apart" in text.message
    assert report.to_dict()["text"][0]["drifted"] is None


def test_the_profile_samples_large_references() -> None:
    ref = corpus(3000, 0.0, 9)
    profile = build_text_profile("t", ref, sample_rows=1000)
    assert len(profile.texts) == 1000 and not profile.whole
    got = text_drift(profile, corpus(3000, 0.3, 10))
    assert got.drifted and not got.exact and got.n_reference == 3000

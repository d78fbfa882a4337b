"""Mislabel scores: the AUROC and precision the benchmark reports, the rank-average ensemble,
the dynamics scores of a run folder, and class-conditional label noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from workbench.data.noise import LabelNoise, flip_labels, flip_within_classes
from workbench.localization.label_errors import (auroc, average_ranks, dynamics_scores, precision_at_rate,
                                                 rank_average, self_confidence)
from workbench.training.dynamics import DynamicsRecorder

CONFUSABLE = (0, 2, 4, 6)


@pytest.mark.parametrize("seed", range(4))
def test_auroc_matches_scikit_learn_on_the_same_scores_ties_included(seed):
    rng = np.random.default_rng(seed)
    flags = rng.random(500) < 0.1
    flags[:2] = [True, False]
    # rounded scores: many ties, the case where a rank-based AUROC can go wrong
    score = np.round(rng.normal(size=500) + 1.5 * flags, 1)
    assert auroc(score, flags) == pytest.approx(roc_auc_score(flags, score), abs=1e-12)
    assert auroc(-score, flags) == pytest.approx(roc_auc_score(flags, -score), abs=1e-12)


def test_precision_at_rate_counts_true_flips_among_the_top_k():
    flags = np.array([True, False, True, False, False, True])
    score = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.95])  # top 3: items 5, 0, 1 -> 2 of 3 flipped
    assert precision_at_rate(score, flags) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least one flagged"):
        precision_at_rate(score, np.zeros(6, dtype=bool))


def test_auroc_refuses_nan_a_length_mismatch_and_a_single_class():
    flags = np.array([True, False, False])
    with pytest.raises(ValueError, match="one finite score per flag"):
        auroc(np.array([1.0, np.nan, 0.0]), flags)
    with pytest.raises(ValueError, match="one finite score per flag"):
        auroc(np.array([1.0, 0.0]), flags)
    with pytest.raises(ValueError, match="both flagged and unflagged"):
        auroc(np.array([1.0, 0.5, 0.0]), np.ones(3, dtype=bool))


def test_the_ensemble_is_the_rank_average_by_hand_on_five_items():
    a = np.array([0.1, 0.5, 0.3, 0.9, 0.7])  # ranks 1 3 2 5 4
    b = np.array([2.0, 1.0, 2.0, 5.0, 0.0])  # ranks 3.5 2 3.5 5 1 (a tie shares its mean rank)
    assert average_ranks(b).tolist() == [3.5, 2.0, 3.5, 5.0, 1.0]
    hand = (np.array([1, 3, 2, 5, 4]) + np.array([3.5, 2, 3.5, 5, 1])) / 2 / 5
    np.testing.assert_allclose(rank_average({"a": a, "b": b}), hand, rtol=0, atol=1e-12)
    # only the order counts: a monotone change of one score changes nothing
    np.testing.assert_allclose(rank_average({"a": np.exp(a), "b": b}), hand, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="differ in length"):
        rank_average({"a": a, "b": b[:4]})


def test_self_confidence_is_one_minus_cleanlabs_label_quality():
    rank = pytest.importorskip("cleanlab.rank")
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    labels = rng.integers(0, 4, size=50)
    ref = rank.get_label_quality_scores(labels, probs, method="self_confidence")
    np.testing.assert_allclose(self_confidence(probs, labels), 1.0 - ref, atol=1e-12)


def test_dynamics_scores_of_a_toy_run_are_the_hand_values_and_an_unseen_example_takes_el2n_from_the_next_epoch(tmp_path):
    labels = torch.tensor([0, 1, 1])
    logits = [torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]),   # margins 2, 1, -3
              torch.tensor([[1.0, 0.0], [0.0, 3.0], [0.0, 1.0]])]   # margins 1, 3, 1
    rec = DynamicsRecorder(tmp_path, num_examples=3)
    rec.update(torch.tensor([0, 1]), logits[0][:2], labels[:2])  # example 2 unseen in epoch 1
    rec.end_epoch()
    rec.update(torch.arange(3), logits[1], labels)
    rec.end_epoch()
    s = dynamics_scores(tmp_path, el2n_epoch=1)
    np.testing.assert_allclose(s["aum"], [-1.5, -2.0, -1.0])  # minus the mean margin over the epochs seen
    p2 = torch.softmax(logits[1][2], 0)  # example 2: EL2N of epoch 2, the first that saw it
    hand = float(torch.sqrt(p2[0] ** 2 + (p2[1] - 1) ** 2))
    assert s["el2n"][2] == pytest.approx(hand, rel=2e-3)  # float16 storage
    assert not np.isnan(s["ensemble"]).any()
    np.testing.assert_allclose(s["ensemble"], rank_average({k: s[k] for k in ("aum", "mean_loss", "el2n")}),
                               rtol=1e-6)


def test_class_conditional_noise_flips_only_within_the_group_at_the_asked_rate():
    y = torch.arange(6000) % 10
    y = y[torch.randperm(6000, generator=torch.Generator().manual_seed(3))]
    noise = flip_within_classes(y, 0.1, CONFUSABLE, 10, seed=5)
    noisy = noise.apply(y)
    changed = noisy != y
    assert set(y[changed].tolist()) <= set(CONFUSABLE) and set(noisy[changed].tolist()) <= set(CONFUSABLE)
    assert bool((noisy[changed] != y[changed]).all())
    for c in CONFUSABLE:  # round(rate * n_c) of each class of the group, none of the others
        assert int((changed & (y == c)).sum()) == round(0.1 * int((y == c).sum()))
    assert int(changed.sum()) == 4 * 60 and torch.equal(noise.mask(), changed)
    assert noise.classes == CONFUSABLE
    again = LabelNoise.from_dict(noise.to_dict())  # the group survives the record
    assert again.classes == CONFUSABLE and torch.equal(again.apply(y), noisy)
    assert torch.equal(flip_within_classes(y, 0.1, CONFUSABLE, 10, seed=5).indices, noise.indices)
    assert not torch.equal(flip_within_classes(y, 0.1, CONFUSABLE, 10, seed=6).indices, noise.indices)
    assert flip_labels(y, 0.1, 10).classes is None and "classes" not in flip_labels(y, 0.1, 10).to_dict()


@pytest.mark.parametrize("classes, match", [((3,), "at least 2 distinct"), ((2, 2), "at least 2 distinct"),
                                            ((0, 10), r"at least 2 distinct classes in \[0, 10\)")])
def test_class_conditional_noise_refuses_a_bad_group(classes, match):
    with pytest.raises(ValueError, match=match):
        flip_within_classes(torch.arange(20) % 10, 0.1, classes, 10)
    with pytest.raises(ValueError, match="rate must lie in"):
        flip_within_classes(torch.arange(20) % 10, 1.5, CONFUSABLE, 10)

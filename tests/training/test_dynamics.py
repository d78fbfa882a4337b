"""Training dynamics: the recorder (margin, loss, EL2N per example and epoch), its scores, resuming."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.support.settings import TINY
from workbench.training import Recipe, train
from workbench.training.dynamics import (
    DYNAMICS_DIR,
    DynamicsRecorder,
    aum,
    el2n,
    epoch_files,
    mean_loss,
    mislabel_scores,
    read_dynamics,
)
from workbench.training.loop import STATE_FILE, CrossEntropyObjective

# Three epochs of a toy run: 3 examples, 3 classes, given labels [0, 2, 1]. Logits are small
# integers, so every margin and loss below is exact in float16 or computed with math.
LABELS = torch.tensor([0, 2, 1])
LOGITS = [  # epoch -> (3, 3)
    torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 1.0, 0.0]]),
    torch.tensor([[2.0, 2.0, 0.0], [0.0, 0.0, 3.0], [0.0, 4.0, 1.0]]),
    torch.tensor([[4.0, 0.0, 0.0], [1.0, 0.0, 2.0], [0.0, 1.0, 3.0]]),
]


def _ce(row: list[float], label: int) -> float:
    return math.log(sum(math.exp(v) for v in row)) - row[label]


def _record_toy(folder, batches=((0, 2), (1,))) -> DynamicsRecorder:
    rec = DynamicsRecorder(folder, num_examples=3)
    for logits in LOGITS:
        for b in batches:  # examples arrive in batches, out of order
            idx = torch.tensor(b)
            rec.update(idx, logits[idx], LABELS[idx])
        rec.end_epoch()
    return rec


def test_aum_and_mean_loss_match_a_hand_computation_on_a_three_epoch_toy_run(tmp_path):
    _record_toy(tmp_path)
    d = read_dynamics(tmp_path)
    assert d.epochs == [1, 2, 3] and d.margin.shape == (3, 3)
    # margins by hand: given logit minus the largest other one
    # example 0 (label 0): 3-1=2, 2-2=0, 4-0=4            -> AUM 2
    # example 1 (label 2): 1-2=-1, 3-0=3, 2-1=1           -> AUM 1
    # example 2 (label 1): 1-1=0, 4-1=3, 1-3=-2           -> AUM 1/3
    np.testing.assert_allclose(d.margin, [[2, -1, 0], [0, 3, 3], [4, 1, -2]], atol=0)
    np.testing.assert_allclose(aum(d), [2.0, 1.0, 1.0 / 3.0], rtol=1e-6)
    losses = [[_ce(LOGITS[e][i].tolist(), int(LABELS[i])) for i in range(3)] for e in range(3)]
    np.testing.assert_allclose(mean_loss(d), np.mean(losses, axis=0), rtol=2e-3)  # float16 storage
    # EL2N of epoch 2, by hand: || softmax - onehot ||
    p = [[math.exp(v) for v in LOGITS[1][i].tolist()] for i in range(3)]
    hand = []
    for i, row in enumerate(p):
        s = sum(row)
        hand.append(math.sqrt(sum((v / s - (1.0 if k == int(LABELS[i]) else 0.0)) ** 2 for k, v in enumerate(row))))
    np.testing.assert_allclose(el2n(d, 2), hand, rtol=2e-3)
    scores = mislabel_scores(d, el2n_epoch=2)
    assert int(np.argmax(scores["aum"])) == 2 and int(np.argmin(scores["aum"])) == 0  # lowest AUM is most suspect


def test_an_example_not_seen_in_an_epoch_is_left_out_of_its_mean(tmp_path):
    rec = DynamicsRecorder(tmp_path, num_examples=3)
    # share of the seen examples with a positive margin (a tie is not a fit): margins above
    for e, (logits, share) in enumerate(zip(LOGITS, (1 / 3, 1 / 2, 2 / 3))):
        idx = torch.tensor([0, 1] if e == 1 else [0, 1, 2])  # example 2 is not seen in epoch 2
        rec.update(idx, logits[idx], LABELS[idx])
        assert rec.accuracy() == pytest.approx(share)
        rec.end_epoch()
    d = read_dynamics(tmp_path)
    assert np.isnan(d.margin[1, 2]) and not np.isnan(d.margin[[0, 2], 2]).any()
    assert aum(d)[2] == pytest.approx((0.0 - 2.0) / 2)  # epochs 1 and 3 only


def test_resume_does_not_duplicate_or_rewrite_epochs_and_drops_a_partial_one(tmp_path):
    _record_toy(tmp_path)
    before = {e: p.read_bytes() for e, p in epoch_files(tmp_path).items()}
    rec = DynamicsRecorder(tmp_path, num_examples=3)  # a resumed run
    assert rec.epochs == [1, 2, 3]
    rec.update(torch.tensor([0]), torch.tensor([[0.0, 9.0, 0.0]]), torch.tensor([0]))
    del rec  # cut short: the partial epoch 4 never reaches the disk
    rec = DynamicsRecorder(tmp_path, num_examples=3)
    assert rec.epochs == [1, 2, 3]
    rec.update(torch.arange(3), -LOGITS[0], LABELS)
    assert rec.end_epoch(3) == 3  # a redone epoch 3 keeps the record already written
    assert {e: p.read_bytes() for e, p in epoch_files(tmp_path).items()} == before
    rec.update(torch.arange(3), LOGITS[0], LABELS)
    assert rec.end_epoch() == 4 and rec.epochs == [1, 2, 3, 4]
    assert read_dynamics(tmp_path / DYNAMICS_DIR).margin.shape == (4, 3)


def test_bad_input_is_refused_with_the_fix(tmp_path):
    _record_toy(tmp_path)
    with pytest.raises(ValueError, match="dynamics of 3 examples, not 5"):
        DynamicsRecorder(tmp_path, num_examples=5)
    rec = DynamicsRecorder(tmp_path, num_examples=3)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        rec.update(torch.tensor([3]), torch.zeros(1, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="logits \\(B, C\\)"):
        rec.update(torch.tensor([0, 1]), torch.zeros(1, 3), torch.tensor([0]))
    with pytest.raises(FileNotFoundError, match="no recorded epochs"):
        read_dynamics(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="no recorded epoch in"):
        el2n(read_dynamics(tmp_path), 9)


def _recipe(**kw) -> Recipe:
    base = dict(name="tiny-dyn", epochs=2, batch_size=64, lr=3e-3, warmup_epochs=0.0, augment=False,
                train_subset=256, eval_subset=50, arch_kwargs=dict(TINY), label_noise=0.1)
    return Recipe(**{**base, **kw})


class _Interrupt(Exception):
    pass


class _Dying(CrossEntropyObjective):
    """The baseline objective, interrupted at step 5 (epoch 2 of 4 steps each)."""

    def __call__(self, model, x, y, step):
        if step == 5:
            raise _Interrupt
        return super().__call__(model, x, y, step)


def test_train_records_dynamics_each_epoch_and_a_resumed_run_matches_an_uninterrupted_one(tmp_path, fashion_small):
    recipe = _recipe()
    full = train(recipe, tmp_path / "full", bundle=fashion_small, device="cpu", progress=False)
    d_full = read_dynamics(tmp_path / "full")
    assert d_full.epochs == [1, 2] and d_full.margin.shape == (2, 256)
    # 256 // 64 = 4 full batches: every example is seen once per epoch
    assert not np.isnan(d_full.margin).any()
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    noisy = torch.tensor(json.loads((tmp_path / "full" / "label_noise.json").read_text())["indices"])
    mask = torch.zeros(256, dtype=torch.bool)
    mask[noisy] = True
    assert rows[-1]["train_acc_noisy"] == pytest.approx(float((d_full.margin[-1][mask.numpy()] > 0).mean()), abs=1e-6)
    assert 0.0 <= rows[-1]["fit_noisy"] <= 1.0 and "train_acc_clean" in rows[-1]
    # cut during epoch 2, then resumed with the same call
    with pytest.raises(_Interrupt):
        train(recipe, tmp_path / "cut", objective=_Dying(), bundle=fashion_small, device="cpu", progress=False)
    assert list(epoch_files(tmp_path / "cut")) == [1]  # the partial epoch 2 was not written
    first = (tmp_path / "cut" / DYNAMICS_DIR / "epoch_001.safetensors").read_bytes()
    train(recipe, tmp_path / "cut", bundle=fashion_small, device="cpu", progress=False)
    d_cut = read_dynamics(tmp_path / "cut")
    assert d_cut.epochs == [1, 2] and (tmp_path / "cut" / DYNAMICS_DIR / "epoch_001.safetensors").read_bytes() == first
    np.testing.assert_allclose(d_cut.margin, d_full.margin, atol=2e-2)  # the same run, replayed
    assert torch.load(tmp_path / "cut" / STATE_FILE, weights_only=True)["epoch"] == 2 == full.card["epochs"]


def test_a_fresh_start_clears_old_dynamics_and_recording_can_be_turned_off(tmp_path, fashion_small):
    train(_recipe(epochs=2), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    train(_recipe(epochs=1), tmp_path, overwrite=True, bundle=fashion_small, device="cpu", progress=False)
    assert read_dynamics(tmp_path).epochs == [1]  # epoch 2 of the earlier run is gone
    train(_recipe(epochs=1, record_dynamics=False), tmp_path / "off", bundle=fashion_small, device="cpu",
          progress=False)
    assert not (tmp_path / "off" / DYNAMICS_DIR).exists()

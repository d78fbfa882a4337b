"""Training for memorization studies: label noise, batch indices, snapshots, accounting, dropout."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tests.support.settings import TINY
from workbench.data.batch import batch_indices, current_batch_indices
from workbench.data.noise import NOISE_FILE, LabelNoise, flip_labels
from workbench.localization import split_accuracy
from workbench.localization.dropout_study import memorization_table, predict_in_mode, recalibrate_batchnorm
from workbench.models import small_resnet
from workbench.models.dropout import (
    DropoutSpec,
    ExampleTiedDropout,
    StandardChannelDropout,
    attach_dropout,
    default_sites,
    example_indices,
    memorization_mode,
)
from workbench.training import Recipe, load_model, train
from workbench.training.grad_accounting import GradientAccounting, read_accounting
from workbench.training.model_files import MODEL_FILE
from workbench.training.loop import CrossEntropyObjective
from workbench.training.snapshots import list_snapshots, load_snapshot
from workbench.training.trainset import training_set


def _recipe(**kw) -> Recipe:
    base = dict(name="tiny-noisy", epochs=1, batch_size=64, lr=3e-3, warmup_epochs=0.0, augment=False,
                train_subset=256, eval_subset=50, arch_kwargs=dict(TINY), label_noise=0.1)
    return Recipe(**{**base, **kw})


class Recording(CrossEntropyObjective):
    """The baseline objective, recording which labels and images each position was trained with."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[int, int] = {}
        self.images: dict[int, torch.Tensor] = {}

    def __call__(self, model, x, y, step):
        indices = current_batch_indices()
        assert indices is not None and len(indices) == len(y)
        for i, label, img in zip(indices.tolist(), y.tolist(), x):
            self.seen[i] = label
            self.images[i] = img
        return super().__call__(model, x, y, step)


def test_flip_labels_is_seeded_exact_and_always_changes_the_class():
    y = torch.arange(1000) % 10
    a, b, c = flip_labels(y, 0.1, 10, seed=3), flip_labels(y, 0.1, 10, seed=3), flip_labels(y, 0.1, 10, seed=4)
    assert len(a.indices) == 100 and len(torch.unique(a.indices)) == 100
    assert torch.equal(a.indices, b.indices) and torch.equal(a.noisy, b.noisy)
    assert not torch.equal(a.indices, c.indices)
    assert torch.equal(a.original, y[a.indices]) and bool((a.noisy != a.original).all())
    noisy_y = a.apply(y)
    assert torch.equal(torch.nonzero(noisy_y != y).flatten(), a.indices)
    # every other class is reachable (uniform over the 9 others): all appear among 100 flips
    assert len(torch.unique((a.noisy - a.original) % 10)) == 9
    back = LabelNoise.from_dict(json.loads(json.dumps(a.to_dict())))
    assert torch.equal(back.indices, a.indices) and torch.equal(back.noisy, a.noisy)


def test_flip_labels_refuses_bad_rates_and_labels():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        flip_labels(torch.zeros(10, dtype=torch.long), 1.5, 10)
    with pytest.raises(ValueError, match="labels must lie"):
        flip_labels(torch.tensor([0, 12]), 0.5, 10)
    noise = flip_labels(torch.arange(20) % 5, 0.2, 5)
    with pytest.raises(ValueError, match="drawn for 20 labels"):
        noise.apply(torch.arange(30) % 5)


def test_noisy_recipe_records_exactly_the_flipped_indices_it_trained_with(tmp_path, fashion_small):
    obj = Recording()
    res = train(_recipe(), tmp_path, objective=obj, bundle=fashion_small, device="cpu", progress=False)
    noise = LabelNoise.load(tmp_path)
    true_y = fashion_small.train_y[:256]
    assert res.card["label_noise"]["count"] == len(noise.indices) == 26
    assert noise.num_examples == 256 and (tmp_path / NOISE_FILE).exists()
    # the batches carried every position once, each with its own image ...
    assert sorted(obj.seen) == list(range(256))
    i = 17
    assert torch.allclose(obj.images[i], fashion_small.normalize(fashion_small.train_x[i:i + 1])[0])
    # ... and the labels that differed from the data set's are exactly the recorded ones
    trained = torch.tensor([obj.seen[i] for i in sorted(obj.seen)])
    changed = torch.nonzero(trained != true_y[:len(trained)]).flatten()
    recorded = noise.indices[noise.indices < len(trained)]
    assert torch.equal(changed, recorded)
    assert torch.equal(noise.original, true_y[noise.indices])
    ts = training_set(tmp_path, bundle=fashion_small)
    assert torch.equal(torch.nonzero(ts.y != ts.y_true).flatten(), noise.indices)
    assert torch.equal(ts.noisy.nonzero().flatten(), noise.indices)


def test_resuming_into_a_folder_with_other_label_noise_is_refused(tmp_path, fashion_small):
    train(_recipe(), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    with pytest.raises(ValueError, match="holds a finished model"):  # another recipe: refused before the noise
        train(_recipe(epochs=2, label_noise_seed=1), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    card = json.loads((tmp_path / "card.json").read_text())
    card["recipe"].update(epochs=2, label_noise_seed=1)  # the card of an unfinished run with the other seed
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="other label noise"):  # the folder's record is of another draw
        train(_recipe(epochs=2, label_noise_seed=1), tmp_path, bundle=fashion_small, device="cpu", progress=False)


def test_keep_epochs_writes_one_safetensors_snapshot_per_epoch(tmp_path, fashion_small):
    res = train(_recipe(epochs=2, keep_epochs=True), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    snaps = list_snapshots(tmp_path)
    assert list(snaps) == [0, 1, 2] and res.card["snapshots"] == [0, 1, 2]
    final, _ = load_model(tmp_path)
    last = load_snapshot(tmp_path, 2)
    assert all(torch.equal(last[k], v) for k, v in final.state_dict().items())
    first = load_snapshot(tmp_path, 0)
    assert not torch.equal(first["stem.0.weight"], last["stem.0.weight"])
    with pytest.raises(FileNotFoundError, match="--keep-epochs"):
        load_snapshot(tmp_path, 7)
    # a fresh start in the same folder drops the old run's snapshots
    train(_recipe(epochs=1, keep_epochs=True), tmp_path, bundle=fashion_small, device="cpu", progress=False,
          overwrite=True)
    assert list(list_snapshots(tmp_path)) == [0, 1]


def test_gradient_accounting_gives_the_plain_gradient_and_splits_it(fashion_small):
    torch.manual_seed(0)
    model = small_resnet(widths=(8, 8, 16, 16)).train()
    x = fashion_small.normalize(fashion_small.train_x[:32])
    y = fashion_small.train_y[:32].clone()
    noisy = torch.zeros(32, dtype=torch.bool)
    noisy[[1, 5, 9]] = True
    y[noisy] = (y[noisy] + 1) % 10
    acc = GradientAccounting(noisy, steps_per_epoch=1, out_dir="unused")
    with pytest.raises(ValueError, match="batch_indices"):
        acc(model, x, y, 0)
    with batch_indices(torch.arange(32)):
        surrogate, logs = acc(model, x, y, 0)
    surrogate.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(got[n], p.grad, rtol=1e-3, atol=3e-5)  # summation order differs
    per = F.cross_entropy(model(x), y, reduction="none").detach()
    torch.testing.assert_close(torch.tensor(logs["loss_noisy"]), per[noisy].mean(), rtol=1e-4, atol=1e-5)
    # the accounted split equals the clean-only and noisy-only gradients, computed apart
    per = F.cross_entropy(model(x), y, reduction="none")
    w = model.head.fc.weight
    fc = [w, model.head.fc.bias]
    g_c = torch.cat([g.reshape(-1) for g in torch.autograd.grad(per[~noisy].sum(), fc, retain_graph=True)]).double()
    g_n = torch.cat([g.reshape(-1) for g in torch.autograd.grad(per[noisy].sum(), fc)]).double()
    root = g_c.numel() ** 0.5
    s = acc._sums["head.fc"]  # [clean norm, noisy norm, cosine sum, cosine count, params], one step
    assert s[3] == 1 and s[4] == g_c.numel()
    assert s[0] == pytest.approx(float(g_c.norm()) / root, rel=1e-3)
    assert s[1] == pytest.approx(float(g_n.norm()) / root, rel=1e-3)
    assert s[2] == pytest.approx(float(g_c @ g_n) / float(g_c.norm() * g_n.norm()), abs=1e-3)


def test_noisy_recipe_logs_gradient_accounting_per_epoch(tmp_path, fashion_small):
    train(_recipe(epochs=2, grad_accounting=True), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    rows = read_accounting(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0]["steps"] == 4
    layers = rows[1]["layers"]
    assert "stem.0" in layers and "head.fc" in layers
    for rec in layers.values():
        assert rec["clean"] > 0 and rec["noisy"] > 0 and -1 <= rec["cosine"] <= 1
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert 0 < metrics[-1]["grad_noisy_share"] < 1 and "loss_noisy" in metrics[-1]


def _site(c: int = 20, spec: DropoutSpec | None = None) -> ExampleTiedDropout:
    return ExampleTiedDropout(spec or DropoutSpec("example-tied", p_gen=0.4, p_mem=0.2, seed=0), salt=0)


def test_example_tied_dropout_at_evaluation_zeroes_exactly_the_memorization_channels():
    d = _site().eval()
    x = torch.rand(6, 20, 3, 3) + 0.5  # all positive: a zero can only come from the mask
    n_gen, n_mem = d.split(20)
    assert (n_gen, n_mem) == (8, 12)
    out = d(x)
    assert torch.equal(out[:, n_gen:], torch.zeros_like(out[:, n_gen:]))
    torch.testing.assert_close(out[:, :n_gen], x[:, :n_gen] * (0.4 + 0.2) / 0.4)
    with memorization_mode(d, "all"):  # the paper's "test": memorization channels times p_mem
        torch.testing.assert_close(d(x), torch.cat([x[:, :n_gen], x[:, n_gen:] * 0.2], 1))
    # each training example: the generalization channels plus its own memorization channels, every time
    idx = torch.tensor([0, 1, 2, 3, 4, 0])
    with example_indices(d, idx), memorization_mode(d, "example"):
        out = d(x)
    active = (out != 0).all(dim=(2, 3))
    assert bool(active[:, :n_gen].all())
    assert torch.equal(active[0], active[5])
    assert len({tuple(a.tolist()) for a in active[:5]}) > 1
    torch.testing.assert_close(out[active], x[active])
    d.train()
    with example_indices(d, idx):
        assert torch.equal(d(x) != 0, active[:, :, None, None].expand_as(x))


def test_example_tied_dropout_in_a_model_is_switchable_and_survives_save_load(tmp_path, fashion_small):
    res = train(_recipe(dropout="example-tied"), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    assert res.card["dropout"]["sites"] == ["chain2", "chain3"]  # the paper's placement (default_sites)
    model, card = load_model(tmp_path)
    assert isinstance(model.memorization_dropout["chain2"], ExampleTiedDropout)
    x = fashion_small.normalize(fashion_small.train_x[:8])
    seen = {}
    model.chain3.register_forward_hook(lambda m, i, o: seen.update(out=o.detach()))
    with torch.no_grad():
        dropped = model(x)
        n_gen = model.memorization_dropout["chain3"].split(16)[0]
        assert torch.equal(seen["out"][:, n_gen:], torch.zeros_like(seen["out"][:, n_gen:]))
        with memorization_mode(model, "all"):
            kept = model(x)
        with example_indices(model, torch.arange(8)), memorization_mode(model, "example"):
            own = model(x)
    assert not torch.allclose(dropped, kept) and not torch.allclose(own, kept)
    torch.testing.assert_close(res.model.eval()(x), dropped)
    # the report: one row per mode; "drop" is what plain evaluation (eval mode) measures
    ts = training_set(tmp_path, bundle=fashion_small)
    rows = {r.mode: r for r in memorization_table(model, ts, test=(fashion_small.test_x[:200], fashion_small.test_y[:200]))}
    assert list(rows) == ["drop", "example", "all", "drop+bn"] and rows["example"].test is None
    clean, noisy = split_accuracy(model, ts.x, ts.y, ts.noisy, normalize=ts.normalize)
    assert rows["drop"].clean == pytest.approx(clean) and rows["drop"].noisy == pytest.approx(noisy)
    own = predict_in_mode(model, ts.x, mode="example", indices=ts.indices, normalize=ts.normalize)
    assert rows["example"].clean == pytest.approx(float((own == ts.y)[~ts.noisy].float().mean()))
    with pytest.raises(ValueError, match="needs the examples' training-set positions"):
        predict_in_mode(model, ts.x, mode="example")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recal = recalibrate_batchnorm(model, ts.x, normalize=ts.normalize)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the model is untouched
    assert not torch.allclose(recal.chain4[0].bn1.running_var, model.chain4[0].bn1.running_var)
    assert all(torch.equal(recal.state_dict()[k], v) for k, v in before.items() if "running" not in k and "num_batches" not in k)
    assert set(model.state_dict()) == set(small_resnet(widths=(8, 8, 16, 16)).state_dict())


def test_example_tied_dropout_without_indices_in_training_says_how_to_fix():
    m = small_resnet(widths=(8, 8, 16, 16)).train()
    attach_dropout(m, DropoutSpec(), default_sites(m))
    with pytest.raises(ValueError, match="example_indices"):
        m(torch.zeros(2, 1, 28, 28))


def test_standard_dropout_drop_mode_uses_the_same_channels():
    d = StandardChannelDropout(DropoutSpec("standard", 0.4, 0.2), salt=0).eval()
    x = torch.rand(3, 20, 2, 2) + 0.5
    assert torch.equal(d(x), x)  # default: the usual evaluation, identity
    with memorization_mode(d, "drop"):
        out = d(x)
    assert torch.equal(out[:, 8:], torch.zeros_like(out[:, 8:]))
    torch.testing.assert_close(out[:, :8], x[:, :8] * 20 / 8)
    d.train()
    kept = (d(x) != 0).float().mean()
    assert 0.2 < float(kept) < 0.95


@pytest.mark.parametrize("p_gen,p_mem,message", [(0.5, 1.2, r"p_mem \(--p-mem\) must lie in \[0, 1\]"),
                                                 (0.0, 0.2, r"p_gen \(--p-gen\) must be > 0")])
def test_bad_p_values_are_refused_everywhere(p_gen, p_mem, message, tmp_path, fashion_small):
    with pytest.raises(ValueError, match=message):
        DropoutSpec("example-tied", p_gen, p_mem).validate()
    with pytest.raises(ValueError, match=message):
        _recipe(dropout="example-tied", p_gen=p_gen, p_mem=p_mem).validate()
    with pytest.raises(ValueError, match=message):
        train(_recipe(dropout="example-tied", p_gen=p_gen, p_mem=p_mem), tmp_path / "x", bundle=fashion_small,
              device="cpu", progress=False)
    assert not (tmp_path / "x" / MODEL_FILE).exists()
    DropoutSpec("example-tied", 0.7, 0.4).validate()  # p_mem is a chance per memorization channel: no sum limit


def test_cli_refuses_bad_memorization_settings(capsys):
    from workbench.cli import main

    assert main(["train", "--recipe", "fashion-noisy-etd", "--p-gen", "0.9", "--p-mem", "1.3"]) == 2
    assert "p_mem" in capsys.readouterr().err
    assert main(["train", "--recipe", "fashion-noisy", "--label-noise", "1.5"]) == 2
    assert "label_noise" in capsys.readouterr().err
    assert main(["train", "--recipe", "fashion-baseline", "--grad-accounting"]) == 2
    assert "--label-noise" in capsys.readouterr().err

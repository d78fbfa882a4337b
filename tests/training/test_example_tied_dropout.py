"""Example-tied dropout as the official code builds it: masks, drop mode, baseline, recipes, resume, outcome."""
from __future__ import annotations

import json

import pytest
import torch

from workbench.localization.dropout_study import (
    GOAL_CLEAN_COST,
    GOAL_NOISY_KEPT,
    dropout_outcome,
    memorization_table,
    predict_in_mode,
)
from tests.localization.test_memorization_findings import _bench
from workbench.localization.findings import finding_commands, finding_table, read_findings
from workbench.models import resnet9, small_resnet
from workbench.models.dropout import (
    DropoutSpec,
    ExampleTiedDropout,
    StandardChannelDropout,
    attach_dropout,
    attach_from_card,
    default_sites,
    dropout_card,
    example_indices,
    memorization_mode,
)
from workbench.training import Recipe, get_recipe, load_model, train
from workbench.training.loop import STATE_FILE, CrossEntropyObjective, build_for_recipe
from workbench.training.trainset import training_set

TINY_R9 = dict(arch="resnet9", arch_kwargs={"width": 0.125}, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.9,
               schedule="triangle", warmup_epochs=0.5, augment=False, grad_clip=None, train_subset=128,
               eval_subset=64, label_noise=0.1)


def _tiny(**kw) -> Recipe:
    return Recipe(**{"name": "tiny-r9-etd", "epochs": 2, "dropout": "example-tied", **TINY_R9, **kw})


class _Recorder:
    """Records every training mask each example-tied site hands out: {(site salt, example): [mask, ...]}."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: dict[tuple[int, int], list[torch.Tensor]] = {}
        orig = ExampleTiedDropout.member_mask

        def member_mask(site, indices, c):
            mask = orig(site, indices, c)
            if site.training:
                for i, row in zip(indices.tolist(), mask):
                    self.seen.setdefault((site.salt, i), []).append(row.clone())
            return mask

        monkeypatch.setattr(ExampleTiedDropout, "member_mask", member_mask)


def test_each_examples_mask_is_the_same_in_every_epoch_and_differs_between_examples(tmp_path, fashion_small,
                                                                                     monkeypatch):
    rec = _Recorder(monkeypatch)
    train(_tiny(arch_kwargs={"width": 0.25}), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    assert {salt for salt, _ in rec.seen} == {0, 1}  # two sites: res1, res2
    for (salt, i), masks in rec.seen.items():
        assert len(masks) == 2, (salt, i)  # seen once per epoch
        assert torch.equal(masks[0], masks[1]), (salt, i)
    for salt in (0, 1):
        rows = {tuple(rec.seen[(salt, i)][0].tolist()) for i in range(128)}
        assert len(rows) > 100  # 128 examples; 16 (res1) or 32 (res2) memorization channels at p_mem 0.2
    # a fresh module (a resumed run, another process) draws the same masks
    again = ExampleTiedDropout(DropoutSpec("example-tied", 0.5, 0.2, seed=0), salt=1)
    idx = torch.arange(128)
    c = len(rec.seen[(1, 0)][0])
    assert torch.equal(again.member_mask(idx, c), torch.stack([rec.seen[(1, i)][0] for i in range(128)]))
    other_seed = ExampleTiedDropout(DropoutSpec("example-tied", 0.5, 0.2, seed=1), salt=1)
    assert not torch.equal(other_seed.member_mask(idx, c), again.member_mask(idx, c))


@pytest.mark.parametrize("c, p_gen, p_mem", [(64, 0.5, 0.2), (10, 0.55, 0.3), (32, 0.25, 0.5)])
def test_generalization_channels_are_never_dropped_and_memorization_channels_kept_at_p_mem(c, p_gen, p_mem):
    d = ExampleTiedDropout(DropoutSpec("example-tied", p_gen, p_mem), salt=3).train()
    n_gen, n_mem = d.split(c)
    assert n_gen == int(p_gen * c) and n_mem == c - n_gen
    idx = torch.arange(4000)
    mask = d.member_mask(idx, c)
    assert bool(mask[:, :n_gen].all())
    share = float(mask[:, n_gen:].float().mean())
    assert abs(share - p_mem) < 0.02  # Bernoulli(p_mem) per example and channel
    counts = mask[:, n_gen:].sum(1)
    assert int(counts.min()) < int(counts.max())  # a draw per channel, not a fixed count
    x = torch.rand(4000, c, 2, 2) + 0.5  # positive: a zero can only come from the mask
    with example_indices(d, idx):
        out = d(x)
    torch.testing.assert_close(out[:, :n_gen], x[:, :n_gen])  # unchanged, no rescaling in training
    assert torch.equal((out[:, n_gen:] != 0).all(dim=(2, 3)), mask[:, n_gen:])


@pytest.mark.parametrize("c, p_gen, p_mem", [(64, 0.5, 0.2), (10, 0.55, 0.3)])
def test_drop_mode_zeroes_exactly_the_memorization_channels_and_rescales_the_rest_as_the_paper(c, p_gen, p_mem):
    d = ExampleTiedDropout(DropoutSpec("example-tied", p_gen, p_mem), salt=0).eval()
    n_gen, _ = d.split(c)
    x = torch.rand(5, c, 3, 3) + 0.5
    out = d(x)  # "drop" is the default evaluation
    assert torch.equal(out[:, n_gen:], torch.zeros_like(out[:, n_gen:]))
    assert bool((out[:, :n_gen] != 0).all())
    torch.testing.assert_close(out[:, :n_gen], x[:, :n_gen] * (p_gen + p_mem) / p_gen)
    with memorization_mode(d, "all"):  # the paper's "test" mode: expected training mask
        out = d(x)
    torch.testing.assert_close(out[:, :n_gen], x[:, :n_gen])
    torch.testing.assert_close(out[:, n_gen:], x[:, n_gen:] * p_mem)


def test_drop_mode_in_resnet9_acts_on_the_papers_sites_only():
    m = resnet9(in_channels=1, input_size=28, width=0.25).eval()
    sites = default_sites(m)
    assert sites == ["res1", "res2"]
    attach_dropout(m, DropoutSpec(), sites)
    seen = {}
    for name in ("conv2", "res1", "conv3", "res2"):
        getattr(m, name).register_forward_hook(lambda mod, i, o, name=name: seen.update({name: o.detach()}))
    with torch.no_grad():
        m(torch.randn(3, 1, 28, 28))
    for name in ("res1", "res2"):
        c = seen[name].shape[1]
        assert torch.equal(seen[name][:, c // 2:], torch.zeros_like(seen[name][:, c // 2:]))
    for name in ("conv2", "conv3"):  # not a site: nothing zeroed channel-wide by the dropout
        assert bool((seen[name].abs().sum(dim=(0, 2, 3)) > 0).all())


def test_standard_dropout_keeps_the_same_expected_share_of_channels():
    torch.manual_seed(0)
    for c in (64, 10):
        spec = DropoutSpec("example-tied", 0.5, 0.2)
        etd = ExampleTiedDropout(spec, salt=0)
        std = StandardChannelDropout(DropoutSpec("standard", 0.5, 0.2), salt=0).train()
        etd_share = float(etd.member_mask(torch.arange(5000), c).float().mean())
        assert std.keep_share(c) == pytest.approx((c // 2 + 0.2 * (c - c // 2)) / c)
        x = torch.ones(5000, c, 1, 1)
        out = std(x)
        kept = float((out != 0).float().mean())
        assert abs(kept - std.keep_share(c)) < 0.01 and abs(kept - etd_share) < 0.02
        torch.testing.assert_close(out[out != 0], torch.full_like(out[out != 0], 1 / std.keep_share(c)))


def test_the_r9_dropout_recipes_validate_and_build_as_the_paper(fashion_small):
    base = get_recipe("fashion-noisy-r9")
    for name, kind in (("fashion-noisy-r9-etd", "example-tied"), ("fashion-noisy-r9-dropout", "standard")):
        r = get_recipe(name).validate()  # builds the model on the meta device to check the sites
        assert r.dropout == kind and (r.p_gen, r.p_mem, r.dropout_sites) == (0.5, 0.2, "paper")
        same = ("arch", "arch_kwargs", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
                "schedule", "warmup_epochs", "augment", "grad_clip", "val_size", "train_subset", "label_noise")
        assert {k: getattr(r, k) for k in same} == {k: getattr(base, k) for k in same}
        assert r.record_dynamics and r.arch_kwargs == {"width": 0.5} and r.val_size == 0
        with torch.device("meta"):
            m = build_for_recipe(r, fashion_small)
        assert dropout_card(m)["sites"] == ["res1", "res2"] and dropout_card(m)["kind"] == kind
    with pytest.raises(ValueError, match=r"dropout_sites='chain2' \(--dropout-sites\): \['chain2'\] are not modules"):
        get_recipe("fashion-noisy-r9-etd").override(dropout_sites="chain2").validate()
    with pytest.raises(ValueError, match=r"--dropout-sites.*names no site"):
        get_recipe("fashion-noisy-r9-etd").override(dropout_sites=" , ").validate()
    get_recipe("fashion-noisy-r9-etd").override(dropout_sites="every").validate()


class _StopAt(CrossEntropyObjective):
    """Raises KeyboardInterrupt (Ctrl-C) at training step ``stop``."""

    def __init__(self, stop: int) -> None:
        super().__init__()
        self.stop = stop

    def __call__(self, model, x, y, step):
        if step == self.stop:
            raise KeyboardInterrupt
        return super().__call__(model, x, y, step)


@pytest.mark.parametrize("kind", ["example-tied", "standard"])
def test_a_run_stopped_after_epoch_1_resumes_to_the_uninterrupted_result(kind, tmp_path, fashion_small):
    recipe = _tiny(dropout=kind)
    whole = train(recipe, tmp_path / "whole", bundle=fashion_small, device="cpu", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, tmp_path / "cut", bundle=fashion_small, device="cpu", progress=False, objective=_StopAt(4))
    assert torch.load(tmp_path / "cut" / STATE_FILE, weights_only=True)["epoch"] == 1  # 128 // 32 = 4 steps
    resumed = train(recipe, tmp_path / "cut", bundle=fashion_small, device="cpu", progress=False)
    for k, v in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert (tmp_path / "cut" / "dynamics").is_dir()
    assert resumed.card["dropout"]["kind"] == kind and resumed.card["dropout"]["sites"] == ["res1", "res2"]


def test_the_outcome_is_the_noisy_labels_kept_after_dropping_and_the_clean_cost(tmp_path, fashion_small, capsys):
    from workbench.cli import main

    train(_tiny(epochs=1), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    model, card = load_model(tmp_path)
    ts = training_set(tmp_path, bundle=fashion_small)
    rows = memorization_table(model, ts, test=(fashion_small.test_x[:64], fashion_small.test_y[:64]))
    out = dropout_outcome(rows)
    dropped = predict_in_mode(model, ts.x, mode="drop", normalize=ts.normalize)
    own = predict_in_mode(model, ts.x, mode="example", indices=ts.indices, normalize=ts.normalize)
    noisy, clean = ts.noisy, ~ts.noisy
    assert int(noisy.sum()) == round(0.1 * 128)  # the recipe flips 10% of 128
    assert out.noisy_kept == pytest.approx(float((dropped[noisy] == ts.y[noisy]).float().mean()))
    assert out.noisy_kept_before == pytest.approx(float((own[noisy] == ts.y[noisy]).float().mean()))
    cost = float((own[clean] == ts.y[clean]).float().mean()) - float((dropped[clean] == ts.y[clean]).float().mean())
    assert out.clean_cost == pytest.approx(cost) and (out.before, out.after) == ("example", "drop")
    assert out.meets_goal() == (out.noisy_kept <= GOAL_NOISY_KEPT and cost <= GOAL_CLEAN_COST)
    with pytest.raises(ValueError, match="needs 'drop'"):
        dropout_outcome([r for r in rows if r.mode != "drop"])
    written = tmp_path / "findings" / "dropout.json"  # its folder is made
    assert main(["memorization", "--checkpoint", str(tmp_path), "--json", str(written)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(written.read_text())
    assert doc["outcome"]["noisy_kept"] == pytest.approx(out.noisy_kept)
    assert doc["outcome"]["clean_cost"] == pytest.approx(out.clean_cost)
    assert f"noisy labels kept after dropping (drop): {out.noisy_kept:.1%}" in printed
    assert f"clean training accuracy cost: {out.clean_cost * 100:.1f} points" in printed
    # the JSON is the run's fourth finding: read back with the others, as a table with its command
    [finding] = read_findings(tmp_path / "findings")
    assert finding["step"] == "dropout" and finding["command"] == (
        f"python -m workbench memorization --checkpoint {tmp_path} --after drop --json {written}")
    table = finding_table(finding)
    drop = next(r for r in rows if r.mode == "drop")
    assert f"| drop | {100 * drop.noisy:.1f}% | {100 * drop.noisy_true:.1f}% | {100 * drop.clean:.1f}% |" in table
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == len(rows) + 1
    assert f"{100 * out.noisy_kept:.1f}% of the noisy labels kept" in table
    assert f"goal {'met' if out.meets_goal() else 'not met'}" in table
    bench = _bench()
    bench.main(bench.get_args_parser().parse_args(["tables", "--run", str(tmp_path)]))
    assert f"## dropout\n\n`{finding['command']}` (" in capsys.readouterr().out
    assert finding_commands("runs/r", dropout=True) == [
        "python -m workbench memorization --checkpoint runs/r --json runs/r/findings/dropout.json"]
    assert [c.split()[2] for c in finding_commands("runs/r", dropout=False)] == ["accounting", "rewind", "retrain",
                                                                                 "critical"]


def test_the_memorization_command_refuses_a_model_without_dropout(tiny_model_dir, capsys):
    from workbench.cli import main

    assert main(["memorization", "--checkpoint", str(tiny_model_dir)]) == 2
    assert "without dropout or without label noise" in capsys.readouterr().err


def test_a_card_drawn_with_another_mask_rule_is_refused_with_the_fix():
    m = small_resnet(widths=(8, 8, 16, 16))
    attach_dropout(m, DropoutSpec(), default_sites(m))
    info = dropout_card(m)
    assert info["mask_rule"] == "bernoulli-per-channel"
    old = {k: v for k, v in info.items() if k != "mask_rule"}
    with pytest.raises(ValueError, match="another mask rule.*retrain the model"):
        attach_from_card(small_resnet(widths=(8, 8, 16, 16)), old)
    assert isinstance(attach_from_card(small_resnet(widths=(8, 8, 16, 16)), info)["chain2"], ExampleTiedDropout)


def test_the_ablation_trains_each_point_once_and_records_the_outcome(tmp_path, fashion_small):
    from workbench.localization.dropout_ablation import ablation_grid, ablation_table, parse_pairs, run_ablation

    points = ablation_grid([0.125], ["paper", "res2"], parse_pairs("0.5:0.2"))
    assert [p.name for p in points] == ["w0.125-paper-g0.5-m0.2", "w0.125-res2-g0.5-m0.2"]
    base = _tiny(epochs=1)
    results = run_ablation(base, points, tmp_path, bundle=fashion_small, device="cpu")
    card = json.loads((tmp_path / points[1].name / "card.json").read_text())
    assert card["dropout"]["sites"] == ["res2"] and card["command"].endswith(f"# point {points[1].name}")
    lines = [json.loads(s) for s in (tmp_path / "ablation.jsonl").read_text().splitlines()]
    assert [r["name"] for r in lines] == [p.name for p in points]
    assert [r["noisy_kept"] for r in lines] == [o.noisy_kept for _, o in results]
    stamp = (tmp_path / points[0].name / "model.safetensors").stat().st_mtime_ns
    run_ablation(base, points[:1], tmp_path, bundle=fashion_small, device="cpu")  # finished: read back
    assert (tmp_path / points[0].name / "model.safetensors").stat().st_mtime_ns == stamp
    assert len((tmp_path / "ablation.jsonl").read_text().splitlines()) == 3
    table = ablation_table(tmp_path).splitlines()
    assert len(table) == 2 + len(points)  # header, rule, one row per point although one was read back twice
    assert table[2].startswith("| 0.125 | paper | 0.5 | 0.2 |") and table[3].startswith("| 0.125 | res2 |")
    assert f"{lines[0]['noisy_kept']:.1%} (drop)" in table[2]
    assert "| 128 × 1 |" in table[2] and "(64) |" in table[2]  # training images × epochs, test images
    custom = {**lines[0], "name": "custom", "train_subset": None}  # a custom point: no width or placement given
    del custom["arch_kwargs"], custom["dropout_sites"]
    with open(tmp_path / "ablation.jsonl", "a") as fh:
        fh.write(json.dumps(custom) + "\n")
    assert ablation_table(tmp_path).splitlines()[-1].startswith("| – | – | 0.5 | 0.2 | all × 1 |")
    with pytest.raises(FileNotFoundError, match="run the ablation"):
        ablation_table(tmp_path / "none")
    with pytest.raises(ValueError, match="P_GEN:P_MEM"):
        parse_pairs("0.5")
    with pytest.raises(ValueError, match="p_mem"):  # every point is validated before any training
        run_ablation(base, ablation_grid([0.125], ["paper"], [(0.5, 2.0)]), tmp_path / "bad", bundle=fashion_small)
    assert not (tmp_path / "bad").exists()

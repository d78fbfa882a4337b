"""benchmarks/memorization_findings.py on a tiny ResNet-9 run with label noise: the subsets, the
tables' figures against the run's own records, and resuming from the per-unit JSON."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from tests.support.repo import ROOT
from workbench.models import resnet9

NOISY, CLEAN, TEST = "6", "10", "200"


def _bench():
    spec = importlib.util.spec_from_file_location("memorization_findings", ROOT / "benchmarks" / "memorization_findings.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-epoch ResNet-9 (width 1/8) on 300 training images, 10% flipped, snapshots and accounting kept."""
    from workbench.training import Recipe, train

    out = tmp_path_factory.mktemp("r9run")
    recipe = Recipe(name="tiny-noisy-r9", arch="resnet9", arch_kwargs={"width": 0.125}, epochs=2, batch_size=64,
                    optimizer="sgd", lr=0.05, momentum=0.9, schedule="constant", warmup_epochs=0.0, augment=False,
                    val_size=0, train_subset=300, eval_subset=200, label_noise=0.1, keep_epochs=True,
                    grad_accounting=True, accounting_every=1)
    train(recipe, out, device="cpu", progress=False, command="pytest fixture")
    return out


def _main(bench, argv):
    return bench.main(bench.get_args_parser().parse_args(argv), argv)


def test_subsets_take_every_flipped_example_and_clean_ones_stratified_by_class():
    bench = _bench()
    labels = torch.arange(200) % 4
    noisy = torch.zeros(200, dtype=torch.bool)
    noisy[::10] = True
    flipped, clean = bench.pick_examples(noisy, labels, 1000, 22, seed=3)
    assert torch.equal(flipped, noisy.nonzero().flatten())
    assert not noisy[clean].any() and len(clean.unique()) == 22
    assert torch.bincount(labels[clean], minlength=4).tolist() == [6, 6, 5, 5]
    again = bench.pick_examples(noisy, labels, 5, 22, seed=3)
    other = bench.pick_examples(noisy, labels, 5, 22, seed=4)
    assert torch.equal(again[1], clean) and len(again[0]) == 5 and set(again[0].tolist()) <= set(flipped.tolist())
    assert not torch.equal(other[1], clean)


def test_layers_are_each_conv_or_linear_with_its_batchnorm():
    bench = _bench()
    assert bench.layer_units(resnet9(width=0.125, in_channels=1, input_size=28)) == [
        "conv1", "conv2", "res1.body.0", "res1.body.1", "conv3", "res2.body.0", "res2.body.1", "conv4", "head"]


def test_critical_summary_leaves_out_unpredicted_examples_and_shares_the_layers():
    bench = _bench()
    ex = [{"noisy": True, "count": c, "stopped": ["flipped"], "accuracy_before": 0.9, "accuracy_after": 0.8,
           "layers": {"a": c / 2, "b": c / 2}} for c in (1.0, 3.0, 12.0)]
    ex += [{"noisy": True, "count": 0.0, "stopped": ["not_predicted"], "accuracy_before": 0.9, "accuracy_after": 0.9,
            "layers": {}}]
    ex += [{"noisy": False, "count": 20.0, "stopped": ["max_neurons"], "accuracy_before": 0.9, "accuracy_after": 0.5,
            "layers": {"b": 20.0}}]
    s = bench.critical_summary(ex, {"a": 4, "b": 8})
    assert s["noisy"]["examples"] == 4 and s["noisy"]["not_predicted"] == 1
    assert s["noisy"]["median"] == 3.0 and s["noisy"]["share_under_10"] == pytest.approx(2 / 3)
    assert s["noisy"]["layer_share"] == {"a": 0.5, "b": 0.5}
    assert s["clean"]["capped_searches"] == 1 and s["clean"]["layer_share"] == {"a": 0.0, "b": 1.0}
    assert s["clean"]["accuracy_after"] == pytest.approx(0.5)


def test_accounting_table_is_the_runs_own_record(run, tmp_path, capsys):
    bench = _bench()
    res = _main(bench, ["accounting", "--run", str(run), "--out", str(tmp_path), "--accounting-epochs", "1,2"])
    rec = [json.loads(line) for line in (run / "grad_accounting.jsonl").read_text().splitlines()]
    last = rec[-1]["layers"]["conv4.0"]
    assert res["epochs"] == [1, 2]
    assert res["by_epoch"]["2"]["layers"]["conv4.0"]["noisy_share"] == pytest.approx(
        last["noisy"] / (last["clean"] + last["noisy"]))
    assert res["weight_layers"]["head.fc"] == "head" and "conv4.1" not in res["weight_layers"]
    text = capsys.readouterr().out
    assert "| conv4 |" in text and "| conv4.1 |" not in text and "flipped labels fitted" in text
    assert json.loads((tmp_path / "accounting.json").read_text())["command"].endswith("--accounting-epochs 1,2")


def test_rewinding_to_the_last_snapshot_changes_nothing_and_a_rerun_resumes(run, tmp_path):
    bench = _bench()
    argv = ["rewind", "--run", str(run), "--out", str(tmp_path), "--noisy", NOISY, "--clean", CLEAN, "--test", TEST,
            "--rewind-epochs", "0,2"]
    res = _main(bench, argv)
    final, rows = res["rows"][0], res["rows"][1:]
    assert res["examples"] == {"noisy": 6, "clean": 10, "test": 200}
    assert len(rows) == 9 * 2 and {r["epoch"] for r in rows} == {0, 2}
    keys = ("noisy_label", "noisy_true_label", "clean", "test")
    for r in rows:
        if r["epoch"] == 2:  # the snapshot of the last epoch is the final model
            assert all(r[k] == final[k] for k in keys), r["layer"]
        assert all(0.0 <= r[k] <= 1.0 for k in keys)
    units = sorted((tmp_path / "rewind").rglob("*.json"))
    assert len(units) == 18
    stamps = {p: p.stat().st_mtime_ns for p in units}
    gone = units[3]
    gone.unlink()
    again = _main(bench, argv)
    assert gone.exists() and all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != gone)
    assert [{k: r[k] for k in keys} for r in again["rows"]] == [{k: r[k] for k in keys} for r in res["rows"]]


def test_retraining_and_critical_neurons_write_one_unit_each(run, tmp_path, capsys):
    bench = _bench()
    common = ["--run", str(run), "--out", str(tmp_path), "--noisy", NOISY, "--clean", CLEAN, "--test", TEST]
    res = _main(bench, ["retrain", *common, "--retrain-epochs", "1", "--layers", "conv4,head"])
    assert [r["layer"] for r in res["rows"]] == [None, "conv4", "head"]
    assert res["examples"]["retrained_on"] == "the clean examples" and res["epochs"] == 1
    crit = _main(bench, ["critical", *common, "--repeats", "1", "--max-neurons", "30", "--cost-size", "32"])
    assert len(crit["examples"]) == 16 and len(list((tmp_path / "critical").rglob("chunk_*.json"))) == 2
    for part, n in (("noisy", 6), ("clean", 10)):
        s = crit["summary"][part]
        assert s["examples"] == n
        searched = [e for e in crit["examples"] if e["noisy"] == (part == "noisy") and "not_predicted" not in e["stopped"]]
        assert s["examples"] - s["not_predicted"] == len(searched)
        if searched:
            assert sum(s["layer_share"].values()) == pytest.approx(1.0)
            assert all(e["count"] <= 30 for e in searched)
    capsys.readouterr()
    _main(bench, ["tables", "--run", str(run), "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert "## retrain" in text and "## critical" in text and "## rewind" not in text
    assert "| none (final model) |" in text and "share of the noisy examples' removed channels" in text


def test_a_folder_without_a_run_or_label_noise_or_a_layer_is_refused_with_the_fix(run, tmp_path, tiny_model_dir):
    bench = _bench()
    with pytest.raises(SystemExit, match="not a model folder.*--recipe fashion-noisy-r9"):
        _main(bench, ["rewind", "--run", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"unknown \['chain9'\]; choose from \['conv1'"):
        _main(bench, ["retrain", "--run", str(run), "--out", str(tmp_path), "--layers", "head,chain9"])
    with pytest.raises(SystemExit, match="give a file name ending in .json"):
        _main(bench, ["accounting", "--run", str(run), "--out", str(tmp_path), "--json", "../escape.json"])
    assert not (tmp_path.parent / "escape.json").exists()
    with pytest.raises(SystemExit, match="without label noise"):
        _main(bench, ["rewind", "--run", str(tiny_model_dir), "--out", str(tmp_path)])

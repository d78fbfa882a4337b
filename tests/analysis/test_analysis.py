"""workbench.analysis: edit-space KL vectors, class-vs-class matrices, sequential curves, figures."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from workbench import analysis as A
from workbench.editing import EditorConfig, edit


@pytest.fixture()
def probe(fashion_small):
    x, y = fashion_small.split("test")
    return fashion_small.normalize(x[:200]), y[:200]


def _logits_fn(model, x):
    """Logits of ``model`` with some parameters replaced (a real forward, no mocking)."""
    base = {n: p.detach() for n, p in model.named_parameters()}

    @torch.no_grad()
    def fn(params):
        return functional_call(model, {**base, **params}, (x,))
    return fn


def test_kl_per_example_matches_torch_and_is_zero_when_unchanged():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    kl = A.kl_per_example(a, b)
    ref = F.kl_div(F.log_softmax(b, -1), F.log_softmax(a, -1), log_target=True, reduction="none").sum(-1)
    assert kl.shape == (7,)
    torch.testing.assert_close(kl, ref, atol=1e-6, rtol=1e-5)
    assert bool((kl > 0).all())
    assert float(A.kl_per_example(a, a).abs().max()) < 1e-6
    with pytest.raises(ValueError, match="same shape"):
        A.kl_per_example(a, b[:3])


def test_edit_space_rows_are_kl_of_each_edit(tiny_model, probe, fashion_small):
    x, _ = probe
    tiny_model.eval()
    fn = _logits_fn(tiny_model, x)
    base = fn({})
    preds = base.argmax(1)
    # edit 0 and 1: random wrong labels; edit 2: the label it already predicts (no change)
    edits = [edit(tiny_model, x[0], int((preds[0] + 1) % 10), lr=1e-3),
             edit(tiny_model, x[1], int((preds[1] + 3) % 10), lr=1e-3),
             edit(tiny_model, x[2], int(preds[2]))]
    assert edits[0].steps > 0 and edits[2].steps == 0
    space = A.edit_space(fn, base, edits)
    assert space.shape == (3, len(x))
    torch.testing.assert_close(space[1], A.kl_per_example(base, fn(edits[1].after)))
    assert float(space[0].sum()) > 0 and float(space[2].abs().max()) < 1e-6
    sub = A.edit_space(fn, base, edits, probe=torch.arange(10, 20))
    torch.testing.assert_close(sub, space[:, 10:20])
    with pytest.raises(TypeError, match="EditResult"):
        A.edit_space(fn, base, [3])


def test_tsne_embedding_shape_determinism_and_small_e():
    g = torch.Generator().manual_seed(0)
    v = torch.cat([torch.rand(6, 20, generator=g), 5 + torch.rand(6, 20, generator=g)])
    xy = A.tsne_embedding(v, seed=0)
    assert xy.shape == (12, 2) and np.isfinite(xy).all()
    np.testing.assert_allclose(xy, A.tsne_embedding(v, seed=0), atol=1e-6)
    # two well separated clusters stay separated: every point is nearer its own cluster's centre
    c0, c1 = xy[:6].mean(0), xy[6:].mean(0)
    own = np.r_[np.linalg.norm(xy[:6] - c0, axis=1), np.linalg.norm(xy[6:] - c1, axis=1)]
    other = np.r_[np.linalg.norm(xy[:6] - c1, axis=1), np.linalg.norm(xy[6:] - c0, axis=1)]
    assert (own < other).all()
    with pytest.raises(ValueError, match="at least 3"):
        A.tsne_embedding(v[:2])


def test_class_change_matrix_averages_by_row_class():
    rows = torch.tensor([0, 0, 2])
    change = torch.tensor([[0.1, 0.0, 0.2], [0.3, 0.0, 0.0], [0.0, -0.5, 0.0]])
    m = A.class_change_matrix(rows, change, 3)
    torch.testing.assert_close(m[0], torch.tensor([0.2, 0.0, 0.1]))
    assert bool(torch.isnan(m[1]).all())
    torch.testing.assert_close(m[2], torch.tensor([0.0, -0.5, 0.0]))
    # NaN entries (a class absent from a small split) are skipped, not propagated
    m = A.class_change_matrix(rows, torch.tensor([[float("nan"), 0, 0], [0.4, 0, 0], [0, 0, 0]]), 3)
    assert float(m[0, 0]) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="per_class_change"):
        A.class_change_matrix(rows, change[:2], 3)


def test_flip_share_matrix_counts_flips_by_true_class():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    flipped = [torch.tensor([0, 4]), torch.tensor([1, 2, 6]), torch.tensor([], dtype=torch.long)]
    m = A.flip_share_matrix(torch.tensor([1, 1, 0]), flipped, labels, 3)
    # edits of class 1: shares (1/4, 1/2, 0) and (2/4, 0, 1/2) -> mean (3/8, 1/4, 1/4)
    torch.testing.assert_close(m[1], torch.tensor([0.375, 0.25, 0.25]))
    torch.testing.assert_close(m[0], torch.zeros(3))
    assert bool(torch.isnan(m[2]).all())
    with pytest.raises(ValueError, match="flipped sets"):
        A.flip_share_matrix(torch.tensor([1]), flipped, labels, 3)


def test_read_metrics_reads_training_log_and_keeps_last_row_per_epoch(tiny_model_dir, tmp_path):
    rows = A.read_metrics(tiny_model_dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(0 <= r["test_error"] <= 1 for r in rows)
    log = tmp_path / "metrics.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [{"epoch": 1, "loss": 2.0}, {"epoch": 1, "loss": 1.5},
                                                      {"epoch": 2, "loss": 1.0}]) + "\n")
    assert [r["loss"] for r in A.read_metrics(tmp_path)] == [1.5, 1.0]
    log.write_text("{not json\n")
    with pytest.raises(ValueError, match="metrics.jsonl:1"):
        A.read_metrics(log)
    with pytest.raises(FileNotFoundError, match="train a model"):
        A.read_metrics(tmp_path / "nowhere")


def test_figures_hold_the_data_and_leave_pyplot_alone(tiny_model_dir):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    rows = A.read_metrics(tiny_model_dir)
    extra = [{**r, "editor_lr": 1e-3 * r["epoch"]} for r in rows]
    fig = A.training_curves_figure({"base": rows, "editable": extra})
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert {"loss", "test_error", "val_error", "editor_lr"} <= set(panels)
    line = panels["test_error"].lines[0]
    np.testing.assert_allclose(line.get_ydata(), [r["test_error"] for r in rows])
    assert panels["editor_lr"].get_yscale() == "log" and len(panels["editor_lr"].lines) == 1
    with pytest.raises(ValueError, match="no metrics"):
        A.training_curves_figure({"empty": []})

    m = torch.tensor([[0.1, -0.2], [float("nan"), 0.0]])
    hfig = A.heatmap_figure({"a": m, "b": -m}, ["x", "y"])
    img = hfig.axes[0].images[0]
    assert img.get_clim() == pytest.approx((-0.2, 0.2))
    np.testing.assert_allclose(np.asarray(hfig.axes[1].images[0].get_array()), (-m).numpy())

    xy = np.arange(12, dtype=float).reshape(6, 2)
    efig = A.embedding_figure({"a": xy}, {"a": [0, 0, 1, 1, 2, 2]}, ["c0", "c1", "c2", "c3"])
    assert len(efig.axes[0].collections) == 3  # one scatter per class present

    cv = A.SequentialCurve((True, False, True), (1, 10, 2), (0.01, 0.01, 0.03), (0.11, 0.11, 0.13), 0.1)
    sfig = A.sequential_figure({"m": cv})
    np.testing.assert_allclose(sfig.axes[0].lines[0].get_ydata(), [1.0, 1.0, 3.0])
    np.testing.assert_allclose(sfig.axes[1].lines[0].get_ydata(), [100.0, 50.0, 200 / 3])
    assert json.loads(json.dumps(cv.to_json()))["drawdown"] == [0.01, 0.01, 0.03]

    bfig = A.grouped_bar_figure({"m1": {"gd": 0.1, "adam": 0.2}, "m2": {"gd": 0.3}}, scale=100)
    heights = sorted(round(p.get_height(), 6) for p in bfig.axes[0].patches)
    assert heights == [10.0, 20.0, 30.0]
    assert plt.get_fignums() == before


@pytest.fixture()
def evaluator(tiny_model, fashion_small):
    from workbench.evaluation import Evaluator

    return Evaluator(tiny_model, fashion_small, layers="chain3", limit=300, device="cpu")


def test_run_edits_scores_each_edit_alone_and_selects(evaluator):
    from workbench.evaluation import random_label_edits

    edits = random_label_edits(evaluator, 6, seed=1)
    before = {n: p.clone() for n, p in evaluator.model.named_parameters()}
    run = A.run_edits(evaluator, edits.indices, edits.y, EditorConfig(lr=1e-3), probe=slice(0, 100))
    assert run.kl is not None and run.kl.shape == (6, 100)
    torch.testing.assert_close(run.kl, A.edit_space(evaluator.logits_for, evaluator.base_logits, run.results,
                                                    probe=slice(0, 100)))
    assert all(torch.equal(p, before[n]) for n, p in evaluator.model.named_parameters())  # never modified
    assert torch.equal(run.sources, evaluator.labels[edits.indices]) and torch.equal(run.targets, edits.y)
    assert run.per_class_change().shape == (6, 10) and run.drawdown.shape == run.steps.shape == (6,)
    for e in range(6):  # each edit is scored from the base weights, alone
        rep = evaluator.score(run.results[e])
        assert run.reports[e].error_after == pytest.approx(rep.error_after)
        torch.testing.assert_close(run.per_class_change()[e], rep.per_class_change.float(), equal_nan=True)
        assert run.results[e].y_ref == (int(edits.y[e]),)
    # the same edits through the evaluator's own protocol loop give the same drawdowns (no-op edits aside)
    summary = evaluator.evaluate_edits(edits.x, edits.y, EditorConfig(lr=1e-3), progress=False)
    np.testing.assert_allclose([o.drawdown for o in summary.per_edit], run.drawdown.numpy(), atol=1e-6)
    sub = run.select(run.steps > 0)
    assert len(sub.results) == int((run.steps > 0).sum()) and bool((sub.steps > 0).all())
    assert sub.kl is not None and torch.equal(sub.kl, run.kl[run.steps > 0])
    assert A.run_edits(evaluator, edits.indices[:1], edits.y[:1]).kl is None
    with pytest.raises(ValueError, match="one target per index"):
        A.run_edits(evaluator, [0, 1], [2])


def test_sequential_drawdown_follows_the_session(tiny_model, fashion_small, evaluator):
    from workbench.evaluation import random_label_edits
    from workbench.session import EditSession

    edits = random_label_edits(evaluator, 5, seed=2)
    session = EditSession(tiny_model, fashion_small, evaluator=evaluator, config=EditorConfig(lr=1e-3), device="cpu")
    curve = A.sequential_drawdown(session, edits.indices, edits.y)
    assert len(curve.drawdown) == len(curve.success) == 5 and curve.base_error == evaluator.base_error
    # every edit that met its constraint by moving the weights is applied; one whose target the
    # model already predicts after the edits before it (0 steps, success) records nothing
    assert sum(s and k > 0 for s, k in zip(curve.success, curve.steps)) == len(session.history) > 0
    final = evaluator.score(session.params_at())  # all applied edits together, scored from scratch
    assert curve.drawdown[-1] == pytest.approx(final.drawdown) and curve.error[-1] == pytest.approx(final.error_after)
    with pytest.raises(ValueError, match="one target per index"):
        A.sequential_drawdown(session, [1, 2], [3])
    session.reset()
    bare = EditSession(tiny_model, None, device="cpu")
    with pytest.raises(ValueError, match="no evaluator"):
        A.sequential_drawdown(bare, [1], [3])


def test_editor_for_uses_the_learned_editor_or_the_defaults():
    from workbench.editing import DEFAULTS

    learned = {"editor": {"method": "rmsprop", "lr": 3.5e-4, "beta": 0.7, "beta2": 0.999, "max_steps": 10,
                          "layers": "chain3", "learned": True}}
    cfg = A.editor_for(learned)
    assert (cfg.method, cfg.lr, cfg.beta, cfg.layers) == ("rmsprop", 3.5e-4, 0.7, "chain3")
    other = A.editor_for(learned, layers="head")  # lr was learned for chain3: back to the defaults
    assert other.layers == "head" and other.lr == DEFAULTS["rmsprop"]["lr"]
    base = A.editor_for({"editor": {}}, layers="chain4")
    assert base.layers == "chain4" and base.method == "rmsprop" and base.lr == DEFAULTS["rmsprop"]["lr"]


def test_load_available_loads_present_models_and_notes_missing(tiny_model_dir, tmp_path, capsys):
    models = A.load_available({"a": tiny_model_dir.name, "b": tmp_path / "absent"}, root=tiny_model_dir.parent)
    assert list(models) == ["a"]
    model, card = models["a"]
    assert not model.training and card["recipe"]["name"] == "tiny"
    assert "skipping the b model" in capsys.readouterr().out


def test_core_import_pulls_no_ui_modules():
    code = ("import sys, workbench.analysis; "
            "bad = [m for m in ('ipywidgets', 'plotly', 'IPython', 'matplotlib.pyplot') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr

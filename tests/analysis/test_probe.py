"""Edit generalisation probe: seeded views, shares in [0, 1], and edits that carry over."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from workbench.editing import edit
from workbench.probe import VIEW_KINDS, GeneralizationReport, _shift, augmented_views, generalization


def test_views_are_seeded_and_shaped(fashion_small):
    x = fashion_small.normalize(fashion_small.test_x[:1])[0]
    a = augmented_views(x, 8, seed=1)
    b = augmented_views(x, 8, seed=1)
    c = augmented_views(x, 8, seed=2)
    assert list(a) == list(VIEW_KINDS)
    assert all(a[k].shape == (8, 1, 28, 28) and torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["noise"], c["noise"])
    assert torch.equal(a["flip"][0], x.flip(-1))  # the first flip view is the pure flip
    assert all(not torch.equal(v, x) for v in a["shift"])  # shifts are never the identity


def test_shift_moves_content_and_replicates_the_border():
    x = torch.arange(16.0).view(1, 4, 4)
    down_right = _shift(x, 1, 1)
    assert torch.equal(down_right[:, 1:, 1:], x[:, :-1, :-1])
    assert torch.equal(down_right[:, 0, 1:], x[:, 0, :-1])  # top row replicated
    assert torch.equal(_shift(x, -2, 0)[:, :2], x[:, 2:])


def test_noise_free_views_of_the_edited_image_follow_the_edit(tiny_model, fashion_small):
    """With zero noise every view is the edited image itself: the share must go 0 -> 1."""
    x = fashion_small.normalize(fashion_small.test_x[5:6])[0]
    target = int(torch.softmax(tiny_model(x[None]), 1)[0].argsort(descending=True)[1])
    res = edit(tiny_model, x, target, lr=2e-2, max_steps=20)
    assert res.success
    rep = generalization(tiny_model, x, target, res.before, res.after, n_views=4, kinds=("noise",),
                         noise_std=0.0)
    assert (rep.before, rep.after) == (0.0, 1.0) and rep.per_kind == {"noise": (0.0, 1.0)}


def test_same_weights_give_the_same_share(tiny_model, fashion_small):
    x = fashion_small.normalize(fashion_small.test_x[:1])[0]
    rep = generalization(tiny_model, x, 2, None, None, n_views=8)
    assert rep.before == rep.after and 0.0 <= rep.before <= 1.0 and rep.gain == 0.0


def test_successful_edits_carry_over_to_augmented_views(tiny_model, fashion_small):
    """Fix 8 misclassified test images (each edit from the base model, target = true label):
    on average the share of augmented views predicted as the true label rises."""
    x = fashion_small.normalize(fashion_small.test_x[:200])
    y = fashion_small.test_y[:200]
    with torch.no_grad():
        wrong = (tiny_model(x).argmax(1) != y).nonzero().flatten()[:8].tolist()
    assert len(wrong) == 8
    reports: list[GeneralizationReport] = []
    for i in wrong:
        res = edit(tiny_model, x[i], int(y[i]), lr=2e-2, max_steps=20)
        assert res.success
        reports.append(generalization(tiny_model, x[i], int(y[i]), res.before, res.after, n_views=16, seed=i))
    for r in reports:
        assert all(0.0 <= v <= 1.0 for v in (r.before, r.after, *sum(r.per_kind.values(), ())))
        assert set(r.per_kind) == set(VIEW_KINDS) and r.n_views == 16
    before = sum(r.before for r in reports) / len(reports)
    after = sum(r.after for r in reports) / len(reports)
    assert after > before + 0.1, (before, after)


def test_batch_probe_uses_one_target_per_image(tiny_model, fashion_small):
    x = fashion_small.normalize(fashion_small.test_x[:2])
    rep = generalization(tiny_model, x, [1, 2], None, None, n_views=4)
    assert rep.targets == (1, 2)
    with pytest.raises(ValueError, match="one label per image"):
        generalization(tiny_model, x, [1], None, None)


@pytest.mark.parametrize("kw, match", [({"n_views": 0}, "n_views"), ({"kinds": ("rotate",)}, "unknown view"),
                                       ({"max_shift": 0}, "max_shift")])
def test_bad_view_settings_are_rejected(fashion_small, kw, match):
    x = fashion_small.normalize(fashion_small.test_x[:1])[0]
    with pytest.raises(ValueError, match=match):
        augmented_views(x, **kw)


def test_probe_imports_no_ui():
    code = "import sys, workbench.probe, workbench.session; print([m for m in ('ipywidgets', 'plotly', 'IPython') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr

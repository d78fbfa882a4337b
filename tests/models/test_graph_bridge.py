"""A cache kept at one cut of a traced model serves a later cut: the values crossing the later
cut are computed from it through the graph between the cuts (workbench/models/graph_bridge.py),
equal to the later cut's own prefix, and the layers before the first cut do not run again."""
from __future__ import annotations

import torch
import torch.nn as nn

from tests.support.progressive import count_images
from workbench.data import as_bundle
from workbench.evaluation import Evaluator
from workbench.models.graph import split_for
from workbench.models.graph_bridge import bridge


class Residual(nn.Module):
    """A stem, a residual block whose skip crosses both cuts, in-place ReLUs, a head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv1, self.conv2 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        h = self.act(self.stem(x))
        r = self.conv2(self.act(self.conv1(h)))
        r += h  # in place, on a value that crosses both cuts
        return self.fc(self.act(r).mean((2, 3)))


def test_the_bridge_gives_the_later_cuts_carry_and_leaves_the_cached_one_intact():
    model = Residual().eval()
    x = torch.randn(20, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    a, b = split_for(model, ["conv1.weight"]), split_for(model, ["conv2.weight"])
    assert a.kind == b.kind == "graph" and a.index < b.index
    with torch.no_grad():
        carry_a = a.prefix(x)
        kept = tuple(c.clone() for c in carry_a if isinstance(c, torch.Tensor))
        got, want = bridge(a, b)(carry_a), b.prefix(x)
        assert len(got) == len(want) and all(torch.equal(g, w) for g, w in zip(got, want))
        assert all(torch.equal(c, k) for c, k in zip([c for c in carry_a if isinstance(c, torch.Tensor)], kept))
        assert torch.equal(b.suffix(got), model(x))
    assert bridge(b, a) is None  # only forward: a later cut cannot serve an earlier one
    assert bridge(a, a) is None


def test_a_new_later_group_is_scored_from_the_kept_cut_without_running_the_stem_again():
    model = Residual().eval()
    x = torch.randint(0, 256, (40, 3, 12, 12), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    bundle = as_bundle((x, torch.arange(40) % 4), val_fraction=0, mean=(.5,) * 3, std=(.25,) * 3)
    ev = Evaluator(model, bundle, layers="conv1", device="cpu", batch_size=16, workers=0)  # keeps conv1's carry
    stem = count_images(ev.model.stem)
    edited = {"fc.weight": ev.model.fc.weight.detach() * 1.5}
    logits = ev.logits_for(edited)
    assert stem[0] == 0  # the new group's cut came from the kept carry: the stem did not run again
    fresh = Evaluator(Residual().eval(), bundle, layers="fc", device="cpu", batch_size=16, workers=0)
    assert torch.equal(logits, fresh.logits_for(edited))

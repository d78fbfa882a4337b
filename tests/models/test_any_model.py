"""Any nn.Module: groups by module path, the fast path (stage chain, fx graph cut, full-forward
fallback) against the full forward, edits of sub-blocks, undo, and clear errors.

Tolerances: the fast path runs the very same operations on the same batch slices as the
full forward, so logits are compared with ``torch.equal`` (bit for bit), with base weights
and with edited ones. Undo restores every tensor bit for bit.
"""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch.func import functional_call

from workbench.data import DataBundle
from workbench.editing import edit
from workbench.evaluation import Evaluator
from workbench.models import ModelAdapter, adapt, group_names, group_params, small_resnet

BS = 16  # several batches and a short last one (N = 40)
N = 40


def bundle_for(shape: tuple[int, int, int], classes: int = 10, seed: int = 0) -> DataBundle:
    """Generated uint8 images (no downloads), labels in 0..classes-1."""
    g = torch.Generator().manual_seed(seed)

    def part(n: int):
        return (torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8),
                torch.randint(0, classes, (n,), generator=g))
    tr, va, te = part(8), part(8), part(N)
    c = shape[0]
    return DataBundle("generated", tuple(f"c{i}" for i in range(classes)), (0.5,) * c, (0.25,) * c,
                      *tr, *va, *te)


def seq_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def resnet18_gray() -> nn.Module:
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return m


def vit() -> nn.Module:
    m = torchvision.models.VisionTransformer(image_size=28, patch_size=7, num_layers=2, num_heads=2,
                                             hidden_dim=32, mlp_dim=64, num_classes=10)
    nn.init.normal_(m.heads.head.weight, std=0.2)  # torchvision zero-initialises the head: no gradient
    return m


class Skip(nn.Module):
    """``h`` crosses the cut as the skip, and the suffix writes into it in place (``h.add_``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1)
        self.pre = nn.Conv2d(8, 8, 1)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv0(x))
        s = self.pre(h)
        h.add_(self.block(s))  # in place, on a value the evaluator caches
        return self.head(h.mean((2, 3)))


class Dynamic(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(x))
        if h.mean() > 0:
            h = h * 2
        return self.fc(h.mean((2, 3)))


# name -> (builder, input shape, group to edit (a sub-block where there is one), expected split kind)
CASES = {
    "sequential": (seq_cnn, (1, 28, 28), "1.2", "graph"),
    "resnet18-1x28": (resnet18_gray, (1, 28, 28), "layer3.1", "graph"),
    "resnet18-3x32": (lambda: torchvision.models.resnet18(num_classes=10), (3, 32, 32), "layer3", "graph"),
    "vit": (vit, (3, 28, 28), "encoder.layers.encoder_layer_1", "graph"),
    "skip": (Skip, (3, 8, 8), "block", "graph"),
    "dynamic": (Dynamic, (1, 8, 8), "fc", "full"),
}


def full_logits(model: nn.Module, bundle: DataBundle, params: dict | None = None) -> torch.Tensor:
    """The reference: plain full forward of the test split in batches of BS."""
    outs = []
    with torch.inference_mode():
        for i in range(0, N, BS):
            x = bundle.normalize(bundle.test_x[i:i + BS])
            outs.append(model(x) if not params else functional_call(model, params, (x,)))
    return torch.cat(outs)


@pytest.fixture(params=list(CASES))
def case(request):
    build, shape, group, kind = CASES[request.param]
    torch.manual_seed(0)
    model = build().eval()
    return request.param, model, bundle_for(shape), group, kind


def test_fast_path_edit_score_and_undo(case):
    name, model, bundle, group, kind = case
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev = Evaluator(model, bundle, layers=group, device="cpu", batch_size=BS)
    assert ev.fast_path.startswith({"graph": "graph cut", "full": "full forward"}[kind]), ev.fast_path
    assert any("full forward" in str(w.message) for w in caught) == (kind == "full")
    assert torch.equal(ev.base_logits, full_logits(model, bundle))

    names = group_params(model, group)
    assert names and all(n.startswith(group + ".") or n == group for n in names)
    x = ev.image(0)
    target = (int(ev.base_preds[0]) + 1) % 10
    res = edit(model, x, target, method="rmsprop", lr=3e-2, max_steps=20, layers=group)
    assert res.success and res.steps > 0, res.message
    assert list(res.after) == names  # only the group's parameters are edited
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # edit() does not mutate

    # fast path with the edited weights == full forward with them, bit for bit, twice (cache intact)
    ref = full_logits(model, bundle, res.after)
    assert torch.equal(ev.logits_for(res.after), ref)
    assert torch.equal(ev.logits_for({k: v.clone() for k, v in res.after.items()}), ref)
    assert torch.equal(ev.score(res).preds_after, ref.argmax(1))

    res.apply(model)
    with torch.inference_mode():
        assert int(model(x.unsqueeze(0)).argmax()) == target
    res.revert(model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_torchvision_resnet_groups_and_sub_blocks():
    m = torchvision.models.resnet18(num_classes=10)
    assert isinstance(m.groups, int)  # torchvision's own attribute is not mistaken for groups
    stages = [g for s in ("layer1", "layer2", "layer3", "layer4") for g in (s, f"{s}.0", f"{s}.1")]
    assert group_names(m) == ["conv1", "bn1", *stages, "fc", "all"]  # each stage, then its blocks
    assert ModelAdapter(m).default_group() == "layer3"  # the middle of the stage run layer1 ... layer4
    assert "layer3.1" in group_names(m, every=True) and "layer3.1.conv2" in group_names(m, every=True)
    sub = group_params(m, "layer3.1")
    assert sub == [n for n, _ in m.named_parameters() if n.startswith("layer3.1.")]
    assert group_params(m, ["fc", "layer3.1", "fc"]) == group_params(m, "fc") + sub
    a = ModelAdapter(m, aliases={"late": ("layer4", "fc")})
    assert a.params("late") == group_params(m, "layer4") + group_params(m, "fc")
    assert a.split(sub).cut == "layer3.1.conv1"


def test_project_resnet_keeps_its_stage_names_as_aliases():
    tiny_model = small_resnet(widths=(4, 4, 8, 8)).eval()
    assert group_names(tiny_model) == ["stem", "chain1", "chain2", "chain3", "chain4", "head", "all"]
    assert group_params(tiny_model, "chain3") == [n for n, _ in tiny_model.named_parameters()
                                                  if n.startswith("chain3.")]
    split = adapt(tiny_model).split(group_params(tiny_model, "chain3.0.conv2"))
    assert (split.kind, split.cut) == ("stages", "chain3")  # the stage chain path, as before


def test_skip_connection_crosses_the_cut_and_inplace_suffix_keeps_the_cache():
    m = Skip().eval()
    split = adapt(m).split(group_params(m, "block"))
    carry = split.prefix(torch.randn(2, 3, 8, 8))
    assert split.kind == "graph" and len(carry) == 2  # s (the block's input) and h (the skip)
    assert split.clone_carry  # `h.add_` writes into a cached value: the suffix gets a copy


def test_vit_carries_the_batch_size_across_the_cut():
    m = vit().eval()
    split = adapt(m).split(group_params(m, "class_token"))  # a parameter held by the model itself
    carry = split.prefix(torch.randn(3, 3, 28, 28))
    assert 3 in [c for c in carry if isinstance(c, int)]


@pytest.mark.parametrize("group, message", [
    ("layer9", r"unknown layer group 'layer9'.*did you mean 'layer4'"),
    ("layer3.1.relu", r"'layer3.1.relu' \(ReLU\) holds no parameters"),
    ([], "no editable group given|at least one group"),
])
def test_bad_groups_are_rejected_with_the_model_unchanged(group, message):
    m = torchvision.models.resnet18(num_classes=10).eval()
    before = copy.deepcopy(m.state_dict())
    bundle = bundle_for((3, 32, 32))
    with pytest.raises(ValueError, match=message):
        edit(m, bundle.normalize(bundle.test_x[:1]), 3, layers=group)
    with pytest.raises(ValueError, match=message):
        Evaluator(m, bundle, layers=group, device="cpu")
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


class Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (N, 4, H, W): not logits


class Pair(Features):
    def forward(self, x: torch.Tensor):  # type: ignore[override]
        return self.conv(x).mean((2, 3)), x


@pytest.mark.parametrize("model", [Features, Pair])
def test_non_logit_output_is_a_clear_error(model):
    m = model().eval()
    before = copy.deepcopy(m.state_dict())
    bundle = bundle_for((1, 8, 8), classes=4)
    with pytest.raises(ValueError, match=r"must return \(N, 4\) float logits"):
        Evaluator(m, bundle, layers="conv", device="cpu")
    with pytest.raises(ValueError, match=r"must return \(N, classes\) float logits"):
        edit(m, bundle.normalize(bundle.test_x[:1]), 1, layers="conv")
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_wrong_class_count_and_image_size_are_clear_errors():
    m = seq_cnn().eval()
    with pytest.raises(ValueError, match=r"must return \(N, 4\) float logits.*\(2, 10\)"):
        Evaluator(m, bundle_for((1, 28, 28), classes=4), layers="5", device="cpu")
    with pytest.raises(ValueError, match="the model failed on generated images of shape"):
        Evaluator(m, bundle_for((3, 28, 28)), layers="5", device="cpu")
    with pytest.raises(ValueError, match="out of range"):
        edit(m, torch.randn(1, 28, 28), 12, layers="5")


def test_a_broken_fast_path_fails_loudly(monkeypatch):
    from workbench.models.graph import Split

    real = Split.suffix

    def wrong(self, carry, params=None):  # a bug: the edited weights are ignored
        return real(self, carry, None)
    monkeypatch.setattr(Split, "suffix", wrong)
    with pytest.raises(RuntimeError, match="fast path .* disagrees with the full forward"):
        Evaluator(seq_cnn().eval(), bundle_for((1, 28, 28)), layers="1.2", device="cpu", batch_size=BS)


def test_cache_over_the_memory_bound_is_recomputed_and_exact():
    m = torchvision.models.resnet18(num_classes=10).eval()
    bundle = bundle_for((3, 32, 32))
    ev = Evaluator(m, bundle, layers="layer3", device="cpu", batch_size=BS, cache_limit_bytes=1)
    assert "not cached" in next(iter(ev.cache_info().values()))
    p = {n: v + 0.01 for n, v in m.named_parameters() if n.startswith("layer3.")}
    assert torch.equal(ev.logits_for(p), full_logits(m, bundle, p))


def test_gradcam_any_module_path_and_clear_linear_error():
    pytest.importorskip("captum")
    from workbench.attribution import attribute, cam_layers, default_cam_layer

    m = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(3, 32, 32)
    layers = cam_layers(m, x)
    assert "layer3.1" in layers and "layer3" in layers and "fc" not in layers
    assert "layer1.0.relu" not in layers  # runs twice per block: no single output to explain
    assert default_cam_layer(m, x) == "layer3"  # layer4 is 1x1 at 32x32
    amap = attribute(m, x, 3, "LayerGradCam", layer="layer3.1")
    assert amap.shape == (32, 32) and torch.isfinite(amap).all() and amap.abs().sum() > 0
    assert attribute(m, x, 3, "LayerGradCam").shape == (32, 32)
    with pytest.raises(ValueError, match=r"LayerGradCam cannot explain 'fc' \(Linear\).*Layers it can use"):
        attribute(m, x, 3, "LayerGradCam", layer="fc")
    with pytest.raises(ValueError, match="unknown layer 'layer3.9'"):
        attribute(m, x, 3, "LayerGradCam", layer="layer3.9")


def test_editable_training_objective_on_a_traced_model():
    from workbench.training import EditableObjective

    m = seq_cnn().train()
    bundle = bundle_for((1, 28, 28))
    x, y = bundle.normalize(bundle.test_x[:8]), bundle.test_y[:8]
    obj = EditableObjective(layers="1.2", editor_lr=1e-6, edit_steps=2, c_edit=1.0, c_loc=1.0)
    terms, logs = obj.terms(m, x, y, 1)
    assert logs["edit_success"] < 1 and float(terms["edit"].detach()) > 0  # k=2 tiny steps cannot flip: L_edit carries grads
    loss = terms["base"] + terms["edit"] + terms["loc"]
    prefix_w, group_w = m[0][0].weight, m[1][2].weight
    g_prefix, g_group = torch.autograd.grad(loss, [prefix_w, group_w])
    assert float(g_prefix.abs().sum()) > 0 and float(g_group.abs().sum()) > 0

"""Models as users bring them: a Hugging Face ViT (returns an ``ImageClassifierOutput``) and a
model that returns a dict open, edit and undo bit for bit with no wrapper; group names reach
inside wrappers and containers; a transformer's default group is a middle block; GradCAM on a
ViT explains the last block's tokens on the patch grid; a target behind a final ReLU is named
as unreachable; calibration compares success rates over all its edits.

Every model is tiny and built from a configuration with random weights (no downloads).
Premises that decide an outcome are built, not sampled: dead classes have a bias of -100
behind a ReLU (their gradient is exactly 0); live targets trail the prediction by one unit of
logit, which RMSProp at lr 0.3 closes in about two of its ten steps and lr 1e-6 moves by about
1e-5.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torchvision

from workbench.data import DataBundle
from workbench.editing import edit
from workbench.evaluation import Evaluator
from workbench.models import ModelAdapter, forward_logits
from workbench.session import EditSession

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")


def hf_vit(layers: int = 2) -> nn.Module:
    cfg = transformers.ViTConfig(image_size=28, patch_size=7, num_channels=1, hidden_size=32,
                                 num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64, num_labels=10)
    return transformers.ViTForImageClassification(cfg).eval()


def timm_vit(depth: int = 2) -> nn.Module:
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                             depth=depth, num_heads=2, num_classes=10).eval()


class DictNet(nn.Module):
    """Returns ``{"logits": ..., "embedding": ...}``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {"logits": self.fc(h), "embedding": h}


class TwoHeads(DictNet):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        h = self.features(x)
        return {"coarse": self.fc(h), "fine": self.fc(h) * 2}


def data(n: int = 40, shape: tuple[int, ...] = (1, 28, 28)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("build, group", [(hf_vit, "vit.layers.1"), (DictNet, "features.2")])
def test_structured_outputs_open_edit_and_undo_bit_exact(build, group):
    model = build()
    session = EditSession(model, data(), calibration={"edits": 4, "val_limit": 20})
    assert group in session.group_names() and session.config.layers == group  # nested; the default
    base = copy.deepcopy(model.state_dict())
    before = int(session.probabilities(0).argmax())
    target = (before + 1) % 10
    rec = session.edit(session.image(0), target, lr=5e-2, max_steps=20, layers=group)
    assert rec.success and rec.steps > 0, rec.message
    assert int(forward_logits(model, session.image(0).unsqueeze(0)).argmax()) == target
    assert any(not torch.equal(v, base[k]) for k, v in model.state_dict().items())
    session.undo()
    assert all(torch.equal(v, base[k]) for k, v in model.state_dict().items())
    assert int(session.probabilities(0).argmax()) == before


def test_an_ambiguous_dict_is_refused_with_its_keys_and_the_wrapper():
    model = TwoHeads().eval()
    before = copy.deepcopy(model.state_dict())
    msg = r"(?s)keys \['coarse', 'fine'\] and no 'logits' key.*class Logits\(torch.nn.Module\)"
    with pytest.raises(ValueError, match=msg) as err:
        EditSession(model, data())
    assert "out['coarse']" in str(err.value)  # the wrapper picks one of the keys found
    bundle = DataBundle("generated", tuple("abcdefghij"), (0.0,), (1.0,), *data(8), *data(8), *data(8))
    with pytest.raises(ValueError, match=msg):
        Evaluator(model, bundle, layers="fc", device="cpu")
    with pytest.raises(ValueError, match=msg):
        edit(model, data(1)[0][0], 3, layers="fc")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


class Wrap(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).logits


def test_group_names_reach_inside_wrappers_and_containers():
    cases = {
        "mobilenet": (torchvision.models.mobilenet_v3_small(num_classes=10), "features.9", "features.6"),
        "convnext": (timm.create_model("convnext_atto", pretrained=False, num_classes=10), "stages.2", "stages.2"),
        "hf": (hf_vit(4), "vit.layers.2", "vit.layers.2"),
        "wrapped hf": (Wrap(hf_vit(4)), "net.vit.layers.2", "net.vit.layers.2"),
        "timm vit": (timm_vit(12), "blocks.11", "blocks.6"),
        "torchvision vit": (torchvision.models.VisionTransformer(28, 7, 4, 2, 32, 64, num_classes=10),
                            "encoder.layers.encoder_layer_3", "encoder.layers.encoder_layer_2"),
        "resnet": (torchvision.models.resnet18(num_classes=10), "layer3.1", "layer3"),
    }
    for name, (model, nested, default) in cases.items():
        a = ModelAdapter(model)
        groups = a.group_names()
        assert nested in groups and a.default_group() == default, (name, groups, a.default_group())
        every = {id(p) for p in model.parameters()}
        for g in groups[:-1]:  # each group holds parameters, none holds them all ("all" does)
            assert a.params(g) and {id(p) for n, p in model.named_parameters() if n in a.params(g)} != every, g
    assert ModelAdapter(hf_vit(4)).group_names()[-2:] == ["classifier", "all"]  # the head, not its LayerNorm
    assert ModelAdapter(timm_vit(12)).default_group() not in ("norm", "fc_norm", "head")


def test_a_mlp_and_a_sequential_model_keep_their_layers_and_never_default_to_the_head():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 10))
    a = ModelAdapter(mlp)
    assert a.group_names() == ["1", "3", "5", "all"] and a.default_group() == "3"
    two = ModelAdapter(nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 10)))
    assert two.default_group() == "1"


def relu_headed(dead: tuple[int, ...] = (7, 8)) -> nn.Module:
    """SqueezeNet's ending (Conv2d -> ReLU -> pool) on a tiny trunk. Live classes sit at bias 3,
    class 0 at 4 (predicted, one unit ahead); ``dead`` classes at -100, so their logit is 0 and
    their gradient exactly 0."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                      nn.Sequential(nn.Conv2d(4, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    with torch.no_grad():
        conv = m[2][0]
        conv.weight.zero_()
        conv.bias.fill_(3.0)
        conv.bias[0] = 4.0
        for c in dead:
            conv.bias[c] = -100.0
    return m.eval()


def test_a_target_behind_a_dead_relu_is_named_with_the_way_out():
    m = relu_headed()
    x = data(1, (1, 8, 8))[0][0]
    before = copy.deepcopy(m.state_dict())
    for group in ("2.0", "0"):  # the classifier conv, and a group before it: no gradient reaches either
        res = edit(m, x, 7, method="rmsprop", lr=0.3, layers=group)
        assert not res.success and res.extra.get("unreachable_target") is True
        assert "no gradient reaches the target class 7" in res.message
        assert "2.1 (ReLU)" in res.message and "torch.nn.Identity()" in res.message
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    live = edit(m, x, 3, method="rmsprop", lr=0.3, layers="2.0")
    assert live.success and "unreachable_target" not in live.extra
    slow = edit(m, x, 3, method="rmsprop", lr=1e-6, layers="2.0")  # fails, but the gradient reaches it
    assert not slow.success and "unreachable_target" not in slow.extra and "no gradient" not in slow.message


def test_calibration_without_a_qualifying_lr_picks_by_the_real_success_rate():
    from workbench.evaluation.calibration import calibrate

    m = relu_headed()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 1, 8, 8), generator=g, dtype=torch.uint8)
    bundle = DataBundle("generated", tuple("abcdefghij"), (0.5,), (0.25,), images, torch.zeros(8, dtype=torch.long),
                        images, torch.zeros(8, dtype=torch.long), images, torch.zeros(8, dtype=torch.long))
    ev = Evaluator(m, bundle, split="val", layers="2.0", device="cpu")
    x = bundle.normalize(images)
    # The first edit fails at every lr (dead class 7); 0 is already predicted; 1-4 are live.
    y = torch.tensor([7, 0, 8, 1, 2, 3, 4, 1])
    cal = calibrate(ev, "rmsprop", "2.0", lrs=(1e-6, 0.3), edit_set=(x, y))
    assert not cal.feasible and cal.lr == 0.3
    assert cal.success_rate == 6 / 8  # every edit ran: 0, 1, 2, 3, 4, 1 succeed; 7 and 8 cannot
    assert "success 75%" in cal.note()
    assert dict((lr, s) for lr, s, _ in cal.points)[1e-6] == 1 / 8  # only the 0-step edit, over all 8


def test_gradcam_on_a_vit_is_the_last_blocks_tokens_on_the_patch_grid():
    pytest.importorskip("captum")
    import captum.attr

    from workbench.attribution import attribute, cam_layers, default_cam_layer
    from workbench.attribution.gradcam_layers import TokenGrid, cam_layer, grid_view

    for model, x, last in ((timm_vit(2), torch.randn(3, 32, 32), "blocks.1"),
                           (torchvision.models.VisionTransformer(28, 7, 2, 2, 32, 64, num_classes=10).eval(),
                            torch.randn(3, 28, 28), "encoder.layers.encoder_layer_1")):
        assert default_cam_layer(model, x) == last and cam_layers(model, x)[-1] == last
        assert not any("attn" in p or "attention" in p for p in cam_layers(model, x))
        module, grid = cam_layer(model, x, None)
        assert grid == TokenGrid(1, 4, 4)  # the class token, then 16 patches
        xb = x.unsqueeze(0)
        with torch.no_grad():
            plain = model(xb)
            with grid_view(module, grid):
                assert torch.equal(model(xb), plain)  # the view changes no value
        # Grad-CAM by hand on the block's patch tokens: channel weights = mean gradient over the grid
        kept: list[torch.Tensor] = []
        h = module.register_forward_hook(lambda _m, _i, out: kept.append(out))
        logit = model(xb.requires_grad_(True))[0, 3]
        h.remove()
        (g,) = torch.autograd.grad(logit, kept[0])
        acts, grads = grid.to_grid(kept[0]), grid.to_grid(g)
        cam = (grads.mean((2, 3), keepdim=True) * acts).sum(1, keepdim=True)
        ref = captum.attr.LayerAttribution.interpolate(cam.detach(), tuple(x.shape[1:]), "bilinear")[0, 0]
        amap = attribute(model, x, 3, "LayerGradCam")
        assert amap.shape == x.shape[1:] and torch.allclose(amap, ref, atol=1e-5, rtol=1e-4)


def test_gradcam_refusals_are_short_and_plain():
    pytest.importorskip("captum")
    from workbench.attribution import attribute

    m = torchvision.models.resnet18(num_classes=10).eval()
    with pytest.raises(ValueError) as err:
        attribute(m, torch.randn(3, 64, 64), 3, "LayerGradCam", layer="fc")
    text = str(err.value)
    shown = text.split("Layers it can use: ")[1].split(" ... ")[0].split(", ")
    assert len(text) < 400 and len(shown) == 5 and shown[0] == "layer4"  # the groups nearest the head first
    assert "more (workbench.attribution.cam_layers(model, x) lists them)" in text
    vit = timm_vit(2)
    with pytest.raises(ValueError, match=r"blocks.1.attn.k_norm.*tokens on the patch grid.*blocks.1, blocks.0"):
        attribute(vit, torch.randn(3, 32, 32), 3, "LayerGradCam", layer="blocks.1.attn.k_norm")
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval()
    with pytest.raises(ValueError, match="GradCAM does not apply to Sequential.*Integrated Gradients"):
        attribute(mlp, torch.randn(3, 8, 8), 3, "LayerGradCam")


def test_the_session_default_group_uses_the_adapter_rule():
    from workbench.evaluation.editor_resolver import default_group
    from workbench.models import small_resnet

    assert default_group(timm_vit(12)) == "blocks.6"
    assert default_group(small_resnet(widths=(4, 4, 8, 8))) == "chain3"  # the tuned default where it exists

"""Bring your own data: as_bundle on Datasets, torchvision data sets, (x, y) tensors and folders;
display modes; clear errors for bad labels and image sizes, with the model left unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from workbench.data import DataBundle, as_bundle
from workbench.session import EditSession


class _PilDataset(torch.utils.data.Dataset):
    """A torchvision-style data set: PIL images, ``classes``, a transform with Normalize."""

    classes = ["zero", "one", "two"]

    def __init__(self, n: int = 30, size: int = 8, transform=None) -> None:
        from PIL import Image

        rng = np.random.default_rng(0)
        self.images = [Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)) for _ in range(n)]
        self.targets = [i % 3 for i in range(n)]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = self.images[i]
        return (self.transform(img) if self.transform else img), self.targets[i]


def test_pil_dataset_keeps_pixels_and_reads_classes():
    b = as_bundle(_PilDataset(), mean=(0.5,), std=(0.25,), val_fraction=0.2)
    assert isinstance(b, DataBundle) and b.classes == ("zero", "one", "two")
    assert b.test_x.dtype == torch.uint8 and b.input_shape == (1, 8, 8) and b.display == "pixels"
    assert (len(b.val_x), len(b.test_x)) == (6, 24) and b.meta["val_held_out"] == 6
    z = b.normalize(b.test_x[:2])
    torch.testing.assert_close(z, (b.test_x[:2].float() / 255 - 0.5) / 0.25)
    torch.testing.assert_close(b.denormalize(z) * 255, b.test_x[:2].float(), rtol=0, atol=1e-3)


def test_transform_with_normalize_is_read_and_shown_denormalized():
    from torchvision.transforms import v2

    tf = v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize((0.5,), (0.25,))])
    ds = _PilDataset(transform=tf)
    b = as_bundle(Subset(ds, range(20)))  # classes and Normalize found through the Subset
    assert b.classes == tuple(ds.classes) and b.stored == "input" and b.display == "denormalized"
    assert b.mean == (0.5,) and b.std == (0.25,)
    x = b.test_x[:3]
    assert torch.equal(b.normalize(x), x)  # already model inputs
    shown = b.display_images(x)
    assert float(shown.min()) >= 0 and float(shown.max()) <= 1
    raw = torch.stack([v2.functional.pil_to_tensor(ds.images[i]) for i in range(20)])
    pixels = (x * 0.25 + 0.5) * 255
    assert any(torch.allclose(pixels[0], r.float(), atol=1e-3) for r in raw)


def test_tensors_without_normalization_are_min_max_scaled_and_named_by_label():
    x = torch.randn(50, 3, 4, 4) * 3 + 1
    y = torch.arange(50) % 4
    b = as_bundle((x, y), val_fraction=0.1)
    assert b.classes == ("0", "1", "2", "3") and b.display == "min-max"
    shown = b.display_images(b.test_x[:5])
    flat = shown.reshape(5, -1)
    torch.testing.assert_close(flat.min(1).values, torch.zeros(5))
    torch.testing.assert_close(flat.max(1).values, torch.ones(5))
    ds = as_bundle(TensorDataset(x, y), classes=["a", "b", "c", "d"], denormalize=lambda t: t.sigmoid())
    assert ds.display == "denormalized" and ds.classes[0] == "a"
    torch.testing.assert_close(ds.display_images(ds.test_x[:2]), ds.test_x[:2].sigmoid())


def test_dict_of_splits_and_explicit_val():
    x, y = torch.randint(0, 256, (40, 1, 6, 6), dtype=torch.uint8), torch.arange(40) % 2
    b = as_bundle({"test": (x[:30], y[:30]), "val": (x[30:], y[30:])})
    assert (len(b.test_x), len(b.val_x), len(b.train_x)) == (30, 10, 0)
    assert torch.equal(b.val_x, x[30:])


def test_image_folder_path(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(np.full((10, 10, 3), 40 * i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    b = as_bundle(f"imagefolder:{tmp_path}", resize=8)
    assert b.classes == ("cat", "dog") and b.input_shape == (3, 8, 8)


def test_bad_data_gets_clear_errors():
    x = torch.rand(10, 1, 8, 8)
    with pytest.raises(ValueError, match=r"label\(s\) \[3\] outside the 3 classes"):
        as_bundle((x, torch.tensor([0, 1, 2, 3, 0, 1, 2, 0, 1, 2])), classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="10 images but y has 9 labels"):
        as_bundle((x, torch.zeros(9, dtype=torch.long)))
    mixed = [(torch.rand(1, 8, 8), 0), (torch.rand(1, 9, 9), 1)]
    with pytest.raises(ValueError, match=r"image 1 has shape \(1, 9, 9\).*resize"):
        as_bundle(mixed)
    assert as_bundle(mixed, resize=8).input_shape == (1, 8, 8)  # the documented resize
    with pytest.raises(TypeError, match="cannot read images from a int"):
        as_bundle(3)
    with pytest.raises(TypeError, match=r"\(image, label\) pairs"):
        as_bundle([torch.rand(1, 8, 8)])


def test_session_refuses_mismatched_data_and_leaves_the_model_unchanged(tiny_model, fashion_small):
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    x, y = fashion_small.normalize(fashion_small.test_x[:40]), fashion_small.test_y[:40]
    with pytest.raises(ValueError, match=r"cannot take the data's images of shape \(3, 28, 28\)"):
        EditSession(tiny_model, (x.repeat(1, 3, 1, 1), y), device="cpu")
    with pytest.raises(ValueError, match="outside the 10 classes"):
        EditSession(tiny_model, (x, y + 3), classes=fashion_small.classes, device="cpu")
    with pytest.raises(ValueError, match="10 outputs but the data has 4 classes"):
        EditSession(tiny_model, (x, y % 4), classes=["a", "b", "c", "d"], device="cpu")
    s = EditSession(tiny_model, (x, y), device="cpu", limit=20)
    assert s.bundle is not None and s.bundle.classes == tuple(str(i) for i in range(10))  # named after outputs
    with pytest.raises(ValueError, match=r"this session's images are \(1, 28, 28\)"):
        s.edit(torch.zeros(1, 32, 32), 3)
    with pytest.raises(ValueError, match="out of range"):
        s.edit(s.image(0), 12)
    assert not s.history and all(torch.equal(v, state[k]) for k, v in tiny_model.state_dict().items())


def test_workbench_from_model_in_one_call(tiny_model, fashion_small):
    pytest.importorskip("ipywidgets")
    from workbench.widgets import Workbench

    x, y = fashion_small.test_x[:120], fashion_small.test_y[:120]  # uint8 pixels + the data's mean/std
    wb = Workbench.from_model(tiny_model, (x, y), classes=fashion_small.classes, probe_views=0,
                              session_kw={"mean": fashion_small.mean, "std": fashion_small.std})
    s = wb.session
    assert s.checkpoint is None and s.bundle is not None and s.bundle.display == "pixels"
    assert len(s.evaluator) == len(s.bundle.test_y) == 96 and s.evaluator.classes == fashion_small.classes
    assert wb.name == "ResNet" and "chain3" in wb.panel.group.options
    i = int(s.evaluator.base_preds.ne(s.evaluator.labels).nonzero()[0])
    wb.controller.select(i)
    wb.controller.set_target(int(s.evaluator.labels[i]))
    res = wb.controller.edit()  # the Workbench edits one session: one EditResult
    assert res.success and len(s.history) == 1


def test_workbench_shows_float_inputs_denormalized_and_says_so(tiny_model, fashion_small):
    pytest.importorskip("ipywidgets")
    from workbench.widgets import Workbench

    x = fashion_small.normalize(fashion_small.test_x[:60])  # float model inputs
    wb = Workbench.from_model(tiny_model, (x, fashion_small.test_y[:60]), probe_views=0)
    assert wb.session.bundle.display == "min-max" and "min-max scaled" in wb.header.value
    shown = wb.images  # the rewritten workbench keeps the display images itself
    assert float(shown.min()) >= 0 and float(shown.max()) <= 1  # not raw normalised values
    wb2 = Workbench.from_model(tiny_model, (x, fashion_small.test_y[:60]), probe_views=0,
                               session_kw={"mean": fashion_small.mean, "std": fashion_small.std})
    assert "denormalized" in wb2.header.value
    idx = wb2.session.evaluator.labels.shape[0]
    pixels = wb2.images * 255  # back to the original pixels (the held-out split aside)
    assert pixels.shape[0] == idx and float((pixels - pixels.round()).abs().max()) < 1e-2

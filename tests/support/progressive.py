"""Shared by the tests of progressive open and background passes: a tiny CNN whose predictions
spread over 3 classes, a tiny ImageFolder of random PNGs, a deferred evaluator, and a gate that
holds a background pass at a known batch."""
from __future__ import annotations

import threading
from pathlib import Path

import torch
import torch.nn as nn
from PIL import Image

from workbench.data import as_bundle
from workbench.evaluation import Evaluator

N, BS = 96, 16
NORM = dict(mean=(.5,) * 3, std=(.25,) * 3)


def small_cnn() -> nn.Module:
    """A random CNN whose predictions on random images spread over the 3 classes (its head is
    scaled and centred on a fixed batch), so that every chunk holds mistakes."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()
    x = torch.randn(64, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        net[6].weight.mul_(60)
        net[6].bias.sub_(net(x).mean(0))
    return net


def write_folder(root: Path, n: int = N, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random PNGs under ``root/<label>/``; returns ``(x, y)`` in the ImageFolder's order."""
    x = torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    y = torch.arange(n) % 3
    order = []
    for i in range(n):
        (root / str(int(y[i]))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(root / str(int(y[i])) / f"{i:04d}.png")
        order.append((int(y[i]), i))
    idx = torch.tensor([i for _, i in sorted(order)])
    return x[idx], y[idx]


def deferred(model: nn.Module, data, **kw) -> Evaluator:
    bundle = data if not isinstance(data, (str, Path)) else as_bundle(str(data), **NORM)
    return Evaluator(model, bundle, layers="0", device="cpu", batch_size=BS, workers=0, defer=True, **kw)


class Gate:
    """A progress callback that holds the scoring thread after batch ``at`` until released."""

    def __init__(self, at: int) -> None:
        self.at, self.seen = at, []
        self.reached, self.release = threading.Event(), threading.Event()

    def __call__(self, scored: int, total: int) -> None:
        self.seen.append(scored)
        if scored == self.at and threading.current_thread() is not threading.main_thread():
            self.reached.set()
            assert self.release.wait(30)


def count_images(module: nn.Module) -> list[int]:
    """Images that ``module`` sees, summed over its calls."""
    seen = [0]
    module.register_forward_hook(lambda _m, args, _out: seen.__setitem__(0, seen[0] + len(args[0])))
    return seen


def held_session(tmp_path: Path):
    """A session on a written folder whose background scoring is held after two batches
    (``gate.release.set()`` lets it finish); returns ``(session, gate)``."""
    from workbench.session import EditSession

    root = tmp_path / "data"
    write_folder(root)
    model = small_cnn()
    gate = Gate(at=2 * BS)
    s = EditSession(model, str(root), device="cpu", evaluator=deferred(model, root), first_chunk=BS, progress=gate,
                    **NORM)
    assert gate.reached.wait(30)
    return s, gate

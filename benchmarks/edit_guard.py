"""How large is a normal edit? The ratio the edit guard bounds, measured on the shipped models.

For each setting: N random-label edits of test images (seeded), and the distribution of
``||after - before|| / ||before||`` over the edited group (``workbench.editing.guard``), with the
number the guard flags. Then a few wrecking edits (huge learning rates) for contrast.

Usage: python benchmarks/edit_guard.py [--edits 100] [--models fashion-baseline,fashion-editable]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.data import load_fashion_mnist  # noqa: E402
from workbench.editing import MAX_RELATIVE_CHANGE, edit  # noqa: E402
from workbench.training import load_model  # noqa: E402

SETTINGS = [("rmsprop", 1e-3, "chain3"), ("rmsprop", 4e-3, "chain3"), ("gd", 3.16e-3, "chain3"),
            ("sign", 1e-3, "chain3"), ("scaled_gd", 0.1, "chain3"), ("adam", 1e-3, "chain3"),
            ("momentum", 1e-3, "chain3"), ("gd", 5.62e-4, "all"), ("rmsprop", 1e-3, "all"),
            ("rmsprop", 2e-2, "chain3"), ("rmsprop", 1e-2, "all")]
WRECKS = [("rmsprop", 1e6, "chain3"), ("gd", 1.0, "chain3"), ("gd", 1e6, "chain3")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=100)
    ap.add_argument("--models", default="fashion-baseline,fashion-editable")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    bundle = load_fashion_mnist()
    x = bundle.normalize(bundle.test_x[:2000])
    print(f"guard bound MAX_RELATIVE_CHANGE = {MAX_RELATIVE_CHANGE}; {args.edits} random-label edits per row")
    print("| model | editor | lr | layers | median | p99 | max | flagged | success |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        model, _ = load_model(root / "assets" / "models" / name)
        with torch.no_grad():
            pred = model(x).argmax(1)
        for method, lr, layers in SETTINGS + WRECKS:
            g = torch.Generator().manual_seed(1)
            idx = torch.randperm(len(x), generator=g)[:args.edits if (method, lr, layers) in SETTINGS else 10]
            ratios, flagged, ok = [], 0, 0
            for i in idx.tolist():
                target = int((pred[i] + 1 + torch.randint(0, 9, (1,), generator=g)) % 10)
                r = edit(model, x[i], target, method=method, lr=lr, layers=layers)
                ratios.append(r.relative_change)
                flagged += r.wrecked
                ok += r.success
            ratios.sort()
            n = len(ratios)
            print(f"| {name} | {method} | {lr:g} | {layers} | {ratios[n // 2]:.3g} | "
                  f"{ratios[max(0, int(0.99 * n) - 1)]:.3g} | {ratios[-1]:.3g} | {flagged}/{n} | {ok}/{n} |", flush=True)
    print("(a non-finite edit is abandoned and reset to the base weights: ratio 0, success False)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of one batch edit against its batch size (the bound ``MAX_EDIT_BATCH`` is set from it).

Runs one edit of N test images (target: each image's prediction + 1) on the whole shipped
``fashion-baseline`` model (``layers="all"``, k=2) in a fresh process per N, and prints the rise
of the peak resident memory over the loaded model and data.

Usage: python benchmarks/edit_batch_memory.py [--sizes 256,1024]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(n: int) -> None:
    import torch

    import workbench.editing.inputs as inputs
    from workbench.data import load_fashion_mnist
    from workbench.editing import edit
    from workbench.training import load_model

    inputs.MAX_EDIT_BATCH = n  # measure above the bound too
    model, _ = load_model(ROOT / "assets/models/fashion-baseline")
    bundle = load_fashion_mnist()
    x = bundle.normalize(bundle.test_x[:n])
    with torch.no_grad():
        y = ((model(x[:256]).argmax(1) + 1) % 10).repeat(n // 256 + 1)[:n]
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    edit(model, x, y.tolist(), layers="all", max_steps=2)
    r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{n:>6} images: peak +{(r1 - r0) / 1024:.0f} MiB, {time.perf_counter() - t0:.1f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,1024")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        one(a.one)
        return 0
    for n in (int(v) for v in a.sizes.split(",")):
        subprocess.run([sys.executable, __file__, "--one", str(n)], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

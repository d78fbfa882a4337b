"""Data on disk and caches past the memory budget, side by side in one run.

Writes (once) an ImageFolder of ``--n`` Fashion-MNIST test images upsampled to
3 x ``--size`` x ``--size`` PNGs, then, for a seeded random ``--model`` (torchvision), times:

* open: the Evaluator scoring the folder held in memory (``stream=False``) vs streamed from
  disk (DataLoader workers), next to a plain ``model(x)`` loop over the same images (the bound);
* reopen: the same Evaluator with base scores read from the score cache;
* score: one ``logits_for`` of perturbed ``--layers`` weights (after a first one that fills the
  cache) with the cut's cache in memory, in a memory-mapped file, and recomputed per batch.

Each row runs in its own process, so its peak RSS (``ru_maxrss``) is its own. Every row
checks that its logits equal the in-memory row's (``torch.equal``).

    python benchmarks/streaming.py                      # 1000 images, 64 px, resnet18, layer4
    python benchmarks/streaming.py --n 2000 --size 96 --layers layer3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = ("plain", "memory", "streamed", "reopen", "cache:memory", "cache:mmap", "cache:recompute")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="images")
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--model", default="resnet18", help="a torchvision classification model name")
    p.add_argument("--layers", default="layer4", help="the edited group (its cut is cached)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "wb-streaming-bench"),
                   help="where the ImageFolder and the caches are written")
    p.add_argument("--row", default=None, help=argparse.SUPPRESS)  # one row, in a child process
    return p


def write_folder(root: Path, n: int, size: int) -> Path:
    import torch
    from PIL import Image
    from torchvision.transforms.v2.functional import resize

    from workbench.data import load_fashion_mnist

    folder = root / f"fashion-{n}-{size}"
    if (folder / "done").exists():
        return folder
    b = load_fashion_mnist()
    x = resize(b.test_x[:n], [size, size], antialias=True).expand(-1, 3, -1, -1)
    for i, (img, label) in enumerate(zip(x, b.test_y[:n].tolist())):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).contiguous().numpy()).save(folder / str(label) / f"{i:05d}.png")
    (folder / "done").write_text("")
    return folder


def run_row(args: argparse.Namespace, folder: Path) -> dict:
    import resource

    import torch
    import torchvision

    from workbench.data import as_bundle
    from workbench.evaluation import Evaluator
    from workbench.evaluation.budget import default_budget

    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(num_classes=10).eval()
    norm = dict(mean=(0.286,) * 3, std=(0.353,) * 3)
    row, out = args.row, {}
    kw = dict(layers=args.layers, device="cpu", batch_size=args.batch_size)
    cache = Path(args.root) / "scores"
    t0 = time.perf_counter()
    if row == "plain":
        b = as_bundle(str(folder), stream=False, **norm)
        x = b.test_x
        out["read"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.inference_mode():
            logits = torch.cat([model(b.normalize(x[i:i + args.batch_size])) for i in range(0, len(x), args.batch_size)])
        out["seconds"] = time.perf_counter() - t0
    else:
        b = as_bundle(str(folder), stream=False if row == "memory" else None, **norm)
        if row.startswith("cache:"):
            where = row.split(":")[1]
            budget = default_budget(torch.device("cpu")) if where == "memory" else 2 ** 20
            ev = Evaluator(model, b, memory_budget=budget, spill="mmap" if where == "memory" else where,
                           resident_max=budget if where == "memory" else None, **kw)  # "memory": kept if it fits
            params = {k: v + 0.01 for k, v in model.named_parameters() if k.startswith(args.layers + ".")}
            ev.logits_for(params)  # fills the cache
            params = {k: v + 0.02 for k, v in params.items()}
            t0 = time.perf_counter()
            logits = ev.logits_for(params)
            out["info"] = next(iter(ev.cache_info().values()))
        else:
            ev = Evaluator(model, b, score_cache=cache if row in ("streamed", "reopen") else None, **kw)
            logits = ev.base_logits
            out["from cache"] = ev.scores_from_cache
        out["seconds"] = time.perf_counter() - t0
        out["cached MiB"] = ev.cached_bytes() / 2 ** 20
    torch.save(logits, Path(args.root) / f"logits-{row.replace(':', '-')}.pt")
    out["peak RSS MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    folder = write_folder(root, args.n, args.size)
    if args.row:
        print(json.dumps(run_row(args, folder)))
        return 0
    import shutil

    import torch

    shutil.rmtree(root / "scores", ignore_errors=True)
    env = dict(os.environ, WORKBENCH_CACHE=str(root / "cache"))
    print(f"{args.n} images, 3x{args.size}x{args.size} PNG, torchvision {args.model} (random), "
          f"cut {args.layers}, batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"{'row':<17}{'seconds':>9}{'peak RSS MiB':>14}{'cached MiB':>12}  note")
    results = {}
    for row in ROWS:
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--row", row]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode:
            print(f"{row}: failed\n{res.stderr[-2000:]}")
            return 1
        r = results[row] = json.loads(res.stdout.strip().splitlines()[-1])
        note = r.get("info", "") or ("scores read from the cache" if r.get("from cache") else "")
        note += f" (reading the folder into memory: {r['read']:.1f} s)" if "read" in r else ""
        print(f"{row:<17}{r['seconds']:>9.2f}{r['peak RSS MiB']:>14.0f}{r.get('cached MiB', 0):>12.1f}  {note}")
    base = torch.load(root / "logits-memory.pt")
    same = {row: torch.equal(torch.load(root / f"logits-{row.replace(':', '-')}.pt"), base)
            for row in ("streamed", "reopen")}
    edited = torch.load(root / "logits-cache-memory.pt")
    same |= {row: torch.equal(torch.load(root / f"logits-{row.replace(':', '-')}.pt"), edited)
             for row in ("cache:mmap", "cache:recompute")}
    print("logits equal to the in-memory row:", same)
    print(f"open streamed / plain loop: {results['streamed']['seconds'] / results['plain']['seconds']:.2f}x; "
          f"score mmap / recompute: {results['cache:mmap']['seconds'] / results['cache:recompute']['seconds']:.3f}x")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

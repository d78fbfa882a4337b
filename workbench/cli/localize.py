"""``python -m workbench localize``: where does a model's prediction for an image live?

Runs the critical-neuron search on images of a model folder's data set and prints one line per
image (``--json OUT`` also writes every result; ``--json -`` prints JSON instead).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ._common import add_device_arg, add_image_size_arg, add_trust_arg, device_from_args

NAME = "localize"
HELP = "where does a model's prediction for an image live? (critical-neuron search)"

def parse_indices(text: str) -> list[int]:
    """``"3,5,9"`` or ``"10:20"`` (a range) or a mix: ``"1,4:6"`` -> ``[1, 4, 5]``."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if ":" in part:
                a, b = part.split(":", 1)
                out += list(range(int(a), int(b)))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"--indices: {part!r} is not an index or a START:STOP range") from None
    if not out:
        raise ValueError("--indices is empty; give e.g. 3,5,9 or 0:10")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="model folder (model.safetensors + card.json)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--index", type=int, help="one image of the split")
    which.add_argument("--indices", help="several: 3,5,9 or 0:100 (a range) or a mix")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="the images' split")
    p.add_argument("--label", default="pred",
                   help="the label whose prediction is searched: pred (the model's, default), true, or a class")
    p.add_argument("--quick", action="store_true", help="the interactive setting: few repeats, capped steps")
    p.add_argument("--repeats", type=int, default=None, help="searches per image, averaged (paper: 30)")
    p.add_argument("--max-neurons", type=int, default=None, help="stop a search after this many neurons")
    p.add_argument("--batch-size", type=int, default=None, help="random training batch per search step")
    p.add_argument("--layers", default=None, help="module paths to search, e.g. chain1,chain2 (default: all but "
                   "the classifier)")
    p.add_argument("--seed", type=int, default=0)
    add_device_arg(p)
    p.add_argument("--json", default=None, metavar="OUT.json", help="write every result as JSON ('-': stdout)")
    add_image_size_arg(p)
    add_trust_arg(p)


def _line(i: int, r: Any) -> str:
    cost = f"{r.accuracy_cost * 100:.1f} points" if r.accuracy_cost is not None else "n/a"
    layers = ", ".join(f"{k} {v:g}" for k, v in sorted(r.layer_counts.items(), key=lambda kv: -kv[1]) if v)[:120]
    return (f"#{i}: label {r.label} (model said {r.initial_prediction})  critical neurons {r.count:g} "
            f"(per repeat {list(r.counts)}, flipped {r.flip_rate:.0%} -> {r.flipped_to})  accuracy cost {cost}  "
            f"top layer {r.top_layer}  [{layers}]  {r.seconds:.2f}s")


def _trained_labels(folder: Path, bundle: Any) -> tuple[Any, Any]:
    """``(labels trained on, noisy mask)`` of a run with recorded label noise, else ``(None, None)``."""
    try:
        from ..data.noise import LabelNoise
    except ImportError:
        return None, None
    try:
        noise = LabelNoise.load(folder)
    except FileNotFoundError:
        return None, None
    return noise.apply(bundle.train_y[:noise.num_examples]), noise.mask()


def run(args: argparse.Namespace) -> int:
    from ..data import load_for_card
    from ..data.datasets import card_size
    from ..session.opening import check_fits
    from ..training import load_model
    from ..localization.examples import localize_example

    device = device_from_args(args)
    path = Path(args.checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; pass a model folder holding "
                                "model.safetensors and card.json")
    model, card = load_model(path, device=device, trust_code=args.trust_code)
    bundle = load_for_card(dict(card), args.image_size)
    note = check_fits(model, bundle, card_size(dict(card)), "its card's input_shape", args.image_size)
    if note:
        print(note, file=sys.stderr)
    trained, noisy = _trained_labels(path, bundle)
    indices = [args.index] if args.index is not None else parse_indices(args.indices)
    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None
    settings = {k: v for k, v in (("repeats", args.repeats), ("max_neurons", args.max_neurons),
                                   ("batch_size", args.batch_size)) if v is not None}
    n = len(trained) if trained is not None and args.split == "train" else len(bundle.split(args.split)[1])
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise ValueError(f"index {bad[0]} out of range: the {args.split} split has {n} images (0..{n - 1})")
    results = []
    to_stdout = args.json == "-"
    t0 = time.perf_counter()
    for i in indices:
        r = localize_example(model, bundle, i, split=args.split, label=args.label, quick=args.quick,
                             seed=args.seed, layers=layers, trained_labels=trained, **settings)
        flag = bool(noisy[i]) if noisy is not None and args.split == "train" else None
        results.append({"index": i, "split": args.split, "noisy_label": flag, **r.to_dict()})
        if not to_stdout:
            print(_line(i, r) + ("" if flag is None else f"  noisy label: {flag}"), flush=True)
    doc = {"checkpoint": str(path), "split": args.split, "label": args.label, "quick": args.quick,
           "seed": args.seed, "seconds": time.perf_counter() - t0, "results": results}
    if to_stdout:
        json.dump(doc, sys.stdout, indent=1)
        print()
    elif args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0

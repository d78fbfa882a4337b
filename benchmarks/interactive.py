"""Time the interactive path: one click on Edit until every panel of the workbench is updated.

For each of N clicks (different misclassified test images, target = the true label, each
edit made from the base weights) it presses the Edit button of a real ``Workbench`` (no
browser: the kernel-side work a click triggers) and reports the time from the click to
each step of ``Controller.edit`` (cumulative, as the panels receive them):

* outcome:     the edit and the outcome card (success, new prediction, steps),
* estimate:    the drawdown estimate from a stratified sample, with its 95% interval,
* attribution: the AttributionView's maps (``--method``, default Saliency) + PNG,
* reports:     the exact reports on the whole split, metrics, error browser, history,
* probe:       the generalization probe (augmented views of the edited image) = all panels.

    python benchmarks/interactive.py                       # default model, 5 clicks
    python benchmarks/interactive.py --clicks 9 --limit 2000 --method "Integrated Gradients"
    python benchmarks/interactive.py --model torchvision:resnet18 --layers layer3 --limit 2000

With ``--model`` the workbench opens (``Workbench.from_model``) on that model, untrained and
seeded, and on generated images of ``--image-shape`` (scored through the fx graph cut).

The last line is ``total: <seconds>s (median of N clicks)``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")

PHASES = ("outcome", "estimate", "attribution", "reports", "probe")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None,
                   help="model folder (default: assets/models/fashion-editable, else fashion-baseline)")
    p.add_argument("--clicks", type=int, default=5, help="number of timed clicks (different images)")
    p.add_argument("--limit", type=int, default=None, help="score only the first LIMIT test images")
    p.add_argument("--method", default="Saliency", help="attribution method of the AttributionView")
    p.add_argument("--ig-steps", type=int, default=16, help="steps when --method is Integrated Gradients")
    p.add_argument("--probe-views", type=int, default=16, help="augmented views per kind for the probe")
    p.add_argument("--device", default=None, help="default: CUDA when present, else CPU")
    p.add_argument("--model", default=None, help="torchvision:NAME[:k=v,...] or pkg.module:factory (untrained), "
                   "on generated images, instead of --checkpoint")
    p.add_argument("--image-shape", default="3,32,32", help="C,H,W of the generated images (with --model)")
    p.add_argument("--layers", default="layer3", help="the edited group (with --model)")
    p.add_argument("--lr", type=float, default=1e-3, help="RMSProp editor lr (with --model; no calibration)")
    return p


def open_model(args: argparse.Namespace):
    """``Workbench.from_model`` on ``--model`` and generated images (test split = ``--limit`` or 2000)."""
    import torch

    from workbench.data import DataBundle
    from workbench.editing import EditorConfig
    from workbench.models.spec import ModelSpec
    from workbench.widgets import Workbench

    shape = tuple(int(v) for v in args.image_shape.split(","))
    g = torch.Generator().manual_seed(0)
    n = args.limit or 2000

    def part(k):
        return torch.randint(0, 256, (k, *shape), generator=g, dtype=torch.uint8), torch.randint(0, 10, (k,), generator=g)
    bundle = DataBundle(f"generated {shape}", tuple(str(i) for i in range(10)), (0.5,) * shape[0], (0.25,) * shape[0],
                        *part(0), *part(256), *part(n), source="generated")
    torch.manual_seed(0)
    model = ModelSpec.parse(args.model).with_defaults(num_classes=10).build()
    cfg = EditorConfig("rmsprop", args.lr, 0.5, layers=args.layers)
    return Workbench.from_model(model, bundle, device=args.device, name=args.model, attribution_method=args.method,
                                probe_views=args.probe_views, session_kw={"config": cfg}), args.model


def one_click(wb, index: int) -> dict[str, float] | None:
    """Select ``index``, target its true label, press Edit; seconds from the click, or None if it failed."""
    wb.controller.reset()
    wb.controller.select(index)
    wb.controller.set_target(int(wb.session.labels[index]))
    t0 = time.perf_counter()
    wb.panel.buttons["edit"].click()
    total = time.perf_counter() - t0
    if wb.messages.level == "error":
        raise RuntimeError(wb.messages.text)
    if not wb.session.history:
        return None
    out = {p: wb.controller.timings[p] for p in PHASES}
    out["total"] = total
    out["steps"] = float(wb.session.history[-1].result.steps)
    return out


def main(args: argparse.Namespace) -> None:
    import torch

    from workbench.session.opening import open_session, resolve_checkpoint
    from workbench.widgets import Workbench

    t0 = time.perf_counter()
    if args.model:
        wb, name = open_model(args)
    else:
        path, note = resolve_checkpoint(args.checkpoint)
        if note:
            print(note)
        name = path.name
        session, _ = open_session(path, limit=args.limit, device=args.device)
        wb = Workbench(session, attribution_method=args.method, probe_views=args.probe_views)
    wb.attribution.n_steps.value = args.ig_steps
    s = wb.session
    print(f"model {name}: {len(s.labels)} test images, base error {s.base_error:.2%}, "
          f"device {wb.session.device}, torch threads {torch.get_num_threads()}, "
          f"editor {wb.panel.config.resolved().method} lr={wb.panel.config.resolved().lr:g} "
          f"group {wb.panel.config.layers}; {wb.session.evaluator.fast_path}; opened in {time.perf_counter() - t0:.1f} s")
    errors = sorted(s.current_errors(), key=lambda m: m.index)
    step = max(1, len(errors) // (args.clicks + 1))
    candidates = [e.index for e in errors[::step]]
    one_click(wb, candidates[0])  # warm-up (first calls are slower), not timed
    rows: list[dict[str, float]] = []
    failed = 0
    print(f"{'image':>6} {'steps':>5} " + " ".join(f"{p:>11}" for p in PHASES) + f" {'total':>8}")
    for index in candidates[1:]:
        if len(rows) == args.clicks:
            break
        r = one_click(wb, index)
        if r is None:
            failed += 1
            continue
        rows.append(r)
        print(f"{index:>6} {int(r['steps']):>5} " + " ".join(f"{r[p]:>10.3f}s" for p in PHASES)
              + f" {r['total']:>7.3f}s")
    if not rows:
        sys.exit("every edit failed: nothing to time (try another --checkpoint or editor defaults)")
    med = {k: statistics.median(r[k] for r in rows) for k in (*PHASES, "total")}
    print(f"{'median':>12} " + " ".join(f"{med[p]:>10.3f}s" for p in PHASES) + f" {med['total']:>7.3f}s")
    print("seconds from the click (cumulative); " f"failed edits skipped: {failed}; attribution = {args.method}"
          + (f" ({args.ig_steps} steps)" if args.method == "Integrated Gradients" else "") + ", 4 maps + PNG")
    print(f"total: {med['total']:.3f}s (median of {len(rows)} clicks)")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

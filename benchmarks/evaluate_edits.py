"""Benchmark: N independent edits scored on the whole test set, naive path vs fast Evaluator.

Both paths make the same N random-label edits (the paper's protocol) of the same model:

* naive: ``copy.deepcopy`` the model, ``edit()``, ``apply()``, plain full forward of the test
  set (``predict_logits``, batches of ``--batch-size``) for every edit;
* fast: :class:`workbench.evaluation.Evaluator` (prefix cache built once, included in its
  time), then ``evaluate_edits`` (the same ``edit()``, then only the suffix is rerun).

It checks that both give identical per-edit predictions and metrics, and prints the
interactive-path figures (one edit; full-test-set drawdown of one edit) and, side by side
in the same run, the cost of one pass of the suffix alone (the bound for exact evaluation)
and of one full forward. The last line is ``speedup: <ratio>x, identical: yes|no``.

With ``--model torchvision:NAME[:k=v,...]`` the model is a torchvision classifier (untrained,
seeded) on generated images of ``--image-shape`` (no data set needed: the timing and the
naive/fast agreement do not depend on the weights), scored through the fx graph cut.

    OMP_NUM_THREADS=2 python benchmarks/evaluate_edits.py --edits 50
    OMP_NUM_THREADS=2 python benchmarks/evaluate_edits.py --model torchvision:resnet18 --layers layer3 \
        --image-shape 3,32,32 --test-size 10000 --edits 20 --lr 1e-3
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from workbench.data import DataBundle
from workbench.editing import EditorConfig, edit
from workbench.evaluation import EvalSummary, Evaluator, random_label_edits
from workbench.data import load_for_card as bundle_for_card
from workbench.models import adapt, predict_logits
from workbench.models.spec import ModelSpec
from workbench.training import load_model as load_checkpoint

DEFAULT_CHECKPOINT = Path("assets/models/fashion-baseline")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = str(DEFAULT_CHECKPOINT) if (DEFAULT_CHECKPOINT / "model.safetensors").exists() else None
    p.add_argument("--checkpoint", default=default, required=default is None, help="model folder")
    p.add_argument("--edits", type=int, default=50, help="N edits (both paths)")
    p.add_argument("--editor", default="rmsprop")
    p.add_argument("--layers", default="chain3")
    p.add_argument("--lr", type=float, default=None, help="editor lr (default: the tuned default)")
    p.add_argument("--beta", type=float, default=None)
    p.add_argument("--max-steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256,
                   help="examples per forward pass, both paths (256: the fastest for both on this CPU)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--repeats", type=int, default=20, help="edits timed for the interactive figures")
    p.add_argument("--chunk", type=int, default=5, help="edits per alternation between the two paths")
    p.add_argument("--model", default=None,
                   help="torchvision:NAME[:k=v,...] or pkg.module:factory: that model (untrained) on generated "
                        "images instead of --checkpoint")
    p.add_argument("--image-shape", default="3,32,32", help="C,H,W of the generated images (with --model)")
    p.add_argument("--test-size", type=int, default=10000, help="generated test images (with --model)")
    return p


def build_model(spec: str, num_classes: int) -> torch.nn.Module:
    """``--model`` (``torchvision:resnet18[:k=v,...]`` or ``pkg.module:factory``) -> the model,
    untrained and seeded, with ``num_classes`` logits where the builder takes it."""
    torch.manual_seed(0)
    return ModelSpec.parse(spec).with_defaults(num_classes=num_classes).build().eval()


def generated_bundle(shape: tuple[int, int, int], n_test: int, classes: int = 10, seed: int = 0) -> DataBundle:
    """Seeded uint8 images and labels (train/val 256 each, test ``n_test``)."""
    g = torch.Generator().manual_seed(seed)

    def part(n):
        return torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8), torch.randint(0, classes, (n,), generator=g)
    c = shape[0]
    return DataBundle(f"generated {shape}", tuple(str(i) for i in range(classes)), (0.5,) * c, (0.25,) * c,
                      *part(256), *part(256), *part(n_test), source="generated")


def bounds(ev, results, repeats):
    """Median seconds of: Evaluator.score, one raw suffix pass (split.suffix over precomputed
    carries, no cache bookkeeping), and one plain full forward, for the same edited weights."""
    res = next((r for r in results if r.steps > 0), results[0])
    names = list(res.after)
    split = adapt(ev.model).split(names)
    n, b = len(ev), ev.batch_size
    with torch.inference_mode():
        carries = [split.prefix(ev.images(list(range(i, min(i + b, n))))) for i in range(0, n, b)]
    params = {k: v.to(ev.device) for k, v in res.after.items()}
    score_s, suffix_s, full_s = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ev.score({k: v.clone() for k, v in res.after.items()})  # fresh tensors: no memo
        score_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.inference_mode():
            torch.cat([split.suffix(c, params) for c in carries])
        suffix_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.inference_mode():
            torch.cat([torch.func.functional_call(ev.model, params, (ev.images(list(range(i, min(i + b, n)))),))
                       for i in range(0, n, b)])
        full_s.append(time.perf_counter() - t0)
    return statistics.median(score_s), statistics.median(suffix_s), statistics.median(full_s)


def naive_setup(model, bundle, batch_size, device):
    """The naive path's one-off work: base logits by a plain full forward. Returns base error."""
    base = predict_logits(model, bundle.test_x, normalize=bundle.normalize, batch_size=batch_size, device=device)
    return float((base.argmax(1) != bundle.test_y).float().mean())


def naive_edits(model, bundle, x, y, cfg, batch_size, device):
    """Per edit: deepcopy, edit, apply, plain full forward. Returns [(EditResult, logits (N, C))]."""
    rows = []
    for i in range(len(x)):
        m = copy.deepcopy(model)
        res = edit(m, x[i], int(y[i]), cfg)
        res.apply(m)
        logits = predict_logits(m, bundle.test_x, normalize=bundle.normalize, batch_size=batch_size, device=device)
        rows.append((res, logits))
    return rows


def fast_edits(ev, x, y, cfg):
    """``Evaluator.evaluate_edits``. Returns (summary, results, preds (N,) per edit)."""
    results, preds = [], []
    summary = ev.evaluate_edits(x, y, cfg, protocol="random", progress=False,
                                callback=lambda i, res, p: (results.append(res), preds.append(p)))
    return summary, results, preds


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def naive_metrics(rows, labels, base_error, k):
    errs = [float((lg.argmax(1) != labels).float().mean()) - base_error for _, lg in rows]
    n = len(rows)
    return {"success_rate": sum(r.success for r, _ in rows) / n,
            "mean_steps": sum(r.steps if r.success else k for r, _ in rows) / n,
            "drawdown_abs": sum(map(abs, errs)) / n, "drawdown_signed": sum(errs) / n}


def interactive(model, ev, x, y, cfg, repeats):
    """Median wall times: one edit (ms) and scoring it on the whole split (s)."""
    edit(model, x[0], int(y[0]), cfg)  # warm-up
    edit_ms, score_s = [], []
    for i in range(min(repeats, len(x))):
        t0 = time.perf_counter()
        res = edit(model, x[i], int(y[i]), cfg)
        edit_ms.append(1000 * (time.perf_counter() - t0))
        if res.steps == 0:
            continue  # nothing to score (the label was already predicted)
        t0 = time.perf_counter()
        ev.score(res)
        score_s.append(time.perf_counter() - t0)
    return statistics.median(edit_ms), statistics.median(score_s) if score_s else float("nan")


def main(args: argparse.Namespace) -> None:
    device = torch.device(args.device) if args.device else None
    if args.model:
        shape = tuple(int(v) for v in args.image_shape.split(","))
        bundle = generated_bundle(shape, args.test_size)  # type: ignore[arg-type]
        model, card = build_model(args.model, bundle.num_classes), {"epochs": 0, "test_error": None}
        args.checkpoint = f"{args.model} (untrained) on {bundle.name}"
    else:
        model, card = load_checkpoint(args.checkpoint)
        bundle = bundle_for_card(card)
    if device is not None:
        model = model.to(device)
    cfg = EditorConfig(args.editor, args.lr, args.beta, max_steps=args.max_steps, layers=args.layers).resolved()
    x, y = random_label_edits(bundle, args.edits, seed=args.seed)
    print(f"checkpoint {args.checkpoint} ({card.get('epochs')} epochs, test error {card.get('test_error')}); "
          f"{len(bundle.test_y)} test images; {args.edits} random-label edits; {cfg.method} lr={cfg.lr:g} "
          f"beta={cfg.beta} k={cfg.max_steps} layers={cfg.layers}; torch threads {torch.get_num_threads()}")

    # The two paths alternate in chunks of --chunk edits, so that a change in machine load
    # during the run hits both alike; each path's one-off setup is included in its time.
    t_fast, ev = timed(lambda: Evaluator(model, bundle, layers=cfg.layers, device=device,
                                         batch_size=args.batch_size))
    t_naive, base_error = timed(naive_setup, model, bundle, args.batch_size, device)
    outcomes, results, preds, rows = [], [], [], []
    for a in range(0, args.edits, args.chunk):
        dt, (s, r, p) = timed(fast_edits, ev, x[a:a + args.chunk], y[a:a + args.chunk], cfg)
        t_fast += dt
        outcomes += s.per_edit
        results += r
        preds += p
        dt, rw = timed(naive_edits, model, bundle, x[a:a + args.chunk], y[a:a + args.chunk], cfg,
                       args.batch_size, device)
        t_naive += dt
        rows += rw
    summary = EvalSummary.from_outcomes(outcomes, test_error=ev.base_error, editor=cfg.method, layers=str(cfg.layers),
                                        protocol="random", seconds=t_fast, lr=cfg.lr, beta=cfg.beta,
                                        max_steps=cfg.max_steps, split="test", examples=len(ev))
    print(f"fast  (Evaluator):               {t_fast:8.2f} s  ({1000 * t_fast / args.edits:7.1f} ms/edit; "
          f"prefix cache {ev.setup_seconds:.2f} s, {ev.cache_info()}; {ev.fast_path})")
    print(f"naive (deepcopy + full forward): {t_naive:8.2f} s  ({1000 * t_naive / args.edits:7.1f} ms/edit)")

    labels = bundle.test_y
    same_preds = all(torch.equal(lg.argmax(1), p) for (_, lg), p in zip(rows, preds))
    same_edits = all(r.success == f.success and r.steps == f.steps for (r, _), f in zip(rows, results))
    param_diff = max((float((r.after[n] - f.after[n].to(r.after[n].device)).abs().max())
                      for (r, _), f in zip(rows, results) for n in r.after), default=0.0)
    logit_diff = max(float((ev.logits_for(f) - lg).abs().max()) for (_, lg), f in list(zip(rows, results))[:5])
    ref = naive_metrics(rows, labels, base_error, cfg.max_steps)
    got = {k: getattr(summary, k) for k in ref}
    same_metrics = ref == got and base_error == ev.base_error
    print("| metric | naive | fast |\n|---|---|---|")
    print(f"| test error | {base_error:.6f} | {ev.base_error:.6f} |")
    for k in ref:
        print(f"| {k} | {ref[k]:.6f} | {got[k]:.6f} |")
    print(f"per-edit predictions equal: {same_preds}; edits equal (success, steps): {same_edits}; "
          f"max |param diff| {param_diff:.3g}; max |logit diff| (first 5 edits) {logit_diff:.3g}")

    ms_edit, s_score = interactive(model, ev, x, y, cfg, args.repeats)
    print(f"interactive: one edit {ms_edit:.1f} ms (goal <= 100 ms); full-test-set drawdown of one edit "
          f"{s_score:.3f} s (goal <= 1.5 s); medians over {min(args.repeats, args.edits)} edits")
    s_ev, s_suffix, s_full = bounds(ev, results, max(3, min(args.repeats, 5)))
    print(f"one scoring pass over {len(ev)} images: Evaluator.score {s_ev:.3f} s, suffix alone {s_suffix:.3f} s, "
          f"full forward {s_full:.3f} s; score / suffix = {s_ev / s_suffix:.2f}x (goal <= 1.2x), "
          f"full / score = {s_full / s_ev:.2f}x")
    identical = same_preds and same_edits and same_metrics
    print(f"speedup: {t_naive / t_fast:.1f}x, identical: {'yes' if identical else 'no'}")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

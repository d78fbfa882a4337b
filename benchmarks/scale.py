"""Real scale: ResNet-50 and ViT-B/16 at 224 px on 1,000 to 50,000 images streamed from an ImageFolder.

Writes once (into ``--data``, git-ignored ``.data/scale`` by default) an ImageFolder of
Fashion-MNIST images (test, then train) upsampled to ``--size`` px PNGs, read through the
project's loader; each N is a folder of hard links to the first N. Then, for each model
(torchvision, random init, 10 classes; the ViT's head, which torchvision starts at zero, gets a
random start) and N, it times as a new user meets them:

* open to the first page (with the progressive session: ``EditSession(..., background=True)``
  returns after the first chunk; else "n/a (blocking open)") and open to fully scored;
* reopen from the score cache (a fresh process);
* one click on a mistake (target = true label; the first of five whose edit applies): outcome
  (``edit_index(score=False)``), estimate (``estimate_last``), exact (``complete_reports``),
  cumulative from the click;
* the first edit on a new group (edit and exact reports);
* peak RSS (main process, and the largest DataLoader worker) and peak GPU memory;
* a plain ``model(x)`` loop over the same images, batches and precision (the bound), and the
  ratio scored / plain.

Each (model, N, precision) row runs in fresh processes (its peaks are its own), is saved as
JSON in ``--results`` when done, and is skipped on a rerun: a stopped run resumes. Each row
says where each cache went (memory, memory-mapped file, recompute: the memory budget, or on
the CPU ``resident_max``) and why, and the batch size and why.

    python benchmarks/scale.py                                  # CPU sizes (table under results/scale/)
    python benchmarks/scale.py --models resnet50 --n 64         # a smoke run
    python benchmarks/scale.py --device cuda --n 10000 50000 --precision exact fast
    python benchmarks/scale.py --budget-check --models resnet50 --n 2000 --budget 2GiB   # results/scale/budget.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LR = 1e-3  # the editor's step size (RMSProp), given so that no calibration runs
PAGE = 24  # mistakes on the first page
CLICK_TRIES = 5  # mistakes tried until an edit is applied (the timed click is the first applied one)
MEAN, STD = (0.286,) * 3, (0.353,) * 3
CPU_SIZES = {"resnet50": (1000, 2000, 5000, 10000), "vit_b_16": (1000, 2000)}
CUDA_SIZES = {"resnet50": (1000, 10000, 50000), "vit_b_16": (1000, 10000, 50000)}
NEW_GROUP = {"resnet50": "layer4.2", "vit_b_16": "encoder.layers.encoder_layer_11", "tiny": "4"}
COLUMNS = ("model", "N", "precision", "first page s", "fully scored s", "reopen s", "new group s",
           "outcome / estimate / exact s", "peak memory MiB", "peak GPU MiB", "plain s", "scored/plain")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet50", "vit_b_16"], choices=sorted(NEW_GROUP),
                   help="torchvision models (tiny: a 5-layer CNN, for tests)")
    p.add_argument("--n", nargs="+", type=int, default=None,
                   help="image counts (default: per model, 1,000-10,000 on the CPU, up to 50,000 on CUDA)")
    p.add_argument("--precision", nargs="+", default=["exact"], choices=["exact", "fast"])
    p.add_argument("--budget", default=None, help="the evaluator's memory budget, e.g. 4GiB (default: the machine's)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when present)")
    p.add_argument("--size", type=int, default=224, help="image side in pixels")
    p.add_argument("--results", default=str(ROOT / "results" / "scale"), help="where the rows and the table go")
    p.add_argument("--data", default=str(ROOT / ".data" / "scale"), help="where the PNGs and caches go")
    p.add_argument("--fashion", default=None, help="a folder with the Fashion-MNIST idx files (default: the loader's)")
    p.add_argument("--budget-check", action="store_true", help="instead: the evaluator within --budget on "
                   "random in-memory images of the first model (exact and fast; peak GPU memory against the budget)")
    p.add_argument("--step", default=None, help=argparse.SUPPRESS)  # one step of one row, in a child process
    p.add_argument("--row", default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    return p


# ------------------------------------------------------------------------------------------- the data
def write_pngs(data: Path, n: int, size: int, fashion: str | None) -> Path:
    """An ImageFolder of the first ``n`` images (hard links into one pool written once)."""
    folder, pool = data / f"fashion-{size}" / f"n{n}", data / f"fashion-{size}" / "pool"
    if (folder.parent / f"n{n}.done").exists():
        return folder
    count_file = pool / "count"
    have = int(count_file.read_text()) if count_file.exists() else 0
    if have < n:
        import numpy as np
        import torch
        from concurrent.futures import ProcessPoolExecutor
        from torchvision.transforms.v2.functional import resize

        from workbench.data import load_fashion_mnist

        b = load_fashion_mnist(fashion)
        x, y = torch.cat([b.test_x, b.train_x, b.val_x]), torch.cat([b.test_y, b.train_y, b.val_y])
        if n > len(x):
            raise SystemExit(f"Fashion-MNIST has {len(x)} images; ask for at most that many")
        chunks = []
        for i in range(have, n, 1000):
            j = min(n, i + 1000)
            big = resize(x[i:j], [size, size], antialias=True)[:, 0].numpy()
            chunks.append((str(pool), i, big, y[i:j].numpy().astype(np.int64)))
        with ProcessPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as ex:
            list(ex.map(_write_chunk, chunks))
        count_file.write_text(str(n))
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
    for path in sorted(pool.glob("*/*.png")):
        k = int(path.stem)
        dest = folder / path.parent.name / path.name
        if k < n and not dest.exists():
            try:
                os.link(path, dest)
            except OSError:
                import shutil

                shutil.copy2(path, dest)
    (folder.parent / f"n{n}.done").write_text("")
    return folder


def _write_chunk(args: tuple) -> None:
    from PIL import Image

    pool, start, images, labels = args
    for k, (img, label) in enumerate(zip(images, labels)):
        d = Path(pool) / str(int(label))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{start + k:05d}.png", compress_level=1)


# ----------------------------------------------------------------------------------- one row, one step
def build_model(name: str):
    import torch
    import torch.nn as nn
    import torchvision

    torch.manual_seed(0)
    if name == "tiny":
        return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                             nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(8, 10)).eval()
    model = getattr(torchvision.models, name)(num_classes=10)
    if name.startswith("vit"):  # torchvision starts a new ViT head at zero: every logit 0, no gradient past it
        model.heads.head.reset_parameters()
    return model.eval()


def progressive_api() -> bool:
    """Whether EditSession can answer before the whole set is scored (``background=True``)."""
    import inspect

    from workbench.session import EditSession

    return "background" in inspect.signature(EditSession.__init__).parameters


def open_session(args: argparse.Namespace, model, folder: Path, precision: str):
    """``(session, seconds to the first page of mistakes or None, seconds to fully scored)``.

    Exact: the session's own evaluator (``memory_budget``, its score cache). Fast: an Evaluator
    built here with ``precision="fast"`` and given to the session. With the progressive session
    both open in the background and the first page is ``current_errors(partial=True)``.
    """
    from workbench.data import as_bundle
    from workbench.editing import EditorConfig
    from workbench.evaluation import Evaluator
    from workbench.models import adapt
    from workbench.session import EditSession

    cfg = EditorConfig("rmsprop", LR, layers=adapt(model).default_group())
    progressive = progressive_api()
    t0 = time.perf_counter()
    bundle = as_bundle(str(folder), mean=MEAN, std=STD)
    kw: dict = {"background": True} if progressive else {}
    if precision == "exact" and progressive:
        kw |= {"memory_budget": args.budget, "score_cache": True}
    else:
        defer = {"defer": True} if progressive else {}
        kw["evaluator"] = Evaluator(model, bundle, layers=cfg.layers, device=args.device, memory_budget=args.budget,
                                    score_cache=True, precision=precision, **defer)
    s = EditSession(model, bundle, config=cfg, device=args.device, **kw)
    if not progressive:
        return s, None, time.perf_counter() - t0
    _ = s.current_errors(partial=True)[:PAGE]  # the first page of mistakes
    first = time.perf_counter() - t0
    s.wait_scored()
    return s, first, time.perf_counter() - t0


def step_session(args: argparse.Namespace, name: str, folder: Path, precision: str) -> dict:
    """Open, one click, the first edit on a new group."""
    import torch

    s, first, full = open_session(args, build_model(name), folder, precision)
    ev = s.evaluator
    out: dict = {"first page s": first, "fully scored s": full, "batch": ev.batch_size, "batch why": ev.batch_plan.why,
                 "caches": ev.cache_info(), "budget": repr(ev.budget), "budget held": dict(ev.budget.held),
                 "fast path": ev.fast_path, "precision": ev.precision.describe(), "base error": ev.base_error,
                 "progressive": first is not None}
    if ev.precision_check is not None:
        out["flips (sample)"] = str(ev.precision_check)
    torch.save(ev.base_preds, Path(args.data) / f"preds-{args.row}.pt")
    mistakes = s.current_errors()
    out["mistakes"] = len(mistakes)
    for k, m in enumerate(mistakes[:CLICK_TRIES]):  # the first click whose edit is applied
        t0 = time.perf_counter()
        s.edit_index(m.index, m.true, score=False)
        out["click attempts"] = k + 1
        if s.history:
            out["outcome s"] = time.perf_counter() - t0
            s.estimate_last()
            out["estimate s"] = time.perf_counter() - t0
            s.complete_reports()
            out["exact s"] = time.perf_counter() - t0
            s.undo()
            break
    if len(mistakes) > CLICK_TRIES:
        m = mistakes[CLICK_TRIES]
        calibrations = len(s.calibrations)
        t0 = time.perf_counter()
        s.edit_index(m.index, m.true, layers=NEW_GROUP[name], lr=LR)
        out["new group s"] = time.perf_counter() - t0
        out["new group applied"], out["new group calibrated"] = bool(s.history), len(s.calibrations) > calibrations
        out["caches after"] = ev.cache_info()
    return out


def step_reopen(args: argparse.Namespace, name: str, folder: Path, precision: str) -> dict:
    s, first, full = open_session(args, build_model(name), folder, precision)
    return {"reopen s": full, "reopen from cache": bool(getattr(s.evaluator, "scores_from_cache", False))}


def step_plain(args: argparse.Namespace, name: str, folder: Path, precision: str) -> dict:
    """The bound: a plain ``model(x)`` loop over the same streamed images, batches and precision."""
    import torch

    from workbench.batching import precision_for, prepare_input, prepare_model, scoring
    from workbench.data import as_bundle

    dev = torch.device(args.device)
    prec = precision_for(precision, dev)
    model = prepare_model(build_model(name).to(dev), prec)
    t0 = time.perf_counter()
    bundle = as_bundle(str(folder), mean=MEAN, std=STD)
    outs = []
    with scoring(prec):
        for xb in bundle.image_source("test").batches(None, args.batch, device=dev):
            outs.append(model(prepare_input(bundle.normalize(xb), prec)).float().argmax(1).cpu())
    seconds = time.perf_counter() - t0
    preds = torch.cat(outs)
    scored = torch.load(Path(args.data) / f"preds-{args.row}.pt")
    out = {"plain s": seconds, "plain vs scored: predictions that differ": int((preds != scored).sum())}
    exact = Path(args.data) / f"preds-{args.row.rsplit(':', 1)[0]}:exact.pt"
    if precision != "exact" and exact.exists():
        out["flips vs exact (all N)"] = int((torch.load(exact) != scored).sum())
    return out


def run_step(args: argparse.Namespace) -> dict:
    import resource

    import torch

    from workbench.batching import gpu_peak, reset_gpu_peak

    anon = AnonPeak()
    name, n, precision = args.row.split(":")
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device.startswith("cuda"):
        reset_gpu_peak(args.device)
    folder = Path(args.data) / f"fashion-{args.size}" / f"n{n}"
    step = {"session": step_session, "reopen": step_reopen, "plain": step_plain}[args.step]
    out = step(args, name, folder, precision)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        out["peak GPU MiB"] = gpu_peak(args.device) / 2 ** 20
    out["peak RSS MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["worker RSS MiB"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if anon.peak is not None:
        out["peak anon MiB"] = anon.stop() / 2 ** 20
    return out


class AnonPeak:
    """The peak of this process's anonymous memory (``RssAnon`` of /proc/self/status, read every
    50 ms in a thread): what the process itself holds. Peak RSS also counts the pages of a
    memory-mapped cache file that are resident, which the kernel can drop at any time."""

    def __init__(self) -> None:
        import threading

        self.peak: int | None = self._read()
        self._stop = threading.Event()
        if self.peak is not None:
            threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def _read() -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            now = self._read()
            if now is not None and self.peak is not None:
                self.peak = max(self.peak, now)

    def stop(self) -> int:
        self._stop.set()
        now = self._read()
        return max(self.peak or 0, now or 0)


# ------------------------------------------------------------------------------------ the budget check
def budget_check(args: argparse.Namespace) -> dict:
    """The evaluator within ``--budget`` on random in-memory images: exact and fast precision, the
    batch plan, where the caches went, peak GPU memory against the budget, exact scores against a
    plain loop and the fast mode's flips."""
    import copy

    import torch

    from workbench.batching import gpu_peak, reset_gpu_peak
    from workbench.data import as_bundle
    from workbench.evaluation import Evaluator
    from workbench.models import adapt, forward_logits

    dev = torch.device(args.device)
    name, n = args.models[0], (args.n or [2000])[0]
    model = build_model(name)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, args.size, args.size), generator=g, dtype=torch.uint8)
    bundle = as_bundle((x, torch.arange(n) % 10), val_fraction=0, mean=MEAN, std=STD)
    group = adapt(model).default_group()
    out: dict = {"model": name, "N": n, "device": str(dev), "budget given": args.budget, "group": group}
    exact_preds = None
    for precision in ("exact", "fast"):
        before = 0
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            reset_gpu_peak(dev)
            before = torch.cuda.memory_allocated(dev)
        t0 = time.perf_counter()
        ev = Evaluator(model, bundle, layers=group, device=dev, memory_budget=args.budget, precision=precision)
        r: dict = {"open s": time.perf_counter() - t0}
        params = {k: v + 0.01 for k, v in model.named_parameters() if k.startswith(group + ".")}
        t0 = time.perf_counter()
        ev.logits_for(params)
        r |= {"score s": time.perf_counter() - t0, "batch why": ev.batch_plan.why, "caches": ev.cache_info(),
              "budget": repr(ev.budget), "precision": ev.precision.describe()}
        if dev.type == "cuda":
            peak = gpu_peak(dev) - before
            r |= {"peak GPU MiB": peak / 2 ** 20, "within budget": peak <= ev.budget.total}
        if precision == "exact":
            exact_preds = ev.base_preds
            plain = copy.deepcopy(model).to(dev)
            with torch.inference_mode():
                preds = torch.cat([forward_logits(plain, ev.images(range(i, min(n, i + ev.batch_size)))).argmax(1).cpu()
                                   for i in range(0, n, ev.batch_size)])
            r["plain vs exact: predictions that differ"] = int((preds != exact_preds).sum())
            del plain
        else:
            r["flips (sample)"] = str(ev.precision_check)
            r["flips vs exact (all N)"] = int((ev.base_preds != exact_preds).sum())
        out[precision] = r
        ev.close()
        del ev
    return out


# ------------------------------------------------------------------------------------------- the table
def row_file(results: Path, key: str) -> Path:
    return results / f"{key.replace(':', '-')}.json"


def run_row(args: argparse.Namespace, argv: list[str], key: str, env: dict) -> dict:
    """The three steps of one row, each in a fresh process; the row with its machine."""
    import shutil

    import torch

    from workbench.batching import BATCH_SHARE

    shutil.rmtree(env["WORKBENCH_CACHE"], ignore_errors=True)  # open scores afresh; reopen reads this cache
    row: dict = {"key": key, "budget given": args.budget, "device": args.device, "torch": torch.__version__,
                 "torch threads": int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())),
                 "cpus": os.cpu_count(), "batch share": BATCH_SHARE,
                 "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                          capture_output=True, text=True).stdout.strip()}
    if args.device.startswith("cuda"):
        row["gpu"] = torch.cuda.get_device_name(0)
    for step in ("session", "reopen", "plain"):
        extra = ["--batch", str(row["batch"])] if step == "plain" else []
        cmd = [sys.executable, __file__, *argv, "--step", step, "--row", key, "--device", args.device, *extra]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"{key} {step} failed:\n{res.stderr[-3000:]}")
        got = json.loads(res.stdout.strip().splitlines()[-1])
        for k in ("peak RSS MiB", "peak anon MiB", "worker RSS MiB", "peak GPU MiB"):
            if k in got:
                row[f"{k} ({step})"] = got.pop(k)
        row.update(got)
    row["scored/plain"] = row["fully scored s"] / row["plain s"]
    return row


def fmt(v: object, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        name, n, precision = r["key"].split(":")
        first = fmt(r["first page s"]) if r.get("progressive") else "n/a (blocking open)"
        click = " / ".join(fmt(r.get(k), 2) for k in ("outcome s", "estimate s", "exact s"))
        anon = r.get("peak anon MiB (session)")
        rss = (f"{anon:.0f} anon / " if anon is not None else "") + \
            f"{r['peak RSS MiB (session)']:.0f} RSS (+{r['worker RSS MiB (session)']:.0f} worker)"
        gpu = fmt(r.get("peak GPU MiB (session)"), 0)
        cells = (name, n, precision, first, fmt(r["fully scored s"]), fmt(r["reopen s"], 2), fmt(r.get("new group s")),
                 click, rss, gpu, fmt(r["plain s"]), fmt(r["scored/plain"], 2))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for r in rows:
        flips = r.get("flips vs exact (all N)", r.get("flips (sample)"))
        lines.append(f"- {r['key']}: caches {r.get('caches after', r['caches'])}; {r['budget']}; {r['batch why']}; "
                     f"click attempts {r.get('click attempts')}; new group applied {r.get('new group applied')}, "
                     f"calibrated {r.get('new group calibrated')}; "
                     f"reopen read the cache: {r['reopen from cache']}; plain vs scored predictions differing: "
                     f"{r['plain vs scored: predictions that differ']}{'' if flips is None else '; flips vs exact: ' + str(flips)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = get_args_parser().parse_args(argv)
    if args.step:
        print(json.dumps(run_step(args)))
        return 0
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.budget_check:
        res = budget_check(args)
        Path(args.results).mkdir(parents=True, exist_ok=True)
        (Path(args.results) / "budget.json").write_text(json.dumps(res, indent=1, default=str))
        print(json.dumps(res, indent=1, default=str))
        return 0 if res.get("exact", {}).get("within budget", True) else 1
    sizes = CUDA_SIZES if args.device.startswith("cuda") else CPU_SIZES
    results, data = Path(args.results), Path(args.data)
    results.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    keys = [f"{m}:{n}:{p}" for m in args.models for n in (args.n or sizes.get(m, (64,))) for p in args.precision]
    print(f"device {args.device}; budget {args.budget or 'default'}; progressive session: {progressive_api()}; "
          f"results in {results}")
    rows = []
    for key in keys:
        path = row_file(results, key)
        if path.exists():
            print(f"{key}: done earlier ({path.name}), skipped")
            rows.append(json.loads(path.read_text()))
            continue
        folder = write_pngs(data, int(key.split(":")[1]), args.size, args.fashion)
        print(f"{key}: running on {folder} ...", flush=True)
        cache = data / "cache" / key.replace(":", "-")  # this row's caches: spilled activations, base scores
        env = dict(os.environ, WORKBENCH_CACHE=str(cache), WORKBENCH_SCORE_CACHE=str(cache / "scores"))
        row = run_row(args, argv, key, env)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(row, indent=1, default=str))
        os.replace(tmp, path)
        rows.append(row)
        print(f"{key}: spill {row.get('caches after', row['caches'])}; {row['batch why']}", flush=True)
    done = {r["key"] for r in rows}  # the table: this run's rows, then any other row in the folder
    for path in sorted(results.glob("*.json")):
        other = json.loads(path.read_text())
        if isinstance(other, dict) and other.get("key") and other["key"] not in done:
            rows.append(other)
    rows.sort(key=lambda r: (r["key"].split(":")[0], int(r["key"].split(":")[1]), r["key"].split(":")[2]))
    text = table(rows)
    (results / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

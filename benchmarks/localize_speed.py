"""How long does "Where is it stored?" take for one image? Quick vs default setting, side by side.

Times ``localize_example`` (what ``EditSession.localize`` and the panel run) on test images of
the default model, split into the greedy search and the accuracy-cost evaluation, after one
untimed warm-up. Goal: the quick setting <= 2 s per image on the 2-core CPU.

On a shared, loaded machine the wall time mostly measures the wait for a core, so the table
also gives the CPU time of this process per image ("cpu s"): with one thread on an idle core
the wall time is about that.

    OMP_NUM_THREADS=1 python benchmarks/localize_speed.py --images 10
    python benchmarks/localize_speed.py --images 10 --checkpoint assets/models/fashion-editable
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from workbench.data import load_for_card
from workbench.localization import DEFAULT, QUICK, localize_example
from workbench.training import load_model

GOAL_S = 2.0


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="assets/models/fashion-baseline")
    p.add_argument("--images", type=int, default=10, help="test images 0..N-1")
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-default", action="store_true", help="time the quick setting only")
    return p


def time_setting(model, bundle, images: int, quick: bool
                 ) -> tuple[list[float], list[float], list[float], list[float]]:
    totals, search, counts, cpu = [], [], [], []
    localize_example(model, bundle, 0, quick=quick)  # warm-up
    for i in range(images):
        t0, c0 = time.perf_counter(), time.process_time()
        r = localize_example(model, bundle, i, quick=quick)
        totals.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        search.append(sum(rep.seconds for rep in r.repeats))
        counts.append(r.count)
    return totals, search, counts, cpu


def main(args: argparse.Namespace) -> None:
    model, card = load_model(args.checkpoint, device=args.device)
    bundle = load_for_card(dict(card))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"model {args.checkpoint}, {args.images} test images, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, load average {load:.1f}")
    print(f"{'setting':<9} {'repeats':>7} {'cap':>5} {'median s':>9} {'p90 s':>7} {'max s':>7} "
          f"{'search s':>9} {'cpu s':>6} {'mean count':>10}")
    rows = {}
    for name, quick, s in (("quick", True, QUICK), ("default", False, DEFAULT)):
        if name == "default" and args.skip_default:
            continue
        tot, srch, cnt, cpu = time_setting(model, bundle, args.images, quick)
        q = sorted(tot)
        rows[name] = statistics.median(tot)
        print(f"{name:<9} {s.repeats:>7} {str(s.max_neurons):>5} {statistics.median(tot):>9.3f} "
              f"{q[int(0.9 * (len(q) - 1))]:>7.3f} {max(tot):>7.3f} {statistics.median(srch):>9.3f} "
              f"{statistics.median(cpu):>6.3f} {statistics.mean(cnt):>10.2f}")
        rows[name + "_cpu"] = statistics.median(cpu)
    if "default" in rows:
        print(f"default / quick median time: {rows['default'] / rows['quick']:.1f}x")
    verdict = "met" if rows["quick"] <= GOAL_S else "NOT met"
    print(f"goal: quick <= {GOAL_S:.0f} s per image: {verdict} (median wall {rows['quick']:.2f} s, "
          f"median CPU {rows['quick_cpu']:.2f} s, load average {load:.1f})")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

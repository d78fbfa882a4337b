"""Widget traffic of one Edit click: the comm messages (and their bytes) the kernel sends.

Opens the workbench on the model (default: the shipped editable model, all 10,000 test images)
without a browser, counts every comm message the kernel would send (``comm_open``,
``comm_msg``, ``comm_close``: the JSON content plus binary buffers) during each Edit click
(select a mistake and its true label first, Undo after; only the Edit click is counted), and
prints the median per click with a breakdown by widget class.

    python benchmarks/click_traffic.py                    # shipped model, 10,000 images, 3 clicks
    python benchmarks/click_traffic.py --limit 1000 --clicks 5

The last line is ``edit click: <n> messages, <kB> kB (median of <k>)``.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import statistics
from typing import Any, Iterator

import comm


class Traffic:
    """Counts the messages published through the comm package's stand-in comm (no kernel)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, int]] = []  # (msg_type, widget class, bytes)

    @contextlib.contextmanager
    def counting(self) -> Iterator[Traffic]:
        real = comm.DummyComm.publish_msg
        me = self

        def publish(self_comm: Any, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
            size = len(json.dumps(data, default=str)) + sum(len(memoryview(b).cast("B")) for b in buffers or ())
            state = (data or {}).get("state", {}) if isinstance(data, dict) else {}
            name = state.get("_model_name") or me.names.get(self_comm.comm_id, "?")
            if msg_type == "comm_open":
                me.names[self_comm.comm_id] = name
            me.messages.append((msg_type, name, size))
            return real(self_comm, msg_type, data, metadata, buffers, **keys)

        self.names: dict[str, str] = {}
        comm.DummyComm.publish_msg = publish  # type: ignore[method-assign]
        try:
            yield self
        finally:
            comm.DummyComm.publish_msg = real  # type: ignore[method-assign]

    def mark(self) -> int:
        return len(self.messages)

    def since(self, start: int) -> list[tuple[str, str, int]]:
        return self.messages[start:]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped editable model)")
    p.add_argument("--limit", type=int, default=None, help="first LIMIT test images (default: all)")
    p.add_argument("--clicks", type=int, default=3, help="counted Edit clicks (after one warm-up click)")
    return p


def main(args: argparse.Namespace) -> None:
    from workbench.widgets import show

    traffic = Traffic()
    with traffic.counting():
        wb = show(args.checkpoint, limit=args.limit, probe_views=16)
        per_click = []
        by_class: collections.Counter[str] = collections.Counter()
        for k in range(args.clicks + 1):
            i = int(wb.browser.page_items[k].index)
            wb.controller.select(i)
            wb.controller.set_target(int(wb.session.labels[i]))
            start = traffic.mark()
            wb.panel.buttons["edit"].click()
            msgs = traffic.since(start)
            applied = bool(wb.session.history)
            if k > 0 and applied:
                per_click.append((len(msgs), sum(m[2] for m in msgs)))
                by_class.update(f"{m[0]} {m[1]}" for m in msgs)
            print(f"click {k}: {len(msgs)} messages, {sum(m[2] for m in msgs) / 1000:.1f} kB"
                  + (" (warm-up)" if k == 0 else "") + ("" if applied else " (not applied)"))
            if applied:
                wb.panel.buttons["undo"].click()
    if not per_click:
        raise SystemExit("no edit was applied: nothing counted")
    n = len(per_click)
    print("per click, by message and widget class:")
    for name, c in by_class.most_common(15):
        print(f"  {c / n:6.1f}  {name}")
    print(f"edit click: {statistics.median(m for m, _ in per_click):.0f} messages, "
          f"{statistics.median(b for _, b in per_click) / 1000:.1f} kB (median of {n})")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

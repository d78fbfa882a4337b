"""N independent edits shared among the processes of a ``torchrun`` job, outcomes back in draw order.

Rank ``r`` of ``world`` makes edits ``start + r``, ``start + r + world``, ... of the seeded draw
(:func:`shard`), each through :meth:`Evaluator.evaluate_edits`: the code a single process runs.
Round ``j`` is edits ``start + j*world .. start + j*world + world - 1``, one per rank; after each
round the ranks' outcomes are gathered, so rank 0 receives the edits in the order of the draw,
a contiguous run of them after every round (what ``OUT.json.partial`` needs to resume). A rank
with one edit fewer than the others (when ``world`` does not divide the count) sends None in the
last round. The edits are independent, so each outcome is the one a single process computes.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..editing import EditorConfig
from .evaluator import Evaluator
from .protocols import EditSet
from .reports import EditOutcome

#: Sends this rank's outcome of a round (None: it has no edit in that round) and returns every
#: rank's, in rank order (``Distributed.all_gather_object``).
Gather = Callable[[EditOutcome | None], Sequence[EditOutcome | None]]


def shard(start: int, stop: int, rank: int, world: int) -> list[int]:
    """Positions in the draw that rank ``rank`` of ``world`` edits: ``start + rank``, then every
    ``world``-th before ``stop``."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    return list(range(start + rank, stop, world))


def rounds(start: int, stop: int, world: int) -> int:
    """Gathers needed for edits ``start..stop-1`` on ``world`` ranks (the first rank's share)."""
    return max(0, -(-(stop - start) // world))


def run_shard(ev: Evaluator, edits: EditSet, start: int, stop: int, config: EditorConfig, *, protocol: str,
              rank: int = 0, world: int = 1, gather: Gather | None = None,
              on_round: Callable[[int, list[EditOutcome]], None] | None = None) -> None:
    """Make this rank's share of edits ``start..stop-1`` of ``edits``; report each round's outcomes.

    Args:
        ev: this rank's evaluator (the same model, split and device type on every rank).
        edits: the whole seeded draw, ``x (N, C, H, W)``, ``y (N,)``, ``indices (N,)``, the same on every rank.
        start, stop: the edits of this run still to make (``0 <= start <= stop <= N``).
        gather: exchanges one outcome per rank per round (required when ``world > 1``).
        on_round: called on every rank after each round as ``on_round(first, outcomes)``:
            the outcomes of edits ``first .. first + len(outcomes) - 1``, in draw order.
    """
    if world > 1 and gather is None:
        raise ValueError(f"{world} ranks need a gather function to exchange their outcomes")
    if not 0 <= start <= stop <= edits.n:
        raise ValueError(f"edits {start}..{stop - 1} are not within the {edits.n} drawn")
    mine = shard(start, stop, rank, world)
    done = [0]

    def step(outcome: EditOutcome | None) -> None:
        got = [outcome] if gather is None else list(gather(outcome))
        first = start + done[0] * world
        done[0] += 1
        outs = [o for o in got if o is not None]
        _check_round(outs, first, min(first + world, stop), edits)
        if on_round is not None:
            on_round(first, outs)

    if mine:
        idx = torch.as_tensor(mine, dtype=torch.long)
        ev.evaluate_edits(edits.x[idx], edits.y[idx], config, protocol=protocol, progress=False,
                          indices=edits.indices[idx], on_outcome=step)
    for _ in range(rounds(start, stop, world) - len(mine)):
        step(None)


def _check_round(outs: list[EditOutcome], first: int, end: int, edits: EditSet) -> None:
    """The outcomes of one round are edits ``first..end-1`` of the draw, in order (RuntimeError: a bug)."""
    want = [(int(edits.indices[p]), int(edits.y[p])) for p in range(first, end)]
    got = [(o.index, o.target) for o in outs]
    if got != want:
        raise RuntimeError(f"the ranks returned edits {got} (image, target) for positions {first}..{end - 1} of "
                           f"the draw, which are {want}; this is a bug in the workbench, please report it")

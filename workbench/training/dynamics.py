"""Training dynamics per example: margin, loss and EL2N every epoch, on disk, for mislabel scores.

Any training loop can record them: call :meth:`DynamicsRecorder.update` with each batch's
training-set positions, logits and given labels, and :meth:`DynamicsRecorder.end_epoch` after
each epoch::

    rec = DynamicsRecorder("my_run", num_examples=len(train_set))
    for epoch in range(epochs):
        for idx, x, y in loader:
            logits = model(x)
            ...  # loss, backward, step as usual
            rec.update(idx, logits, y)
        rec.end_epoch()

``python -m workbench train`` does this by default (``--record-dynamics false`` turns it off).

On disk, in ``<folder>/dynamics/``: ``header.json`` (the number of examples, the fields) and
one ``epoch_NNN.safetensors`` per finished epoch holding three ``(N,) float16`` vectors:

- ``margin``: the given label's logit minus the largest other logit;
- ``loss``: the cross-entropy with the given label;
- ``el2n``: ``||softmax(logits) - onehot(label)||_2``.

An example not seen in an epoch (e.g. dropped with the last partial batch) is NaN there.
60,000 examples take 360 kB per epoch. Resuming is safe: an epoch already on disk is never
rewritten, and an epoch cut short (a crash, a kill) was never written, so it is simply redone.

Scores (:func:`read_dynamics`, :func:`aum`, :func:`mean_loss`, :func:`el2n`): AUM is the mean
margin over epochs (Pleiss et al., NeurIPS 2020); low AUM, high mean loss and high early EL2N
mark likely mislabeled examples (:func:`mislabel_scores` turns all three into "higher = more
suspect").
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

DYNAMICS_DIR = "dynamics"
HEADER_FILE = "header.json"
FIELDS = ("margin", "loss", "el2n")
FORMAT = "workbench-dynamics/1"
_EPOCH = re.compile(r"^epoch_(\d{3,})\.safetensors$")


def dynamics_dir(folder: str | Path) -> Path:
    """``folder/dynamics`` (``folder`` itself when it already is that folder)."""
    folder = Path(folder)
    return folder if folder.name == DYNAMICS_DIR else folder / DYNAMICS_DIR


def epoch_files(folder: str | Path) -> dict[int, Path]:
    """``{epoch: path}`` of the finished epochs on disk (1-based), sorted; empty if none."""
    d = dynamics_dir(folder)
    found = {int(m.group(1)): p for p in (d.iterdir() if d.is_dir() else []) if (m := _EPOCH.match(p.name))}
    return dict(sorted(found.items()))


def clear_dynamics(folder: str | Path) -> None:
    """Remove the recorded epochs and header (a fresh run in a folder that held another)."""
    d = dynamics_dir(folder)
    for p in epoch_files(d).values():
        p.unlink()
    (d / HEADER_FILE).unlink(missing_ok=True)


class DynamicsRecorder:
    """Records per-example margin, loss and EL2N for every epoch (module docstring).

    Args:
        folder: the run's folder; the records go to ``folder/dynamics/``.
        num_examples: ``N``, the size of the training set (positions ``0..N-1``).

    Raises:
        ValueError: ``folder`` already holds dynamics of a training set of another size.
    """

    def __init__(self, folder: str | Path, num_examples: int) -> None:
        if not isinstance(num_examples, int) or isinstance(num_examples, bool) or num_examples < 1:
            raise ValueError(f"num_examples must be a positive integer (the training set's size), got {num_examples!r}")
        self.dir = dynamics_dir(folder)
        self.num_examples = num_examples
        header = self.dir / HEADER_FILE
        if header.exists():
            old = json.loads(header.read_text())
            if old.get("num_examples") != num_examples:
                raise ValueError(f"{self.dir} holds dynamics of {old.get('num_examples')} examples, not {num_examples}; "
                                 "record into another folder, or delete that dynamics/ folder to start over")
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            header.write_text(json.dumps({"format": FORMAT, "num_examples": num_examples, "fields": list(FIELDS),
                                          "dtype": "float16", "unseen": "NaN"}, indent=1))
        for stale in self.dir.glob("*.tmp"):  # a write cut short
            stale.unlink()
        self._reset()

    def _reset(self) -> None:
        self._values = {f: torch.full((self.num_examples,), float("nan")) for f in FIELDS}

    @property
    def epochs(self) -> list[int]:
        """The finished epochs on disk (1-based)."""
        return list(epoch_files(self.dir))

    @torch.no_grad()
    def update(self, indices: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Record one batch: ``indices (B,)`` training-set positions, ``logits (B, C)``, ``labels (B,)`` given labels."""
        logits = logits.detach().float().cpu()
        idx, y = torch.as_tensor(indices).long().cpu().reshape(-1), torch.as_tensor(labels).long().cpu().reshape(-1)
        if logits.dim() != 2 or len(idx) != len(logits) or len(y) != len(logits):
            raise ValueError(f"update takes indices (B,), logits (B, C) and labels (B,); got {tuple(idx.shape)}, "
                             f"{tuple(logits.shape)} and {tuple(y.shape)}")
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.num_examples):
            raise ValueError(f"example indices must lie in [0, {self.num_examples}) (positions in the training "
                             f"set), got [{int(idx.min())}, {int(idx.max())}]")
        given = logits.gather(1, y[:, None])[:, 0]
        others = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        err = torch.softmax(logits, 1)
        err[torch.arange(len(y)), y] -= 1.0
        self._values["margin"][idx] = given - others
        self._values["loss"][idx] = F.cross_entropy(logits, y, reduction="none")
        self._values["el2n"][idx] = err.norm(dim=1)

    def accuracy(self, mask: torch.Tensor | None = None) -> float:
        """Share of the current epoch's seen examples (within ``mask (N,) bool``) whose given label
        had the largest logit when their batch was seen (NaN if none was seen)."""
        m = self._values["margin"]
        seen = ~torch.isnan(m) if mask is None else ~torch.isnan(m) & mask.cpu().bool()
        return float((m[seen] > 0).float().mean()) if bool(seen.any()) else float("nan")

    def end_epoch(self, epoch: int | None = None) -> int:
        """Write the epoch's records and start the next epoch; returns the epoch's number.

        ``epoch`` (1-based) defaults to the one after the last on disk. An epoch already on disk
        is kept as it is (a resumed run that redoes it does not duplicate or overwrite it).
        """
        epoch = epoch if epoch is not None else max(self.epochs, default=0) + 1
        if not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"epoch must be an integer >= 1, got {epoch!r}")
        path = self.dir / f"epoch_{epoch:03d}.safetensors"
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            save_file({f: v.half().contiguous() for f, v in self._values.items()}, str(tmp),
                      metadata={"epoch": str(epoch)})
            tmp.replace(path)
        self._reset()
        return epoch


@dataclass(frozen=True)
class Dynamics:
    """Recorded dynamics: ``margin``, ``loss``, ``el2n`` are ``(E, N) float32`` (NaN: unseen), row ``k`` is ``epochs[k]``."""

    epochs: list[int]
    margin: np.ndarray
    loss: np.ndarray
    el2n: np.ndarray


def read_dynamics(folder: str | Path) -> Dynamics:
    """The dynamics of a run folder (or of its ``dynamics/`` folder)."""
    files = epoch_files(folder)
    if not files:
        raise FileNotFoundError(f"no recorded epochs in {dynamics_dir(folder)}: train with `python -m workbench train` "
                                "(it records them unless --record-dynamics false) or use DynamicsRecorder")
    rows = []
    for e, p in files.items():
        try:
            rows.append(load_file(str(p), device="cpu"))
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"{p} is not a readable safetensors file ({err}); delete it and the epochs after it "
                             "and resume the run to record them again") from err
    stack = {f: np.stack([r[f].float().numpy() for r in rows]) for f in FIELDS}
    return Dynamics(list(files), stack["margin"], stack["loss"], stack["el2n"])


def _nanmean(a: np.ndarray) -> np.ndarray:
    seen = ~np.isnan(a)
    total = np.where(seen, a, 0.0).sum(0)
    count = seen.sum(0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def aum(d: Dynamics) -> np.ndarray:
    """``(N,)`` area under the margin: the mean margin over the epochs that saw the example (low: suspect)."""
    return _nanmean(d.margin)


def mean_loss(d: Dynamics) -> np.ndarray:
    """``(N,)`` mean training loss over the epochs that saw the example (high: suspect)."""
    return _nanmean(d.loss)


def el2n(d: Dynamics, epoch: int, window: int = 1) -> np.ndarray:
    """``(N,)`` EL2N averaged over epochs ``epoch .. epoch + window - 1`` (1-based; high: suspect)."""
    rows = [k for k, e in enumerate(d.epochs) if epoch <= e < epoch + window]
    if not rows:
        raise ValueError(f"no recorded epoch in [{epoch}, {epoch + window}); recorded: {d.epochs[0]}..{d.epochs[-1]}")
    return _nanmean(d.el2n[rows])


def mislabel_scores(d: Dynamics, el2n_epoch: int = 2) -> dict[str, np.ndarray]:
    """``{"aum", "mean_loss", "el2n"}`` as ``(N,)`` scores where higher means more likely mislabeled."""
    return {"aum": -aum(d), "mean_loss": mean_loss(d), "el2n": el2n(d, el2n_epoch)}

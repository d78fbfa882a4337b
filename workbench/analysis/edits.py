"""Analyses of edits behind the notebooks (paper Figure 2): per-edit KL vectors (the "edit
space"), class-vs-class drawdown matrices, sequential drawdown curves, training logs.

Pure functions over tensors and records; scikit-learn and tqdm are imported lazily.

Example:
    >>> edits = random_label_edits(evaluator, 100)            # workbench.evaluation protocol
    >>> run = run_edits(evaluator, edits.indices, edits.y)
    >>> kl = edit_space(evaluator.logits_for, evaluator.base_logits, run.results)  # (100, N)
    >>> xy = tsne_embedding(kl)                                                    # (100, 2)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "EditRun", "SequentialCurve", "class_change_matrix", "edit_space", "editor_for", "flip_share_matrix",
    "kl_per_example", "load_available", "read_metrics", "run_edits",
    "sequential_drawdown", "tsne_embedding",
]


# --------------------------------------------------------------------------- models and edits
def load_available(folders: Mapping[str, str | Path], *, root: str | Path | None = None,
                   device: str | torch.device | None = None) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Load the model folders that exist; print a note for (and skip) the others.

    Args:
        folders: name -> model folder (relative paths are taken from ``root``).
        root: base of relative paths (default: the current directory).
    Returns:
        name -> ``(model in eval mode, card)`` for each folder holding a model.
    """
    from ..training import load_model

    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    for name, folder in folders.items():
        path = Path(folder)
        if not path.is_absolute() and root is not None:
            path = Path(root) / path
        if (path / "card.json").exists() and (path / "model.safetensors").exists():
            out[name] = load_model(path, device=device or "cpu")
        else:
            print(f"note: no model at {path} (not found); skipping the {name} model")
    return out


def editor_for(card: Mapping[str, Any], layers: str | None = None) -> Any:
    """The editor a model should be edited with: the learned one recorded in its card by
    Editable Training (for the group it was learned on), else the tuned defaults on ``layers``.
    A thin wrapper of :func:`workbench.editing.choose_editor`.

    Returns:
        A resolved :class:`workbench.editing.EditorConfig`.
    """
    from ..editing import choose_editor

    return choose_editor(card, layers=layers).config


@dataclass(frozen=True, eq=False)
class EditRun:
    """Independent edits of split images, each applied alone to the base model and scored.

    Attributes:
        indices, targets, sources: ``(E,)`` int64: split index, target label and true label
            of each edited image.
        results: the E EditResults; reports: their EditReports against the base model.
        kl: ``(E, P)`` per-example KL divergence of each edit on the probe images (the edit
            space, as :func:`edit_space`), when :func:`run_edits` was given a ``probe``.
    """

    indices: torch.Tensor
    targets: torch.Tensor
    sources: torch.Tensor
    results: tuple[Any, ...]
    reports: tuple[Any, ...]
    kl: torch.Tensor | None = None

    @property
    def success(self) -> torch.Tensor:
        """``(E,)`` bool."""
        return torch.tensor([bool(r.success) for r in self.results], dtype=torch.bool)

    @property
    def steps(self) -> torch.Tensor:
        """``(E,)`` int64 editor steps taken (0: the model already predicted the target)."""
        return torch.tensor([int(r.steps) for r in self.results], dtype=torch.long)

    @property
    def drawdown(self) -> torch.Tensor:
        """``(E,)`` float32 signed drawdown of each edit."""
        return torch.tensor([float(r.drawdown) for r in self.reports])

    def per_class_change(self) -> torch.Tensor:
        """``(E, C)`` change of per-class error caused by each edit."""
        return torch.stack([r.per_class_change.float().cpu() for r in self.reports])

    def select(self, mask: torch.Tensor) -> "EditRun":
        """The edits where ``mask`` (``(E,)`` bool) is set."""
        keep = [i for i, m in enumerate(mask.tolist()) if m]
        return EditRun(self.indices[keep], self.targets[keep], self.sources[keep],
                       tuple(self.results[i] for i in keep), tuple(self.reports[i] for i in keep),
                       None if self.kl is None else self.kl[keep])


def run_edits(evaluator: Any, indices: Sequence[int] | torch.Tensor, targets: Sequence[int] | torch.Tensor,
              config: Any = None, *, probe: torch.Tensor | slice | None = None, progress: bool = False,
              desc: str = "edits") -> EditRun:
    """Edit image ``indices[e]`` of the evaluator's split to ``targets[e]``, each from the base
    weights (``evaluator.model``, never modified), and score each edit with ``evaluator.score``.

    Args:
        evaluator: a :class:`workbench.evaluation.Evaluator`.
        indices, targets: ``(E,)`` split indices and target labels.
        config: an :class:`workbench.editing.EditorConfig` (default: the default editor).
        probe: split examples (index tensor or slice) on which to record each edit's
            per-example KL divergence (``EditRun.kl``), at no extra forward pass.
    Returns:
        :class:`EditRun` with E entries.
    """
    from tqdm.auto import tqdm

    from ..editing import edit

    idx = torch.as_tensor(indices).long().cpu().reshape(-1)
    tgt = torch.as_tensor(targets).long().cpu().reshape(-1)
    if idx.shape != tgt.shape:
        raise ValueError(f"{idx.numel()} indices but {tgt.numel()} targets; give one target per index")
    results, reports, kl = [], [], []
    base = None if probe is None else evaluator.base_logits[probe]
    for i, t in tqdm(list(zip(idx.tolist(), tgt.tolist())), desc=desc, disable=not progress, leave=False):
        res = edit(evaluator.model, evaluator.image(i), t, config)
        if base is not None:  # the evaluator memoises these logits: score() below reuses them
            kl.append(kl_per_example(base, evaluator.logits_for(res)[probe]))
        results.append(res)
        reports.append(evaluator.score(res))
    kls = None if base is None else (torch.stack(kl) if kl else torch.empty(0, base.shape[0]))
    return EditRun(idx, tgt, evaluator.labels.cpu()[idx], tuple(results), tuple(reports), kls)


# --------------------------------------------------------------------------- edit space
def kl_per_example(base_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``KL(p_base || p_after)`` for every example.

    Args:
        base_logits: ``(P, C)`` logits before the edit.
        logits: ``(P, C)`` logits after the edit.
    Returns:
        ``(P,)`` float32, >= 0 (up to rounding); 0 where the predictions are unchanged.
    """
    if base_logits.shape != logits.shape or base_logits.dim() != 2:
        raise ValueError(f"logits must both be (P, C) of the same shape, got {tuple(base_logits.shape)} "
                         f"and {tuple(logits.shape)}")
    lp = F.log_softmax(base_logits.float(), -1)
    lq = F.log_softmax(logits.float().to(lp.device), -1)
    return (lp.exp() * (lp - lq)).sum(-1).clamp_min(0.0)


def _params_of(edit: Any) -> Mapping[str, torch.Tensor]:
    after = getattr(edit, "after", edit)
    if not isinstance(after, Mapping):
        raise TypeError(f"expected an EditResult or a name -> tensor mapping, got {type(edit).__name__}")
    return after


def edit_space(logits_for: Callable[[Mapping[str, torch.Tensor]], torch.Tensor], base_logits: torch.Tensor,
               edits: Sequence[Any], *, probe: torch.Tensor | slice | None = None) -> torch.Tensor:
    """Describe each edit by the per-example KL divergence it causes on a probe set.

    Args:
        logits_for: maps edited parameters to ``(N, C)`` logits of the whole split
            (``Evaluator.logits_for``).
        base_logits: ``(N, C)`` logits of the unedited model on the same split.
        edits: EditResults (their ``.after`` is used) or parameter mappings, E of them.
        probe: which examples of the split to keep (index tensor or slice); default all.
    Returns:
        ``(E, P)`` float32 on the CPU: row e is ``kl_per_example`` for edit e.
    """
    sel = slice(None) if probe is None else probe
    base = base_logits[sel]
    rows = [kl_per_example(base, logits_for(_params_of(e))[sel]).cpu() for e in edits]
    return torch.stack(rows) if rows else torch.empty(0, base.shape[0])


def tsne_embedding(vectors: torch.Tensor | np.ndarray, *, seed: int = 0, perplexity: float | None = None,
                   log: bool = True) -> np.ndarray:
    """2-D t-SNE of edit descriptors (``sklearn.manifold.TSNE``).

    Args:
        vectors: ``(E, P)`` (e.g. from :func:`edit_space`), E >= 3.
        perplexity: default ``min(30, (E - 1) / 3)`` so that small E works.
        log: embed ``log1p(vectors)`` (KL values are heavy-tailed).
    Returns:
        ``(E, 2)`` float array.
    """
    from sklearn.manifold import TSNE

    v = vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors)
    if v.ndim != 2 or v.shape[0] < 3:
        raise ValueError(f"t-SNE needs an (E, P) array with at least 3 edits, got shape {v.shape}")
    v = np.log1p(np.maximum(v, 0)) if log else v
    perp = perplexity if perplexity is not None else min(30.0, (v.shape[0] - 1) / 3)
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(v.astype(np.float64))


# --------------------------------------------------------------------------- class-vs-class
def class_change_matrix(row_class: torch.Tensor, per_class_change: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean change of per-class error, grouped by a class of the edit (e.g. the edited image's).

    Args:
        row_class: ``(E,)`` class of each edit (the row it contributes to).
        per_class_change: ``(E, C)`` error after - error before, per true class of the test set.
    Returns:
        ``(C, C)`` float32: entry (r, c) is the mean over edits of class r of the change of
        class c's error (NaN entries of ``per_class_change`` are skipped); NaN rows for
        classes without edits.
    """
    rc = torch.as_tensor(row_class).long().cpu()
    ch = torch.as_tensor(per_class_change).float().cpu()
    if ch.dim() != 2 or ch.shape[0] != rc.numel() or ch.shape[1] != num_classes:
        raise ValueError(f"per_class_change must be (E={rc.numel()}, C={num_classes}), got {tuple(ch.shape)}")
    out = torch.full((num_classes, num_classes), float("nan"))
    for r in range(num_classes):
        m = rc == r
        if bool(m.any()):
            out[r] = ch[m].nanmean(0)
    return out


def flip_share_matrix(row_class: torch.Tensor, flipped: Sequence[torch.Tensor], labels: torch.Tensor,
                      num_classes: int) -> torch.Tensor:
    """Share of each true class whose prediction an edit flipped, grouped by the edit's class.

    Args:
        row_class: ``(E,)`` class of each edit.
        flipped: E index tensors ``(M_e,)`` into ``labels`` (``EditReport.flipped``).
        labels: ``(N,)`` true labels of the split.
    Returns:
        ``(C, C)``: entry (r, c) = mean over edits of class r of
        (#flipped examples of true class c) / (#examples of class c); NaN rows without edits.
    """
    rc = torch.as_tensor(row_class).long().cpu()
    if rc.numel() != len(flipped):
        raise ValueError(f"{rc.numel()} row classes but {len(flipped)} flipped sets")
    lab = labels.long().cpu()
    size = torch.bincount(lab, minlength=num_classes).clamp_min(1).float()
    shares = torch.stack([torch.bincount(lab[f.long().cpu()], minlength=num_classes).float() / size
                          for f in flipped]) if len(flipped) else torch.empty(0, num_classes)
    return class_change_matrix(rc, shares, num_classes)


# --------------------------------------------------------------------------- sequential edits
@dataclass(frozen=True)
class SequentialCurve:
    """Edits applied one after another (each on top of the previous ones).

    Attributes:
        success: per attempted edit, whether it succeeded (failed edits are not applied).
        steps: editor steps per attempted edit.
        drawdown: cumulative drawdown vs the base model after each attempted edit (fraction).
        error: test error after each attempted edit.
        base_error: test error before any edit.
    """

    success: tuple[bool, ...]
    steps: tuple[int, ...]
    drawdown: tuple[float, ...]
    error: tuple[float, ...]
    base_error: float

    def to_json(self) -> dict:
        return {"success": list(self.success), "steps": list(self.steps), "drawdown": list(self.drawdown),
                "error": list(self.error), "base_error": self.base_error}


def sequential_drawdown(session: Any, indices: Sequence[int] | torch.Tensor, targets: Sequence[int] | torch.Tensor,
                        *, progress: bool = False, desc: str = "sequential edits") -> SequentialCurve:
    """Apply edits of split images one after another in an ``EditSession``.

    Args:
        session: an :class:`workbench.session.EditSession` with an evaluator (it is modified:
            the successful edits stay applied; call ``session.reset()`` to undo them).
        indices, targets: ``(E,)`` split indices and target labels.
    Returns:
        :class:`SequentialCurve` with one entry per attempted edit.
    """
    idx = [int(i) for i in indices]
    tgt = [int(t) for t in targets]
    if len(idx) != len(tgt):
        raise ValueError(f"{len(idx)} indices but {len(tgt)} targets; give one target per index")
    if getattr(session, "evaluator", None) is None:
        raise ValueError("the session has no evaluator; create it with a data bundle")
    from tqdm.auto import tqdm

    base = float(session.evaluator.base_error)
    ok, steps, dd, err = [], [], [], []
    for i, t in tqdm(list(zip(idx, tgt)), desc=desc, disable=not progress, leave=False):
        res = session.edit_index(i, t)
        rep = session.current_report()
        ok.append(bool(res.success))
        steps.append(int(res.steps))
        dd.append(float(rep.drawdown) if rep is not None else 0.0)
        err.append(float(rep.error_after) if rep is not None else base)
    return SequentialCurve(tuple(ok), tuple(steps), tuple(dd), tuple(err), base)


# --------------------------------------------------------------------------- training logs
def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl`` written by ``workbench.training.train`` (one per epoch).

    A run that was resumed may repeat epochs: the last row of each epoch wins.
    """
    path = Path(run_dir)
    path = path / "metrics.jsonl" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; train a model into that folder first")
    rows: dict[Any, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text().splitlines()):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n + 1} is not valid JSON ({err})") from err
            rows[row.get("epoch", n)] = row
    return list(rows.values())

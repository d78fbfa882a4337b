"""Analyses of edits behind the notebooks (paper Figure 2, training curves).

Pure functions over tensors and records, plus figure builders that return a
:class:`matplotlib.figure.Figure` without touching pyplot's global state. Nothing here
imports ipywidgets, plotly or IPython; matplotlib and scikit-learn are imported lazily.

Example:
    >>> kl = edit_space(evaluator.logits_for, evaluator.base_logits[:500], results)  # (E, 500)
    >>> xy = tsne_embedding(kl)                                                       # (E, 2)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "SequentialCurve", "class_change_matrix", "edit_space", "embedding_figure", "flip_share_matrix",
    "grouped_bar_figure", "heatmap_figure", "kl_per_example", "random_edit_targets", "read_metrics",
    "sequential_drawdown", "sequential_figure", "training_curves_figure", "tsne_embedding",
]


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
def random_edit_targets(labels: torch.Tensor, n: int, num_classes: int, *, seed: int = 0
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random edits of a split: n distinct example indices, each with a random wrong label.

    Returns:
        ``(indices (n,) int64, targets (n,) int64)``, ``targets[i] != labels[indices[i]]``.
    """
    if not 0 < n <= len(labels):
        raise ValueError(f"n must be in [1, {len(labels)}] (the split's size), got {n}")
    if num_classes < 2:
        raise ValueError("random wrong labels need at least 2 classes")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(labels), generator=g)[:n]
    shift = torch.randint(1, num_classes, (n,), generator=g)
    return idx, (labels[idx].cpu() + shift) % num_classes


def class_change_matrix(row_class: torch.Tensor, per_class_change: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean change of per-class error, grouped by a class of the edit (e.g. the edited image's).

    Args:
        row_class: ``(E,)`` class of each edit (the row it contributes to).
        per_class_change: ``(E, C)`` error after - error before, per true class of the test set.
    Returns:
        ``(C, C)`` float32: entry (r, c) is the mean over edits of class r of the change of
        class c's error; NaN rows for classes without edits.
    """
    rc = torch.as_tensor(row_class).long().cpu()
    ch = torch.as_tensor(per_class_change).float().cpu()
    if ch.dim() != 2 or ch.shape[0] != rc.numel() or ch.shape[1] != num_classes:
        raise ValueError(f"per_class_change must be (E={rc.numel()}, C={num_classes}), got {tuple(ch.shape)}")
    out = torch.full((num_classes, num_classes), float("nan"))
    for r in range(num_classes):
        m = rc == r
        if bool(m.any()):
            out[r] = ch[m].mean(0)
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


# --------------------------------------------------------------------------- figures
def _figure(rows: int, cols: int, width: float = 4.0, height: float = 3.2) -> tuple["Figure", np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(rows, cols)
    return fig, axes


_SKIP = {"epoch", "step", "wall_time_s"}


def training_curves_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], keys: Sequence[str] | None = None,
                           cols: int = 3) -> "Figure":
    """One panel per metric (loss, test_error, edit/locality losses, learned editor lr, ...),
    one line per run, against the epoch.

    Args:
        runs: run name -> rows from :func:`read_metrics`.
        keys: metrics to plot; default every numeric key found (except epoch/step/time).
    """
    if keys is None:
        found: list[str] = []
        for rows in runs.values():
            for r in rows:
                found += [k for k, v in r.items() if k not in _SKIP and k not in found
                          and isinstance(v, (int, float)) and not isinstance(v, bool)]
        keys = found
    if not keys:
        raise ValueError("no metrics to plot; are the runs empty?")
    n_rows = math.ceil(len(keys) / cols)
    fig, axes = _figure(n_rows, min(cols, len(keys)))
    for ax, key in zip(axes.flat, keys):
        for name, rows in runs.items():
            pts = [(r.get("epoch", i + 1), r[key]) for i, r in enumerate(rows) if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        vals = [r[key] for rows in runs.values() for r in rows if isinstance(r.get(key), (int, float))]
        if "lr" in key and vals and min(vals) > 0:
            ax.set_yscale("log")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    return fig


def heatmap_figure(matrices: Mapping[str, torch.Tensor], classes: Sequence[str], *, title: str = "",
                   xlabel: str = "affected class (true label)", ylabel: str = "edited image's class",
                   cbar_label: str = "change of error", diverging: bool = True) -> "Figure":
    """Side-by-side ``(C, C)`` heatmaps on one shared color scale (one per model)."""
    fig, axes = _figure(1, len(matrices), width=4.8, height=4.4)
    vals = torch.cat([m.flatten() for m in matrices.values()])
    vals = vals[torch.isfinite(vals)]
    vmax = float(vals.abs().max()) if vals.numel() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    kw = dict(cmap="RdBu_r", vmin=-vmax, vmax=vmax) if diverging else dict(cmap="viridis", vmin=0, vmax=vmax)
    im = None
    for ax, (name, m) in zip(axes.flat, matrices.items()):
        im = ax.imshow(m.numpy(), **kw)
        ax.set_title(f"{name}\nmean {float(m[torch.isfinite(m)].mean()) if torch.isfinite(m).any() else float('nan'):+.4f}")
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize="small")
        ax.set_yticks(range(len(classes)), classes, fontsize="small")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    if im is not None:
        fig.colorbar(im, ax=list(axes.flat), label=cbar_label, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def embedding_figure(points: Mapping[str, np.ndarray], colors: Mapping[str, Sequence[int]],
                     classes: Sequence[str], *, title: str = "", legend: str = "class") -> "Figure":
    """Scatter plots of 2-D embeddings (one panel per model), colored by a class per point."""
    fig, axes = _figure(1, len(points), width=4.6, height=4.2)
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for ax, (name, xy) in zip(axes.flat, points.items()):
        c = np.asarray(colors[name])
        for k, cls in enumerate(classes):
            m = c == k
            if m.any():
                ax.scatter(xy[m, 0], xy[m, 1], s=14, color=cmap(k % cmap.N), label=cls)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    axes.flat[-1].legend(title=legend, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    return fig


def sequential_figure(curves: Mapping[str, SequentialCurve], *, title: str = "") -> "Figure":
    """Cumulative drawdown (and success) against the number of edits applied, per model."""
    fig, axes = _figure(1, 2, width=4.8)
    for name, cv in curves.items():
        n = np.arange(1, len(cv.drawdown) + 1)
        axes[0, 0].plot(n, 100 * np.asarray(cv.drawdown), marker=".", label=name)
        axes[0, 1].plot(n, 100 * np.cumsum(cv.success) / n, marker=".", label=name)
    axes[0, 0].set(xlabel="edits applied", ylabel="cumulative drawdown (%)", title="test error increase")
    axes[0, 1].set(xlabel="edits attempted", ylabel="success so far (%)", title="edit success")
    for ax in axes.flat:
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def grouped_bar_figure(values: Mapping[str, Mapping[str, float]], *, ylabel: str = "", title: str = "",
                       scale: float = 1.0) -> "Figure":
    """Grouped bars: ``values[series][category]`` (e.g. model -> editor -> drawdown)."""
    fig, axes = _figure(1, 1, width=6.4, height=3.4)
    ax = axes[0, 0]
    cats: list[str] = []
    for row in values.values():
        cats += [c for c in row if c not in cats]
    width = 0.8 / max(1, len(values))
    for s, (name, row) in enumerate(values.items()):
        xs = [i + (s - (len(values) - 1) / 2) * width for i, c in enumerate(cats) if c in row]
        ax.bar(xs, [scale * row[c] for c in cats if c in row], width, label=name)
    ax.set_xticks(range(len(cats)), cats)
    ax.set(ylabel=ylabel, title=title)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize="small")
    return fig

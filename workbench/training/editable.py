"""Editable Training (Sinitsin et al., ICLR 2020).

``Obj(θ) = L_base(θ) + c_edit * L_edit(θ) + c_loc * L_loc(θ)`` with, for each sampled edit
``(x_e, y_e)``:

* ``L_edit = max(0, l_e(x_e, y_e; Edit_k(θ)))``: the edit constraint after ``k`` editor steps
  (0 when the edit succeeded), averaged over the edits of the batch;
* ``L_loc = KL(p(y|x, θ) || p(y|x, Edit_k(θ)))`` averaged over the batch, then over the edits.

Edits are drawn from the training batch: a random image with a uniformly random label
(any of the C classes, so about 1/C of the edits already hold and cost nothing),
``edits_per_batch`` independent edits, each starting from θ. The editor is
:func:`workbench.editing.run_editor` on the live parameters with learnable ``lr``/``beta``.

BatchNorm (the choice, tested in ``tests/training/test_training_editable.py``):

* ``L_base`` runs in **train mode**: batch statistics; this pass is the only one that updates
  the running statistics, so they move exactly once per step, as in baseline training.
* The edit runs in **eval mode** (running statistics, buffers untouched), as edits do at
  inference time in the workbench.
* ``L_loc`` compares **eval-mode** predictions of the suffix (the stages from the edited
  group on) before and after the edit, fed with the batch's activation entering the edited
  group as computed by the base pass. The prefix is not edited, so this is exactly 0 for a zero
  edit, and it costs no second prefix pass. The "before" distribution is a detached target
  (as in the official implementation): the edit is asked to keep the model's predictions,
  not the other way round.

First order (``first_order=True``): the editor runs without second-order terms
(``differentiable=False``) and the edited weights are re-attached as
``θ' = θ + stopgrad(Δ) * lr / stopgrad(lr)``: ``dθ'/dθ = I`` (first-order MAML) and, since
with the inner gradients held constant every method's update is linear in ``lr``,
``dθ'/dlr = Δ / lr`` is exact under that approximation. ``beta`` gets no gradient in first
order.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..editing import EditorConfig, edit_loss, eval_mode, get_method, run_editor
from ..editing.editor_defaults import DEFAULT_GROUP, DEFAULT_MAX_STEPS, DEFAULT_METHOD
from ..models.adapter import adapt, forward_logits
from .recipes import Recipe


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)  # keep the start finite when beta sits on a bound
    return math.log(p / (1 - p))


def autocast_if(enabled: bool, x: torch.Tensor) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``enabled``; a no-op on the CPU."""
    if enabled and x.is_cuda:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class EditableObjective(nn.Module):
    """The Editable Training objective, called by the training loop.

    Args:
        layers: editable group(s), e.g. ``"chain3"``.
        method: editor method (``rmsprop``, ``gd``, ... see :mod:`workbench.editing`).
        editor_lr, editor_beta: initial editor hyperparameters (learned when ``learn_editor``).
        edit_steps: k, the editor's step budget.
        c_edit, c_loc: weights of ``L_edit`` and ``L_loc``.
        edits_per_batch: independent edits sampled from each batch.
        first_order: drop second-order terms (see the module docstring).
        learn_editor: optimise ``lr`` (log-space) and ``beta`` (logit-space) with the model.
        seed, rank: edit sampling is a function of ``(seed, rank, step)``, so resuming replays
            the same edits and every DDP rank draws different ones.
        amp: bf16 autocast of the base pass on CUDA.

    Call: ``objective(model, x (B, C, H, W) normalised, y (B,), step) -> (loss, logs)``; ``model``
    may be a DistributedDataParallel wrapper (the base pass goes through it).

    Example:
        >>> obj = EditableObjective.from_recipe(get_recipe("fashion-editable"))
        >>> loss, logs = obj(model.train(), x, y, step=0); loss.backward()
    """

    def __init__(self, *, layers: str | tuple[str, ...] = DEFAULT_GROUP, method: str = DEFAULT_METHOD,
                 editor_lr: float = 1e-3, editor_beta: float = 0.5, edit_steps: int = DEFAULT_MAX_STEPS,
                 c_edit: float = 0.01, c_loc: float = 0.01, edits_per_batch: int = 1,
                 first_order: bool = False, learn_editor: bool = True, seed: int = 0, rank: int = 0,
                 amp: bool = False) -> None:
        super().__init__()
        m = get_method(method)
        self.cfg = EditorConfig(m.name, editor_lr, editor_beta if m.beta_range else None,
                                max_steps=edit_steps, layers=layers).resolved()
        self.beta_range = m.beta_range
        self.c_edit, self.c_loc = float(c_edit), float(c_loc)
        self.edits_per_batch, self.first_order = int(edits_per_batch), bool(first_order)
        self.learn_editor, self.seed, self.rank, self.amp = bool(learn_editor), int(seed), int(rank), bool(amp)
        log_lr = torch.tensor(math.log(editor_lr))
        self.editor_log_lr = nn.Parameter(log_lr, requires_grad=self.learn_editor)
        self.editor_beta_logit: nn.Parameter | None = None
        if m.beta_range is not None:
            lo, hi = m.beta_range
            self.editor_beta_logit = nn.Parameter(torch.tensor(_logit((editor_beta - lo) / (hi - lo))),
                                                  requires_grad=self.learn_editor)

    @classmethod
    def from_recipe(cls, recipe: Recipe, rank: int = 0) -> "EditableObjective":
        return cls(layers=recipe.layer_groups(), method=recipe.editor, editor_lr=recipe.editor_lr,
                   editor_beta=recipe.editor_beta, edit_steps=recipe.edit_steps, c_edit=recipe.c_edit,
                   c_loc=recipe.c_loc, edits_per_batch=recipe.edits_per_batch, first_order=recipe.first_order,
                   learn_editor=recipe.learn_editor, seed=recipe.seed, rank=rank, amp=recipe.amp)

    # -- learnable editor hyperparameters -------------------------------------------------
    def editor_lr(self) -> torch.Tensor:
        """The editor's learning rate, ``exp(log_lr) > 0`` (scalar tensor, differentiable)."""
        return self.editor_log_lr.exp()

    def editor_beta(self) -> torch.Tensor | None:
        """The editor's beta, ``lo + (hi - lo) * sigmoid(logit)`` inside the method's range."""
        if self.editor_beta_logit is None or self.beta_range is None:
            return None
        lo, hi = self.beta_range
        return lo + (hi - lo) * torch.sigmoid(self.editor_beta_logit)

    def extra_parameters(self) -> dict[str, torch.Tensor]:
        """Parameters the loop optimises with the model (empty unless ``learn_editor``)."""
        if not self.learn_editor:
            return {}
        out: dict[str, torch.Tensor] = {"editor_log_lr": self.editor_log_lr}
        if self.editor_beta_logit is not None:
            out["editor_beta_logit"] = self.editor_beta_logit
        return out

    def editor_config(self) -> EditorConfig:
        """The editor with the current (learned) ``lr``/``beta``: use it to edit the trained model."""
        beta = self.editor_beta()
        return EditorConfig(self.cfg.method, float(self.editor_lr().detach()),
                            None if beta is None else float(beta.detach()), self.cfg.beta2,
                            self.cfg.max_steps, self.cfg.layers)

    def editor_card(self) -> dict[str, Any]:
        """``card["editor"]``: an :meth:`EditorConfig.from_dict`-ready dict of the learned editor."""
        return {**self.editor_config().to_dict(), "learned": self.learn_editor, "first_order": self.first_order}

    def epoch_metrics(self) -> dict[str, float]:
        beta = self.editor_beta()
        out = {"editor_lr": float(self.editor_lr().detach())}
        if beta is not None:
            out["editor_beta"] = float(beta.detach())
        return out

    # -- the objective ----------------------------------------------------------------------
    def _sample_edits(self, x: torch.Tensor, num_classes: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.rank * 100_003 + step) % (2 ** 62))
        n = min(self.edits_per_batch, x.shape[0])
        idx = torch.randperm(x.shape[0], generator=g)[:n]
        y_e = torch.randint(0, num_classes, (n,), generator=g)
        return idx.to(x.device), y_e.to(x.device)

    def _edited(self, params: Mapping[str, torch.Tensor], trace_params: dict[str, torch.Tensor],
                lr: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.first_order:
            return trace_params
        scale = lr / lr.detach()  # value 1; carries d/dlr (updates are linear in lr, grads held fixed)
        return {n: params[n] + (trace_params[n] - params[n]).detach() * scale for n in trace_params}

    def forward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """``(L_base + c_edit * L_edit + c_loc * L_loc, logs)``; see :meth:`terms` (``indices`` unused)."""
        terms, logs = self.terms(model, x, y, step)
        loss = terms["base"] + self.c_edit * terms["edit"] + self.c_loc * terms["loc"]
        logs["loss"] = float(loss.detach())
        return loss, logs

    def terms(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int
              ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """The three terms as scalar tensors ``{"base", "edit", "loc"}`` (with their graphs) and logs.

        Args:
            model: the model in train mode (or its DDP wrapper).
            x: ``(B, C, H, W)`` normalised batch; y: ``(B,)`` int64 labels.
            step: global step (seeds the edit sampling).
        """
        net: nn.Module = getattr(model, "module", model)  # the editor works on the unwrapped module
        adapter = adapt(net)
        names = adapter.params(self.cfg.group)
        split = adapter.split(names)
        captured: dict[str, torch.Tensor] = {}
        # The project's ResNets: the locality batch enters the first edited stage as the training
        # forward computed it. Other models: the prefix is rerun on the batch in eval mode below.
        hook = net.get_submodule(split.cut).register_forward_pre_hook(
            lambda _m, inp: captured.__setitem__("h", inp[0])) if split.kind == "stages" else None
        try:
            with autocast_if(self.amp, x):
                logits = forward_logits(model, x)  # train mode, through DDP when distributed
        finally:
            if hook is not None:
                hook.remove()
        base = F.cross_entropy(logits.float(), y)
        logs = {"L_base": float(base.detach())}
        zero = base.new_zeros(())
        if self.c_edit == 0 and self.c_loc == 0:
            return {"base": base, "edit": zero, "loc": zero}, logs
        lr, beta = self.editor_lr(), self.editor_beta()
        idx, y_e = self._sample_edits(x, int(logits.shape[-1]), step)
        # Only the edited group's live parameters are swapped in; every other stage runs on the
        # module's own (equally live) parameters, so gradients reach them all the same.
        own = dict(net.named_parameters())
        params = {n: own[n] for n in names}
        l_edit: list[torch.Tensor] = []
        l_loc: list[torch.Tensor] = []
        successes, steps, nonfinite = 0, 0, 0
        before_logp: torch.Tensor | None = None
        with eval_mode(net):
            carry = (captured["h"].float(),) if split.kind == "stages" else split.prefix(x)
            for j in range(len(idx)):
                xe, ye = x[idx[j]].unsqueeze(0), y_e[j:j + 1]
                trace = run_editor(net, xe, ye, self.cfg, params=params, differentiable=not self.first_order,
                                   lr=lr if not self.first_order else lr.detach(),
                                   beta=(beta if not self.first_order else beta.detach()) if beta is not None else None)
                if not trace.finite:
                    nonfinite += 1
                    continue
                successes += int(trace.success)
                steps += trace.steps
                if trace.steps == 0:  # already predicted y_e: no change, both terms are exactly 0
                    continue
                edited = self._edited(params, trace.params, lr)
                if not trace.success:  # l_e > 0; 0 (and a zero gradient) after a successful edit
                    le_logits = trace.logits if not self.first_order else \
                        forward_logits(net, xe, edited)
                    l_edit.append(F.relu(edit_loss(le_logits, ye)).mean())  # type: ignore[arg-type]
                if before_logp is None:
                    with torch.no_grad():
                        before_logp = F.log_softmax(split.suffix(carry), dim=-1)
                after = split.suffix(carry, edited)
                after_logp = F.log_softmax(after, dim=-1)
                l_loc.append(F.kl_div(after_logp, before_logp, log_target=True, reduction="batchmean"))
        n = max(1, len(idx))
        loss_edit = torch.stack(l_edit).sum() / n if l_edit else zero
        loss_loc = torch.stack(l_loc).sum() / n if l_loc else zero
        # A KL divergence is >= 0; float32 round-off can make a near-zero one read as -1e-8.
        # Clamp the logged value only: the gradient flows through the unclamped ``loss_loc``.
        logs.update({"L_edit": float(loss_edit.detach()), "L_loc": max(0.0, float(loss_loc.detach())),
                     "edit_success": successes / n, "edit_steps": steps / n})
        if nonfinite:
            logs["edit_nonfinite"] = nonfinite / n
        return {"base": base, "edit": loss_edit, "loc": loss_loc}, logs

"""Default hyperparameters of each editor for the default model.

``python -m workbench tune-editor`` produced these (see ``SOURCE``). Every default keeps
>= 95% success within k = 10 steps on the validation slice while minimising drawdown.
"""
from __future__ import annotations

DEFAULT_MAX_STEPS = 10
# Upper bound on k accepted by EditorConfig (and the widget). The paper uses k = 10; 1000 is
# 100x that and, at one forward + backward of one image per step, still finishes in seconds
# on a CPU (about 2 ms a step for chain3 of the small ResNet, 20 ms for the whole model).
# Without a bound, lr=0 with max_steps=10**9 never returns.
MAX_STEPS_LIMIT = 1000
# Most images one edit takes (a batch edit: one constraint per image). Each step runs the edited
# layers forward and backward on the whole batch at once, so memory grows with it: on "all" of
# the shipped small ResNet 256 images peak at +249 MiB, 1,024 at +894 MiB, and 10,000 took
# 6.4 GiB (`python benchmarks/edit_batch_memory.py --sizes 256,1024`). The paper edits one image.
MAX_EDIT_BATCH = 256
MAX_EDIT_BATCH_NOTE = "256 images on all layers of the small ResNet take about 250 MiB"
DEFAULT_LAYERS = "chain3"

# method -> {"lr": float, "beta": float | None}. rmsprop_official was not tuned separately: it
# carries rmsprop's values (also the official code's lr 1e-3, beta 0.5).
DEFAULTS: dict[str, dict[str, float | None]] = {
    "gd": {"lr": 0.00316, "beta": None},
    "scaled_gd": {"lr": 0.1, "beta": None},
    "sign": {"lr": 0.001, "beta": None},
    "rmsprop": {"lr": 0.001, "beta": 0.5},
    "momentum": {"lr": 0.001, "beta": 0.9},
    "adam": {"lr": 0.001, "beta": 0.5},
    "rmsprop_official": {"lr": 0.001, "beta": 0.5},
}
SOURCE = (
    'rmsprop: lr=0.001, beta=0.5 (val success 100.0%, drawdown 7.34% abs, 100 random-label edits of 2000 val images, k=10, layers chain3); checkpoint assets/models/fashion-baseline (15 epochs, test error 0.06729999929666519, commit 38e7a62e13567522162732642af1683b4a7f26c4); `python -m workbench tune-editor --checkpoint assets/models/fashion-baseline --editor rmsprop --layers chain3 --edits 100 --no-progress --json logs_local/tune_rmsprop.json --write-defaults`; 2026-11-25\n'
    'gd: lr=0.00316 (val success 96.0%, drawdown 4.69% abs, 100 random-label edits of 2000 val images, k=10, layers chain3); checkpoint assets/models/fashion-baseline (15 epochs, test error 0.06729999929666519, commit 38e7a62e13567522162732642af1683b4a7f26c4); `python -m workbench tune-editor --checkpoint assets/models/fashion-baseline --editor gd --layers chain3 --edits 100 --no-progress --json logs_local/tune_gd.json --write-defaults`; 2026-11-25\n'
    'sign: lr=0.001 (val success 100.0%, drawdown 7.44% abs, 100 random-label edits of 2000 val images, k=10, layers chain3); checkpoint assets/models/fashion-baseline (15 epochs, test error 0.06729999929666519, commit 38e7a62e13567522162732642af1683b4a7f26c4); `python -m workbench tune-editor --checkpoint assets/models/fashion-baseline --editor sign --layers chain3 --edits 100 --no-progress --json logs_local/tune_sign.json --write-defaults`; 2026-11-25\n'
    'adam: lr=0.001, beta=0.5 (val success 100.0%, drawdown 7.84% abs, 100 random-label edits of 2000 val images, k=10, layers chain3); checkpoint assets/models/fashion-baseline (15 epochs, test error 0.06729999929666519, commit 38e7a62e13567522162732642af1683b4a7f26c4); `python -m workbench tune-editor --checkpoint assets/models/fashion-baseline --editor adam --layers chain3 --edits 100 --no-progress --json logs_local/tune_adam.json --write-defaults`; 2026-11-25\n'
    'momentum: lr=0.001, beta=0.9 (val success 97.0%, drawdown 7.10% abs, 100 random-label edits of 2000 val images, k=10, layers chain3); checkpoint assets/models/fashion-baseline (15 epochs, test error 0.06729999929666519, commit 38e7a62e13567522162732642af1683b4a7f26c4); `python -m workbench tune-editor --checkpoint assets/models/fashion-baseline --editor momentum --layers chain3 --edits 100 --no-progress --json logs_local/tune_momentum.json --write-defaults`; 2026-11-25\n'
    'scaled_gd: lr=0.1 (val success 99.0%, drawdown 4.86% abs, 100 random-label edits of 2000 val images, k=10, layers chain3); checkpoint assets/models/fashion-baseline (15 epochs, test error 0.06729999929666519, commit 38e7a62e13567522162732642af1683b4a7f26c4); `python -m workbench tune-editor --checkpoint assets/models/fashion-baseline --editor scaled_gd --layers chain3 --edits 100 --no-progress --json logs_local/tune_scaled_gd.json --write-defaults`; 2026-11-25\n'
)

# Overrides for other editable groups: group -> method -> {"lr", "beta"}. Methods missing here
# fall back to DEFAULTS. Whole model ("all"): `python -m workbench tune-editor --checkpoint
# assets/models/fashion-baseline --editor <m> --layers all --edits 100 --val-limit 2000
# --lrs 0.0001,0.000316,0.001,0.00316,0.01 --refine 2` (adam: --lrs 0.0001,0.000316,0.001,0.00316
# --betas 0.9), results/tune/tune_all_layers_*.json, session 2, 2026-11-25. The chain3 values
# would be far off here: GD at 3.16e-3 costs 65% validation drawdown on the whole model, 5.62e-4 costs 33%.
GROUP_DEFAULTS: dict[str, dict[str, dict[str, float | None]]] = {
    "all": {
        "gd": {"lr": 0.000562, "beta": None},
        "sign": {"lr": 0.000178, "beta": None},
        "rmsprop": {"lr": 0.000178, "beta": 0.5},
        "adam": {"lr": 0.000237, "beta": 0.9},
    },
}


def default_for(method: str, layers: object = DEFAULT_LAYERS) -> dict[str, float | None]:
    """The tuned ``{"lr", "beta"}`` of canonical ``method`` for editable group ``layers``."""
    group = GROUP_DEFAULTS.get(layers, {}) if isinstance(layers, str) else {}
    return group.get(method, DEFAULTS[method])


def has_tuned_default(model: object, layers: object) -> bool:
    """Whether the tuned defaults above were measured for this kind of model and group: the
    project's ResNets (``workbench.models.ResNet``) on ``chain3`` or a group of ``GROUP_DEFAULTS``.
    Any other model or group gets a calibrated step size (``workbench.evaluation.calibrate``)."""
    from ..models.resnet import ResNet

    key = layers if isinstance(layers, str) else None
    return isinstance(model, ResNet) and key is not None and (key == DEFAULT_LAYERS or key in GROUP_DEFAULTS)

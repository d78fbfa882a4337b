"""Named training recipes: flat dataclass defaults, overridable from the CLI."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Recipe:
    """All settings of a training run. Every field can be overridden from the CLI."""

    name: str = "custom"
    dataset: str = "fashion-mnist"
    data_root: str | None = None
    arch: str = "small-resnet"
    arch_kwargs: dict = field(default_factory=dict)
    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.5
    schedule: str = "cosine"  # cosine | constant
    augment: bool = True
    crop_pad: int = 2
    grad_clip: float | None = 10.0
    seed: int = 0
    val_size: int = 5000
    train_subset: int | None = None  # use only the first N training images (tests, demos)
    eval_subset: int | None = None  # evaluate on the first N val/test images
    init_from: str | None = None  # model folder to start from (fine-tuning)
    # Editable Training (used when editable=True)
    editable: bool = False
    edit_layers: str = "chain3"
    editor: str = "rmsprop"
    editor_lr: float = 1e-3
    editor_beta: float = 0.5
    edit_steps: int = 10
    c_edit: float = 0.01
    c_loc: float = 0.01
    edits_per_batch: int = 1
    first_order: bool = False
    learn_editor: bool = True

    def override(self, **kw: Any) -> "Recipe":
        valid = {f.name for f in fields(self)}
        unknown = set(kw) - valid
        if unknown:
            raise ValueError(f"unknown recipe field(s) {sorted(unknown)}; valid: {sorted(valid)}")
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    "fashion-baseline": Recipe(name="fashion-baseline"),
    "fashion-editable": Recipe(name="fashion-editable", editable=True, epochs=2, lr=5e-4, warmup_epochs=0.0,
                               init_from="assets/models/fashion-baseline"),
    "cifar10-baseline": Recipe(name="cifar10-baseline", dataset="cifar10", arch="resnet18", epochs=60,
                               lr=1e-3, weight_decay=0.0, crop_pad=4, schedule="constant", warmup_epochs=0.0),
    "cifar10-editable": Recipe(name="cifar10-editable", dataset="cifar10", arch="resnet18", epochs=60,
                               lr=1e-3, weight_decay=0.0, crop_pad=4, schedule="constant", warmup_epochs=0.0,
                               editable=True, edit_layers="chain3", editor="rmsprop", editor_lr=1e-3,
                               edit_steps=10, c_edit=0.01, c_loc=0.01),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return dataclasses.replace(RECIPES[name])

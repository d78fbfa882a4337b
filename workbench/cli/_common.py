"""Helpers shared by the subcommands: recipe flags, model/data flags, the editor set-up."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..editing import EditorChoice, get_method
from ..editing.editor_defaults import DEFAULT_GROUP
from ..evaluation import Evaluator
from ..evaluation.editor_resolver import EditorResolver
from ..paths import portable_arg
from ..training.recipes import Recipe


def parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def opt_none(conv: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda s: None if s.lower() in ("none", "") else conv(s)


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`Recipe` field, so every recipe value can be overridden.

    Flags not given stay out of the namespace (``SUPPRESS``), so ``--init-from none`` can set an
    optional field to None.
    """
    g = p.add_argument_group("recipe overrides (default: the recipe's value)")
    for f in dataclasses.fields(Recipe):
        if f.name == "name":
            continue
        flag = "--" + f.name.replace("_", "-")
        t = str(f.type)
        if f.name == "arch_kwargs":
            g.add_argument(flag, type=json.loads, default=argparse.SUPPRESS, help="JSON dict of architecture arguments")
        elif f.name == "arch":
            g.add_argument(flag, "--model", dest="arch", default=argparse.SUPPRESS, help=MODEL_HELP)
        elif t.startswith("bool"):
            g.add_argument(flag, type=parse_bool, nargs="?", const=True, default=argparse.SUPPRESS)
        elif t.startswith("int"):
            g.add_argument(flag, type=opt_none(int) if "None" in t else int, default=argparse.SUPPRESS)
        elif t.startswith("float"):
            g.add_argument(flag, type=opt_none(float) if "None" in t else float, default=argparse.SUPPRESS)
        else:
            g.add_argument(flag, type=opt_none(str) if "None" in t else str, default=argparse.SUPPRESS)


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    from ..training.recipes import get_recipe

    recipe = get_recipe(args.recipe)
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)
            if f.name != "name" and hasattr(args, f.name)}
    return recipe.override(**over)


def command_line(args: argparse.Namespace) -> str:
    """The command as typed, for cards and result files, each path through
    :func:`workbench.paths.portable_arg` (inside the working folder: relative to it)."""
    return "python -m workbench " + " ".join(shlex.quote(portable_arg(a)) for a in getattr(args, "argv", []))


def check_output_file(path: str | Path, flag: str) -> Path:
    """An output file path, checked before any work: not a folder, its parent not a file.

    Raises:
        ValueError: naming ``flag`` and the fix (so a long run never fails at its very end).
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {str(p)!r} is a folder; give a file path such as {str(p / 'result.json')!r}")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {str(p)!r} cannot be written: {str(parent)!r} is a file, not a folder")
            break
    return p


def parse_layers(text: str) -> str | tuple[str, ...]:
    """``"chain3"`` -> ``"chain3"``; ``"chain3,head"`` -> ``("chain3", "head")``."""
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts:
        raise ValueError("--layers is empty; name a group such as chain3 or layer3.1")
    return parts[0] if len(parts) == 1 else parts


def layers_key(layers: str | tuple[str, ...]) -> str | list[str]:
    return layers if isinstance(layers, str) else list(layers)


MODEL_HELP = ("the model: small-resnet, resnet18, torchvision:<name>[:k=v,...], timm:<name>[:k=v,...] or "
              "hf:<folder with config.json>; num_classes and in_channels default to the data set's. "
              "pkg.module:factory[:k=v,...] runs that code: it needs --trust-code")
TRUST_HELP = ("build a pkg.module:factory model named by --model or by the checkpoint's card.json: this runs "
              "code that the card or the argument chose, so give it only for sources you trust (torchvision, "
              "timm, hf and the project's own models never need it)")


def add_trust_arg(p: argparse.ArgumentParser | Any) -> None:
    """``--trust-code``: allow a ``module:factory`` builder (see :mod:`workbench.models.safety`)."""
    p.add_argument("--trust-code", action="store_true", help=TRUST_HELP)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--checkpoint FOLDER``, or ``--model SPEC --weights FILE`` (with ``--dataset``)."""
    g = p.add_argument_group("the model: a model folder, or a model spec with its weights")
    g.add_argument("--checkpoint", default=None, help="model folder (model.safetensors + card.json)")
    g.add_argument("--model", default=None, metavar="SPEC", help=MODEL_HELP)
    g.add_argument("--weights", default=None, metavar="FILE",
                   help="weights for --model (or to replace a checkpoint's): .safetensors, or a .pt state dict "
                        "(read with weights_only=True)")
    g.add_argument("--dataset", default=None, help="fashion-mnist, cifar10 or imagefolder:PATH (default: the "
                                                    "checkpoint's data set, else fashion-mnist)")
    g.add_argument("--data-root", default=None, help="where the data set's files are")
    add_image_size_arg(g)
    add_trust_arg(g)


IMAGE_SIZE_HELP = ("resize the data's images to N x N (default: the size the checkpoint's card records, for "
                   "--model the img_size/image_size it is given, else the data set's own size); a model that "
                   "cannot take the data's size is refused, naming both")


def add_image_size_arg(p: argparse.ArgumentParser | Any) -> None:
    """``--image-size N``: the side the data's images are resized to (checked: 1..4096)."""
    p.add_argument("--image-size", type=int, default=None, metavar="N", help=IMAGE_SIZE_HELP)


def add_edit_args(p: argparse.ArgumentParser, edits: int) -> None:
    add_model_args(p)
    p.add_argument("--editor", default=None,
                   help="gd, scaled_gd, sign (rprop), rmsprop, rmsprop_official, momentum, adam (default: the "
                        "editor the model learned in Editable Training, recorded in its card; else rmsprop)")
    p.add_argument("--layers", default=None, help="editable group(s): module paths such as layer3, layer3.1, fc, "
                                                   "or aliases such as chain3; comma-separated for several "
                                                   f"(default: the group of the learned editor, else {DEFAULT_GROUP})")
    p.add_argument("--edits", type=int, default=edits, help=f"number of independent edits (default {edits})")
    p.add_argument("--max-steps", type=int, default=None, help="k: step budget per edit (default: the learned "
                                                               "editor's, else 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the edit draw")
    add_device_arg(p)
    p.add_argument("--batch-size", type=int, default=None,
                   help="examples per forward pass (default: 256 on the CPU, 2048 on CUDA)")
    p.add_argument("--json", default=None, metavar="OUT.json", help="also write the results as JSON")
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                   help="hide the progress bar (evaluate shows it only when stderr is a terminal, and under "
                        "torchrun only on rank 0)")


def add_device_arg(p: argparse.ArgumentParser) -> None:
    """``--device``, as every subcommand that computes takes it (checked by :func:`device_from_args`)."""
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")


def device_from_args(args: argparse.Namespace) -> torch.device:
    """``--device`` checked against this machine before any work (ValueError naming the valid choices)."""
    from ..device import resolve_device

    return resolve_device(args.device, what="--device")


@dataclasses.dataclass
class Setup:
    """What ``evaluate`` and ``tune-editor`` work on."""

    evaluator: Evaluator
    card: dict[str, Any]
    choice: EditorChoice
    weights: Path  # the weights file (hashed into results)
    source: str  # the checkpoint folder, or the --model spec with its weights
    bundle: Any
    resolver: EditorResolver  # the one resolver of the editor (calibrates where needed)


class ScoringBar:
    """``progress(scored, total)`` as a tqdm bar on stderr (made at the first call; nothing when
    hidden: ``--quiet``, stderr not a terminal, or a torchrun rank other than 0)."""

    def __init__(self, show: bool, desc: str) -> None:
        self.show, self.desc = show, desc
        self.bar: Any = None

    def __call__(self, scored: int, total: int) -> None:
        if not self.show:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="img", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(scored - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def scoring_bar(show: bool, desc: str) -> ScoringBar:
    """A :class:`ScoringBar`, shown when ``show`` and stderr is a terminal, on rank 0 only."""
    return ScoringBar(show and sys.stderr.isatty() and os.environ.get("RANK", "0") == "0", desc)


def setup(args: argparse.Namespace, split: str, limit: int | None) -> Setup:
    """Validate the flags, load the model and its data, choose the editor, build the Evaluator."""
    from ..models.registry import group_params
    from ..session.opening import open_model

    device = device_from_args(args)
    if args.editor is not None:
        get_method(args.editor)  # fail fast on an unknown editor
    for name in ("edits", "max_steps", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.checkpoint is None and args.model is None:
        raise ValueError("give --checkpoint FOLDER (a model folder), or --model SPEC --weights FILE "
                         "(e.g. --model torchvision:resnet18 --weights model.safetensors)")
    if args.checkpoint is not None and args.model is not None:
        raise ValueError("give either --checkpoint or --model (with --weights), not both")
    layers = parse_layers(args.layers) if args.layers is not None else None
    model, card, bundle, weights = open_model(checkpoint=args.checkpoint, model=args.model, weights=args.weights,
                                              dataset=args.dataset, data_root=args.data_root,
                                              trust_code=args.trust_code,
                                              image_size=getattr(args, "image_size", None))
    resolver = EditorResolver(model, card, bundle, device=device, batch_size=args.batch_size, seed=args.seed,
                              edits=getattr(args, "calibration_edits", None))
    choice = resolver.resolve(method=args.editor, lr=getattr(args, "lr", None), beta=getattr(args, "beta", None),
                              max_steps=args.max_steps, layers=layers, calibrate=False)
    group_params(model, choice.config.group)  # unknown group -> ValueError naming the groups
    bar = scoring_bar(not getattr(args, "no_progress", False), f"scoring the base model on the {split} split")
    try:
        ev = Evaluator(model, bundle, split=split, layers=choice.config.group, device=device,
                       batch_size=args.batch_size, limit=limit, progress=bar)
    finally:
        bar.close()
    source = portable_arg(str(args.checkpoint)) if args.checkpoint is not None \
        else f"{portable_arg(args.model)} (weights {portable_arg(str(args.weights))})"
    return Setup(ev, dict(card), choice, Path(weights), source, bundle, resolver)


def header(ev: Evaluator, card: Mapping[str, Any], source: str) -> str:
    epochs = f", {card['epochs']} epochs" if card.get("epochs") is not None else ""
    return (f"model {source} ({card.get('arch')}{epochs}, {card.get('dataset')}); "
            f"{len(ev)} {ev.split} images, base error {100 * ev.base_error:.2f}%; device {ev.device}; "
            f"prefix cache {ev.cache_info()} built in {ev.setup_seconds:.1f} s; scoring: {ev.fast_path}")

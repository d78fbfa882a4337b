"""Finding a model folder and opening a session on it (shared by the widgets, the CLI and scripts)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..paths import models_dir, source_root

DEFAULT_MODEL, FALLBACK_MODEL = "fashion-editable", "fashion-baseline"

__all__ = ["DEFAULT_MODEL", "FALLBACK_MODEL", "check_fits", "default_checkpoint", "open_session", "resolve_checkpoint"]


def _is_model(path: Path) -> bool:
    return (path / "card.json").exists() or (path.is_file() and path.name.endswith(".safetensors"))


def resolve_checkpoint(folder: str | Path | None = None) -> tuple[Path, str]:
    """Find a model folder; returns ``(path, note)``.

    ``None`` means the shipped editable-trained model ``fashion-editable`` in
    :func:`workbench.paths.models_dir`, falling back to ``fashion-baseline`` (the note says
    so). A relative path is tried from the current directory, then: a path
    ``[../]assets/models/<name>`` (as the notebooks write it) in
    :func:`~workbench.paths.models_dir`, wherever that is; any other one in the source checkout.
    """
    models = models_dir()
    if folder is None:
        for name in (DEFAULT_MODEL, FALLBACK_MODEL):
            if (models / name / "card.json").exists():
                note = "" if name == DEFAULT_MODEL else (
                    f"note: {models / DEFAULT_MODEL} is missing; opened the baseline model {name} instead "
                    "(train the editable model with `python -m workbench train --recipe fashion-editable`)")
                return models / name, note
        raise FileNotFoundError(f"no model in {models}: set $WORKBENCH_MODELS to a folder of model folders, "
                                "or train one with `python -m workbench train --recipe fashion-baseline "
                                "--out assets/models/fashion-baseline`")
    p = Path(folder).expanduser()
    candidates = [p]
    if not p.is_absolute():
        plain = Path(*[s for s in p.parts if s != ".."]) if any(s != ".." for s in p.parts) else p
        parts = plain.parts
        root = source_root()
        if len(parts) >= 3 and parts[:2] == ("assets", "models"):
            candidates.append(models / Path(*parts[2:]))
        elif root is not None:
            candidates += [root / p, root / plain]
    for c in candidates:
        if _is_model(c):
            return c.resolve(), ""
    if p.name == DEFAULT_MODEL and (models / FALLBACK_MODEL / "card.json").exists():
        return (models / FALLBACK_MODEL).resolve(), (
            f"note: {folder} is missing; opened the baseline model {FALLBACK_MODEL} instead")
    raise FileNotFoundError(f"model folder {folder} not found (tried {', '.join(map(str, candidates))}); "
                            f"a model folder holds model.safetensors and card.json")


def default_checkpoint() -> Path:
    """The folder opened when no model is named."""
    return resolve_checkpoint(None)[0]


def open_session(folder: str | Path | None = None, *, limit: int | None = None, device: Any = None,
                 bundle: Any = None, **kw: Any):
    """``(EditSession, note)`` for a model folder (see :func:`resolve_checkpoint`), checked to
    have an evaluator whose classes match the model."""
    from .session import EditSession

    path, note = resolve_checkpoint(folder)
    session = EditSession.from_checkpoint(path, bundle=bundle, limit=limit, device=device, **kw)
    if session.evaluator is None:
        raise ValueError(f"{path}: no evaluator could be built for its data set; the workbench needs one")
    n_cls = session.num_classes or len(session.evaluator.classes)
    if n_cls != len(session.evaluator.classes):
        raise ValueError(f"{path} has {n_cls} classes but its data set has {len(session.evaluator.classes)}; "
                         "open a model trained on this data set")
    return session, note


def open_model(*, checkpoint: str | Path | None = None, model: str | None = None, weights: str | Path | None = None,
               dataset: str | None = None, data_root: str | Path | None = None, device: Any = "cpu",
               trust_code: bool = False, image_size: int | None = None):
    """``(model, card, bundle, weights_path)`` from the CLI's ``--checkpoint`` or ``--model/--weights``.

    Args:
        checkpoint: a model folder (``model.safetensors`` + ``card.json``); its card names its data set.
        model: instead, a :class:`~workbench.models.spec.ModelSpec` string (``torchvision:resnet18``,
            ``timm:resnet18``, ``hf:FOLDER``, ``small-resnet``, or with ``trust_code`` a
            ``pkg.module:factory[:k=v,...]``), built with the data set's classes and channels where
            the builder takes them, with ``weights`` loaded into it.
        weights: ``.safetensors``, or a ``.pt`` state dict (read with ``weights_only=True``).
        dataset: ``fashion-mnist``, ``cifar10`` or ``imagefolder:PATH`` (default: the card's, else
            Fashion-MNIST).
        trust_code: build a ``module:factory`` (the checkpoint's card builder or ``model``): code
            that the card or the argument names (``--trust-code``).
        image_size: the side the data's images are resized to (``--image-size``); default: the
            size the card records (``input_shape``), for ``model`` the size its arguments fix
            (``img_size``, ``image_size``, ``input_size``), else the data set's own.
    Returns:
        The model in eval mode, its card (for ``--model``: a card recording the builder, the weights
        file and the data set), the data bundle, and the weights file (for hashing).
    Raises:
        ValueError, FileNotFoundError: what is missing or does not fit, named; a model that
            cannot take the data's image size is refused naming both sizes and ``--image-size``.
    """
    from ..data import load_dataset, load_for_card
    from ..data.datasets import card_size
    from ..data.resize import size_pair
    from ..models.fit import expected_size
    from ..models.spec import ModelSpec
    from ..training.checkpoint import load_model, load_state_into, load_weights, read_weights
    from ..training.model_files import MODEL_FILE

    if (checkpoint is None) == (model is None):
        raise ValueError("give either --checkpoint FOLDER (a model folder) or --model SPEC --weights FILE")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; pass a model folder holding "
                                    "model.safetensors and card.json (as written by `python -m workbench train`)")
        if not path.is_dir():
            raise ValueError(f"--checkpoint {str(path)!r} is a file; pass the model folder that holds "
                             f"model.safetensors and card.json (here perhaps {str(path.parent)!r})")
        net, card = load_model(path, device="cpu", trust_code=trust_code)
        if weights is not None:
            load_weights(net, weights)
        want = size_pair(image_size, "--image-size") or card_size(card)
        bundle = _sized(load_dataset, dataset, data_root, want) if dataset else load_for_card(card, image_size)
        _say(check_fits(net, bundle, card_size(card), "its card's input_shape", image_size))
        wpath = Path(weights) if weights is not None else (path if path.is_file() else path / MODEL_FILE)
        return net.to(device).eval(), card, bundle, wpath
    assert model is not None
    spec = ModelSpec.parse(model, trust_code=trust_code)
    spec.check_trusted()  # before the data set is read
    if weights is None:
        raise ValueError(f"--model {model} needs --weights FILE (the trained weights, .safetensors or .pt); "
                         "a freshly built model has random weights")
    state = read_weights(weights)  # checked before anything is built
    name = dataset or "fashion-mnist"
    made_for = expected_size(spec.kwargs)
    bundle = _sized(load_dataset, name, data_root, size_pair(image_size, "--image-size") or made_for)
    c, h, _ = bundle.input_shape
    spec = spec.with_defaults(num_classes=bundle.num_classes, in_channels=c,
                              input_size=h if spec.kind == "arch" else None)
    net = spec.build()  # counted on the meta device first: refused above the size bound
    load_state_into(net, state, str(weights))
    _say(check_fits(net, bundle, made_for, f"its arguments ({spec})", image_size))
    card = {"arch": str(ModelSpec(spec.kind, spec.name)), "builder": {"kind": spec.kind, "name": spec.name},
            "model_config": spec.kwargs, "dataset": name, "weights": str(weights),
            "classes": list(bundle.classes), "input_shape": list(bundle.input_shape)}
    return net.to(device).eval(), card, bundle, Path(weights)


def _sized(load: Any, name: str, root: str | Path | None, want: tuple[int, int] | None) -> Any:
    """Data set ``name`` with images of ``want = (H, W)`` (a folder is read at that size; a
    fixed data set is resized, :func:`~workbench.data.resize.resize_bundle`); None: as it is."""
    from ..data.resize import resize_bundle

    if want is None:
        return load(name, root)
    if name.startswith("imagefolder:") and want[0] == want[1]:
        return load(name, root, image_size=want[0])
    return resize_bundle(load(name, root), want)


def _say(note: str | None) -> None:
    """Print a note (see :func:`check_fits`) on stderr, one line."""
    if note:
        print(note, file=sys.stderr)


def check_fits(net: Any, bundle: Any, made_for: tuple[int, int] | None, where: str,
               image_size: int | None) -> str | None:
    """Refuse a model that cannot take the data's images, naming both sizes and the fix.

    Returns:
        a one-line note when ``--image-size`` differs from the size the model was made for and
        the model takes it (it runs, but not at the size it was trained at), else None.
    """
    from ..models.fit import check_takes

    c, h, w = bundle.input_shape
    if made_for is not None and made_for != (h, w):
        fix = f"Pass --image-size {made_for[0]} (the size it was made for), or retrain it at {h}x{w}"
    elif image_size is not None:
        fix = "Pass the --image-size the model was trained at"
    else:
        fix = "Pass --image-size N, N the side of the images the model was trained at"
    expected = f"{made_for[0]}x{made_for[1]} ({where})" if made_for is not None else ""
    check_takes(net, (c, h, w), fix=fix, expected=expected)
    if image_size is not None and made_for is not None and made_for != (h, w):
        return (f"note: --image-size {image_size} reads the data at {h}x{w}; the model runs at that size, but it "
                f"was made for {made_for[0]}x{made_for[1]} ({where}), so its accuracy may differ")
    return None

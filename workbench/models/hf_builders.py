"""Hugging Face image classifiers as :class:`~workbench.models.spec.ModelSpec` builds them: from a
config (``from_config`` or the model class's constructor), never ``from_pretrained``, never remote
or local code, nothing downloaded.

Two spellings of the ``hf`` kind:

- ``hf:<model type>`` (``hf:vit``, or a folder's ``config.json``): the type's image-classification
  model inside :class:`HFImageClassifier`, whose ``forward(x)`` returns the logits tensor (weights
  under ``model.``);
- ``hf:<class name>`` (``hf:ViTForImageClassification``): that class itself, as a user builds it
  with ``ViTForImageClassification(config)`` (weights under their own names). The name must be one
  of the classes transformers' auto mapping lists for image classification
  (:func:`hf_class_names`, a closed set), defined in transformers' own modules.

The keyword arguments are the config's fields. A config that names code (``auto_map``,
``custom_pipelines``), asks for pretrained weights (``use_pretrained_backbone``), names a timm
model outside timm's registry (``timm_wrapper``'s ``architecture``), or is larger than
:data:`MAX_CONFIG_BYTES` as JSON is refused before anything is built.
"""
from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = ["HFImageClassifier", "HF_DROPPED", "HF_REFUSED", "MAX_CONFIG_BYTES", "build_hf", "hf_class_name",
           "hf_class_names", "hf_config_class", "hf_config_json", "hf_settings", "hf_spec_from_folder"]

# Fields of a config.json that are not model settings (dropped), and those refused (they name code or downloads).
HF_DROPPED = ("model_type", "transformers_version", "_name_or_path", "architectures")
HF_REFUSED = ("auto_map", "custom_pipelines", "trust_remote_code")
MAX_CONFIG_BYTES = 1 << 20  # a config.json larger than 1 MiB is not a model config


def _need_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ValueError("this model needs the transformers package, which is not installed: "
                         "pip install transformers") from None
    return transformers


class HFImageClassifier(nn.Module):
    """A transformers image classifier as the workbench takes models: ``forward(x)`` maps
    ``x: (N, C, H, W)`` float32 to ``(N, num_labels)`` logits (the output's ``.logits``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


def _mapping() -> dict[str, Any]:
    _need_transformers()
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES as names

    return dict(names)


@lru_cache(maxsize=1)
def hf_class_names() -> frozenset[str]:
    """The image-classification model classes of transformers' auto mapping (the closed set of
    ``hf:<class name>``), e.g. ``ViTForImageClassification``, ``ConvNextForImageClassification``."""
    out: set[str] = set()
    for v in _mapping().values():
        out.update((v,) if isinstance(v, str) else v)
    return frozenset(out)


def _hf_class(name: str) -> Any:
    """The transformers class ``name`` of the closed set (ValueError otherwise)."""
    transformers = _need_transformers()
    cls = getattr(transformers, name, None) if name in hf_class_names() else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)
            and cls.__module__.startswith("transformers.models.")):
        raise ValueError(f"{name!r} is not a Hugging Face image-classification model type or class; use a model "
                         f"type such as 'vit' or 'resnet' (the config's model_type) or one of transformers' "
                         f"image-classification classes such as {sorted(hf_class_names())[:4]} ...")
    return cls


def hf_config_class(name: str) -> Any:
    """The config class of model type ``name`` (``vit``) or of model class ``name``
    (``ViTForImageClassification``); ValueError for anything outside the closed set."""
    if name[:1].isupper():
        return _hf_class(name).config_class
    names = _mapping()
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if name not in names or name not in CONFIG_MAPPING:
        raise ValueError(f"{name!r} is not a Hugging Face image-classification model type or class; use one of "
                         f"{sorted(names)[:8]} ... (the config's model_type), or a class such as "
                         "ViTForImageClassification")
    return CONFIG_MAPPING[name]


def _check_config(name: str, kw: dict[str, Any]) -> None:
    bad = [k for k in HF_REFUSED if k in kw]
    if bad:
        raise ValueError(f"the Hugging Face config names custom code ({bad[0]!r}): refused; the workbench builds "
                         "only the model types that transformers itself defines")
    if kw.get("use_pretrained_backbone"):
        raise ValueError("the Hugging Face config asks for a pretrained backbone (use_pretrained_backbone): refused, "
                         "nothing is downloaded; set it to false and load trained weights with --weights FILE")
    arch = kw.get("architecture")
    if arch is not None and "timm" in name.lower():  # timm_wrapper: a timm registry name only (no hub, no file)
        import timm

        if not isinstance(arch, str) or not timm.is_model(arch):
            raise ValueError(f"the Hugging Face timm_wrapper config names {arch!r}, not a model of timm's registry "
                             "(hub and local-file names are not opened here)")
    try:
        size = len(json.dumps(kw, default=str))
    except (TypeError, ValueError, RecursionError):
        raise ValueError(f"the Hugging Face config of {name!r} is not plain JSON data") from None
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"the Hugging Face config of {name!r} is {size} bytes as JSON, above the "
                         f"{MAX_CONFIG_BYTES} of a model config: it is corrupted or not a model config")


def build_hf(name: str, kw: dict[str, Any]) -> nn.Module:
    """A random-weight model of model type or class ``name`` from config fields ``kw`` (see the
    module docstring); ``num_classes``/``in_channels`` are taken for ``num_labels``/``num_channels``."""
    cfg_class = hf_config_class(name)
    _check_config(name, kw)
    kw = dict(kw)
    if "num_classes" in kw:
        kw["num_labels"] = kw.pop("num_classes")
    if "in_channels" in kw:
        kw["num_channels"] = kw.pop("in_channels")
    if "num_labels" in kw and ("id2label" in kw or "label2id" in kw):
        kw.pop("id2label", None), kw.pop("label2id", None)
    for k in HF_DROPPED:
        kw.pop(k, None)
    config = cfg_class(**kw)
    if name[:1].isupper():
        return _hf_class(name)(config)  # the class itself, as the user built it
    from transformers import AutoModelForImageClassification

    return HFImageClassifier(AutoModelForImageClassification.from_config(config, trust_remote_code=False))


def hf_spec_from_folder(folder: Path) -> tuple[str, dict[str, Any]]:
    """``(model_type, settings)`` of a local folder's ``config.json`` (read as JSON, nothing run)."""
    path = folder / "config.json"
    if not path.is_file():
        raise ValueError(f"{folder} holds no config.json: give hf:<folder with config.json> or hf:<model type>")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes: not a model config")
    try:
        cfg = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"{path} is not a JSON config ({type(err).__name__}): re-export it with "
                         "config.save_pretrained(folder)") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_type"), str):
        raise ValueError(f"{path} records no 'model_type': it is not a Hugging Face model config")
    return cfg["model_type"], {k: v for k, v in cfg.items() if k not in HF_DROPPED}


def hf_class_name(model: nn.Module) -> str | None:
    """The class name of ``model`` if it is one of transformers' image-classification classes
    (:func:`hf_class_names`), else None. Never imports transformers for a model of another library."""
    transformers = sys.modules.get("transformers")
    name = type(model).__name__
    if transformers is None or not type(model).__module__.startswith("transformers.models."):
        return None
    try:
        return name if _hf_class(name) is type(model) else None
    except ValueError:
        return None


def hf_settings(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(name, settings)`` that rebuild ``model``: its model type for an :class:`HFImageClassifier`,
    its class name for a bare transformers model; the settings are its config's fields that differ
    from the defaults, minus the bookkeeping (``model_type``, ``architectures`` ...)."""
    inner = model.model if isinstance(model, HFImageClassifier) else model
    config: Any = getattr(inner, "config")
    d = json.loads(json.dumps(config.to_diff_dict(), default=str))  # plain JSON (id2label's int keys as text)
    name = str(config.model_type) if isinstance(model, HFImageClassifier) else type(model).__name__
    return name, {k: v for k, v in d.items() if k not in HF_DROPPED}


def hf_config_json(model: nn.Module) -> dict[str, Any] | None:
    """The ``config.json`` that Hugging Face tools read beside ``model.safetensors`` for a bare
    transformers image classifier (``from_pretrained(folder)``), else None."""
    name = hf_class_name(model)
    if name is None:
        return None
    _, settings = hf_settings(model)
    return {**settings, "model_type": str(getattr(model, "config").model_type), "architectures": [name]}

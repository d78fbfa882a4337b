"""What a :class:`~workbench.models.spec.ModelSpec` may build: the closed set, the trust rule
and the size bound.

Opening a model folder never calls code that the folder chooses. A builder is data from a
closed set, built without asking:

- ``torchvision:<name>``: torchvision's model registry (or a model class of ``torchvision.models``);
- ``timm:<name>``: timm's model registry, random weights (nothing is downloaded);
- ``hf:<config>``: a Hugging Face image-classification config (``config.json``), built with
  ``from_config`` (no remote or local code, nothing downloaded);
- the project's own architectures (``small-resnet``, ``resnet18``).

Any other ``module:factory`` runs code that its author chose: it is built only when the caller
says so (``trust_code=True`` in Python, ``--trust-code`` on the command line), like
``trust_remote_code`` in transformers. A factory is one name defined in its module: a dotted
attribute path (``torch:os.system``) and a standard-library module are refused whatever
``trust_code`` says. Every build is counted on the meta device first (no memory) and refused
above :data:`MAX_PARAMETERS`.
"""
from __future__ import annotations

import re
import sys
from typing import Any, Callable

import torch
import torch.nn as nn

# Largest model a spec may build: 1e9 parameters (4 GB in float32), about 3000x the shipped
# small ResNet (309k) and 90x a CIFAR ResNet-18 (11M). Widths of 1e6 would otherwise ask for ~36 TB.
MAX_PARAMETERS = 1_000_000_000
TRUST_FLAGS = "trust_code=True (Python) or --trust-code (command line)"
CLOSED_SET = "torchvision:<name>, timm:<name>, hf:<config folder or model type> and small-resnet / resnet18"

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

__all__ = ["CLOSED_SET", "MAX_PARAMETERS", "TRUST_FLAGS", "check_factory_name", "check_size", "count_parameters",
           "on_meta", "refuse_untrusted"]


def check_factory_name(target: str) -> None:
    """``module.path:factory`` with one plain name after the colon, outside the standard library.

    Raises:
        ValueError: a dotted attribute path, a malformed name, ``__main__``, or a standard-library
            or builtins module (refused even with trust: none of them builds a model).
    """
    mod, _, attr = target.partition(":")
    if "." in attr:
        raise ValueError(f"builder {target!r} names an attribute path ({attr}) after the module: refused. A model "
                         "factory is one function or class defined in its module (mypkg.models:make_model)")
    if not _MODULE.fullmatch(mod) or not attr.isidentifier():
        raise ValueError(f"builder {target!r} is not module:factory (e.g. mypkg.models:make_model)")
    if mod == "__main__":
        raise ValueError(f"{target!r} is not importable: define the factory in a module (e.g. mypkg/models.py) "
                         "and give it as mypkg.models:make_model")
    root = mod.split(".")[0]
    if root in sys.stdlib_module_names or root == "builtins":
        raise ValueError(f"builder {target!r} names a Python standard-library callable: refused (no standard-library "
                         "function builds a model, and loading would call it with the card's arguments)")


def refuse_untrusted(target: str) -> ValueError:
    """The refusal of a ``module:factory`` built without trust (names the factory and the flag)."""
    return ValueError(f"builder {target!r} is code that the model card or --model names, and it is not run "
                      f"unless you trust its source: pass {TRUST_FLAGS}. Built without asking: {CLOSED_SET}")


def on_meta() -> bool:
    """Whether new tensors go to the meta device (inside ``with torch.device("meta")``)."""
    return torch.empty(0).device.type == "meta"


def count_parameters(build: Callable[[], Any]) -> int | None:
    """Parameters and buffers of the model ``build()`` makes, counted on the meta device (no
    memory); None if the builder cannot run there. ValueError from the builder propagates."""
    try:
        with torch.device("meta"):
            model = build()
    except ValueError:
        raise
    except Exception:  # noqa: BLE001 - some builders cannot run on the meta device
        return None
    if not isinstance(model, nn.Module):
        return None
    return sum(int(p.numel()) for p in model.parameters()) + sum(int(b.numel()) for b in model.buffers())


def check_size(n: int | None, what: str) -> None:
    """Refuse a model of more than :data:`MAX_PARAMETERS` parameters and buffers."""
    if n is not None and n > MAX_PARAMETERS:
        raise ValueError(f"{what} describes a model of {n:.3g} parameters and buffers, above the {MAX_PARAMETERS:.0e} "
                         "that the workbench builds (workbench.models.safety.MAX_PARAMETERS); its arguments (e.g. "
                         "widths) are corrupted or absurd")

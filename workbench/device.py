"""The one place where the compute device is chosen and checked."""
from __future__ import annotations

import os

import torch

DEVICE_ENV = "WORKBENCH_DEVICE"


def available_devices() -> list[str]:
    """The devices this machine can compute on: ``cpu``, then ``cuda``, ``cuda:0`` ... and ``mps`` where present."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def resolve_device(device: str | torch.device | None = None, what: str = "device") -> torch.device:
    """``device`` checked against this machine (None: :func:`default_device`).

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a :class:`torch.device`.
        what: how the caller names the setting in messages (``"--device"`` on the command line).
    Raises:
        ValueError: the device is unknown or absent here; the message names the valid choices.
    """
    if device is None:
        return default_device()
    text = str(device)
    choices = available_devices()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{what} {text!r} is not a device; choose one of: {', '.join(choices)}") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what} {text!r} is not available: PyTorch sees no CUDA GPU on this machine; "
                         f"choose one of: {', '.join(choices)}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{what} {text!r} is not available: this machine has {torch.cuda.device_count()} CUDA "
                         f"GPU(s); choose one of: {', '.join(choices)}")
    if dev.type not in ("cuda", "mps") or (dev.type == "mps" and "mps" not in choices):
        raise ValueError(f"{what} {text!r} is not available for computing here; choose one of: {', '.join(choices)}")
    return dev


def default_device() -> torch.device:
    """CUDA when present (unless ``WORKBENCH_DEVICE`` says otherwise, checked as :func:`resolve_device`), else CPU."""
    env = os.environ.get(DEVICE_ENV)
    if env:
        return resolve_device(env, what=DEVICE_ENV)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

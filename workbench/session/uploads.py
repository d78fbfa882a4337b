"""Images of the user's own for an :class:`~workbench.session.EditSession`: a PNG or JPEG file
decoded into the model's input, and normalised like the session's data."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from ..data import DataBundle



class Uploads:
    """Turns uploaded files into model inputs.

    Args:
        model: the session's model (its ``input_shape`` when it records one).
        bundle: the session's data (shape and normalisation), or None.
        card: the model's card (``mean``/``std`` when there is no data).
        device: where :meth:`normalize` puts the images.
    """

    def __init__(self, model: nn.Module, bundle: DataBundle | None, card: Mapping[str, Any],
                 device: torch.device) -> None:
        self.model, self.bundle, self.card, self.device = model, bundle, card, device

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` the model takes."""
        shape = getattr(self.model, "input_shape", None)
        if shape is None and self.bundle is not None:
            shape = self.bundle.input_shape
        if shape is None:
            raise ValueError("the model's input shape is unknown; give the session a data set")
        return tuple(int(v) for v in shape)  # type: ignore[return-value]

    def image_from_bytes(self, data: bytes, name: str = "image") -> torch.Tensor:
        """Decode a PNG or JPEG file into the model's input: ``(C, H, W) uint8``.

        The image is converted to 8 bits by its value range and to the model's channels
        (grayscale or RGB), resized to its height and width (aspect ratio kept by
        centre-cropping first; :func:`workbench.data.decode.decode_image`) and, for a model
        trained on light objects on black (Fashion-MNIST's mean is dark), inverted when its
        background is light.

        Raises:
            ValueError: not a PNG or JPEG, more pixels than ``data.decode.MAX_UPLOAD_PIXELS``
                (read from the header, before decoding), or a file that cannot be decoded; the
                message says which in plain words.
        """
        from ..data.decode import decode_image

        c, h, w = self.input_shape
        t = decode_image(data, name, c, (h, w))
        mean = self.bundle.mean if self.bundle is not None else self.card.get("mean")
        if mean and sum(mean) / len(mean) < 0.5:
            border = torch.cat([t[:, 0], t[:, -1], t[:, :, 0], t[:, :, -1]], dim=1).float().mean()
            if border > 127:
                t = 255 - t
        return t

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` or ``(N, C, H, W) uint8`` -> normalised float input on the session's device."""
        if self.bundle is not None:
            return self.bundle.normalize(raw.to(self.device))
        mean, std = self.card.get("mean"), self.card.get("std")
        if not mean or not std:
            raise ValueError("the normalisation of this model is unknown; give the session its data set")
        from ..data.bundle import normalize

        return normalize(raw.to(self.device), tuple(mean), tuple(std))

"""Decode an uploaded PNG or JPEG into a model's input, within a pixel budget.

* Only the PNG and JPEG decoders ever see the bytes: the type is read from the file's first
  bytes, and Pillow is told to try those two formats alone.
* The size is read from the header, before any pixel is decoded: an image above
  :data:`MAX_UPLOAD_PIXELS` is refused in plain words (a 688 KB PNG of 13,300 x 13,300 pixels
  decodes to 177 million pixels, +1 GiB). Pillow's own decompression-bomb error becomes the
  same ValueError.
* Every mode becomes 8-bit grayscale or RGB by its value range: 16-bit grayscale (``I;16``,
  and ``I`` as Pillow opens 16-bit PNGs) is scaled by 255/65535, float (``F``) is read as 0..1
  when it lies there (else as 0..255), transparency (``LA``, ``RGBA``, ``P`` with a transparent
  colour) is laid over white as an image viewer shows it, and ``CMYK``/``P``/``1`` are converted
  by Pillow.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch

IMAGE_TYPES = ("png", "jpeg", "jpg")
# Width x height of the largest upload decoded: 25 million pixels, a 6000 x 4000 camera photo.
# At this size a decode peaks at +146 MiB and 0.25 s (PNG; a JPEG decodes at a reduced scale,
# +5 MiB), and a 177-million-pixel PNG is refused in 0.01 s (`python benchmarks/upload_decode.py`).
MAX_UPLOAD_PIXELS = 25_000_000
# The first bytes of files people try to upload, for a message that names the type.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
          (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%PDF", "PDF"), (b"%!PS", "PostScript"))


def sniff(data: bytes) -> str:
    """The file type its first bytes say: ``"png"``, ``"jpeg"``, another name, or ``""``."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((kind for magic, kind in _MAGIC if data.startswith(magic)), "")


def _budget_error(name: str, size: tuple[int, int] | None, out: tuple[int, int]) -> ValueError:
    from PIL import Image

    what = (f"{size[0]:,} x {size[1]:,} pixels ({size[0] * size[1] / 1e6:.1f} million)" if size
            else f"more than {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} million pixels")
    return ValueError(f"{name} is {what}; the workbench takes images of at most {MAX_UPLOAD_PIXELS / 1e6:g} "
                      f"million pixels (for example 5000 x 5000). Shrink it first (the model sees it resized to "
                      f"{out[1]} x {out[0]} anyway), then upload the PNG or JPEG again")


def _unreadable(name: str, err: BaseException) -> ValueError:
    return ValueError(f"{name}: this file could not be read as an image ({err}); upload a PNG or JPEG file")


def _resized(img, channels: int, size: tuple[int, int]):
    """``img`` (any Pillow mode) centre-cropped to a square, resized (Lanczos) to ``size = (H, W)``
    and made 8-bit ``L`` (channels 1) or ``RGB`` by its value range. Resizing comes before the
    8-bit conversion of deep and transparent modes: only the small image is converted."""
    from PIL import Image

    h, w = size
    side = min(img.width, img.height)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    box = (left, top, left + side, top + side)
    target = "L" if channels == 1 else "RGB"
    mode = img.mode
    if mode.startswith("I") or mode == "F":  # 16-bit grayscale (I;16, or I as Pillow opens it), float
        lo, hi = img.getextrema() if mode == "F" else (0, 65535)
        scale = 255.0 if mode == "F" and lo >= 0.0 and hi <= 1.0 else 1.0 if mode == "F" else 255.0 / 65535.0
        a = np.asarray(img.convert("F").resize((w, h), Image.Resampling.LANCZOS, box=box), dtype=np.float64)
        a = np.nan_to_num(a * scale, nan=0.0, posinf=255.0, neginf=0.0)
        return Image.fromarray(np.rint(np.clip(a, 0, 255)).astype(np.uint8)).convert(target)
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in img.info:  # over white, as viewers show it
        small = img.convert("RGBA").resize((w, h), Image.Resampling.LANCZOS, box=box)
        return Image.alpha_composite(Image.new("RGBA", (w, h), (255, 255, 255, 255)), small).convert(target)
    if mode not in ("L", "RGB"):
        img = img.convert("RGB")  # CMYK, P, 1, YCbCr...
    return img.convert(target).resize((w, h), Image.Resampling.LANCZOS, box=box)


def decode_image(data: bytes, name: str, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """A PNG or JPEG file's bytes as a ``(channels, H, W) uint8`` image, ``size = (H, W)``.

    The image is converted to 8 bits by its value range (see the module doc), to ``channels``
    (1: grayscale, 3: RGB), centre-cropped to a square and resized (Lanczos) to ``size``.

    Raises:
        ValueError: not a PNG or JPEG (by name or content), more than :data:`MAX_UPLOAD_PIXELS`
            pixels, or a file that cannot be decoded; the message says which, in plain words.
    """
    from PIL import Image, UnidentifiedImageError

    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext and ext not in IMAGE_TYPES:
        raise ValueError(f"{name}: .{ext} files are not supported; upload a PNG or JPEG image")
    kind = sniff(data)
    if kind and kind not in IMAGE_TYPES:
        raise ValueError(f"{name} is a {kind} file; upload a PNG or JPEG image")
    h, w = size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])  # reads the header only
    except Image.DecompressionBombError:
        raise _budget_error(name, None, size) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise _unreadable(name, err) from None
    if opened.width * opened.height > MAX_UPLOAD_PIXELS:
        raise _budget_error(name, opened.size, size)
    if opened.format == "JPEG":  # decode at the smallest DCT scale still >= the model's input
        opened.draft("L" if channels == 1 else "RGB", (max(h, w), max(h, w)))
    try:
        opened.load()
    except (OSError, ValueError, SyntaxError) as err:
        raise _unreadable(name, err) from None
    img = _resized(opened, channels, (h, w))
    return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(h, w, -1).permute(2, 0, 1).contiguous()

"""An ImageFolder tree (``root/<class>/<image>``) as a streamed :class:`~workbench.data.source.DatasetSource`,
read at a given size and channel count, or at the images' own size."""
from __future__ import annotations

from pathlib import Path

from .source import DatasetSource

__all__ = ["open_folder"]


def open_folder(root: str | Path, *, size: tuple[int, int] | None = None, channels: int = 3
                ) -> tuple[DatasetSource, tuple[str, ...]]:
    """``(source, class names)`` of every image under ``root``, in ImageFolder order.

    Args:
        size: ``(H, W)`` every image is resized to (PIL, antialiased, as
            :func:`~workbench.data.load_image_folder` does). None: the images' own size; they must
            share it (an image of another size raises a ValueError, naming its file, when read).
        channels: 3 (RGB) or 1 (grayscale).
    Raises:
        FileNotFoundError: ``root`` is not a folder of class folders with images.
        ValueError: a bad size or channel count.
    """
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ImageFolder root {root} does not exist; it must hold one folder per class")
    if channels not in (1, 3):
        raise ValueError(f"an ImageFolder is read with 1 (grayscale) or 3 (RGB) channels, not {channels}")
    if size is not None and not (len(size) == 2 and all(isinstance(v, int) and v >= 1 for v in size)):
        raise ValueError(f"size must be (H, W) positive integers, got {size!r}")
    tf = ([v2.Resize(tuple(size))] if size is not None else []) + ([v2.Grayscale()] if channels == 1 else [])
    try:
        ds = ImageFolder(str(root), transform=v2.Compose([*tf, v2.PILToTensor()]))
    except (FileNotFoundError, RuntimeError) as err:
        raise FileNotFoundError(f"{root} is not an ImageFolder tree ({err}); it must hold one folder per class "
                                "with the images inside") from err
    return DatasetSource(ds), tuple(ds.classes)

"""Data sets, normalisation, class names and seeded splits; :func:`as_bundle` adapts any image data."""
from .adapt import as_bundle, check_labels, dataset_to_tensors
from .bundle import DataBundle, min_max, normalize
from .datasets import (
    CIFAR10_CLASSES,
    FASHION_CLASSES,
    default_cache_dir,
    load_cifar10,
    load_dataset,
    load_fashion_mnist,
    load_for_card,
    load_image_folder,
)
from .folder import open_folder
from .idx import read_idx
from .source import DatasetSource, ImageSource, StreamedSplitError, TensorSource, default_workers
from .thumbnails import THUMBNAIL_SIZE, Thumbnails
from .transforms import random_crop_flip

__all__ = [
    "as_bundle", "check_labels", "dataset_to_tensors", "min_max", "CIFAR10_CLASSES", "FASHION_CLASSES", "DataBundle", "default_cache_dir", "load_cifar10",
    "load_dataset", "load_fashion_mnist", "load_for_card", "load_image_folder", "normalize", "read_idx",
    "random_crop_flip", "DatasetSource", "ImageSource", "StreamedSplitError", "TensorSource", "Thumbnails",
    "THUMBNAIL_SIZE", "default_workers", "open_folder",
]

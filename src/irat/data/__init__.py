"""Datasets: official-format readers, download with MD5, seeded splits, on-device batching."""

from .datasets import SPECS, Arrays, DatasetSpec, get_spec, load_arrays, register_dataset
from .device_data import DeviceData, Splits, crop_flip, load_splits, split_indices

__all__ = [
    "SPECS",
    "Arrays",
    "DatasetSpec",
    "DeviceData",
    "Splits",
    "crop_flip",
    "get_spec",
    "load_arrays",
    "load_splits",
    "register_dataset",
    "split_indices",
]

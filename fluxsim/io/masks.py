"""Reading a segmentation mask of a particle from a file (``geometry.mask_file``): ``.npy`` or an image."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np


@functools.lru_cache(maxsize=16)
def read_mask(path: str) -> np.ndarray:
    """A segmentation mask as a 2-D bool array: ``.npy`` (bools, or the numbers 0 / 1) or an image file read by
    matplotlib (grey level above the middle of its range: the particle).

    Raises:
        OSError / ValueError: the file cannot be read, or it holds no 2-D mask.
    """
    file = Path(path).expanduser()
    if file.suffix.lower() == ".npy":
        data = np.load(file, allow_pickle=False)
        if data.dtype != bool:
            if data.dtype.kind not in "iuf" or not np.all(np.isin(data, (0, 1))):
                raise ValueError("a .npy mask must hold bools or the numbers 0 and 1")
            data = data != 0
    else:
        import matplotlib.image as mpimg

        image = np.asarray(mpimg.imread(file), dtype=float)
        grey = image[..., :3].mean(axis=-1) if image.ndim == 3 else image
        lo, hi = float(grey.min()), float(grey.max())
        data = grey > 0.5 * (lo + hi) if hi > lo else np.zeros(grey.shape, bool)
    if data.ndim != 2:
        raise ValueError(f"a mask must be a 2-D image, got shape {data.shape}")
    return data

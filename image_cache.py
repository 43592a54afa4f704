"""An image folder decoded once: every image of a split resized to one fixed square size and kept as a
uint8 array on disk (``.npy``, memory-mapped), so training reads pixels instead of decoding JPEGs.

On a 2-core CPU, decoding and resizing a JPEG for every training image of every epoch costs about as
much as the ResNet-50 step itself; decoded once, the images are cropped and flipped a whole batch at a
time (``batched_data.BatchedImageLoader``). Each image is resized so that its shorter side is ``size``
pixels, then centre-cropped to ``size`` x ``size``: the random-resized crops of training and the centre
crop of evaluation are then cut from that square (for Imagenette's square 224 px copy, the whole image).

The cache is named by a fingerprint of the split (every file's relative path, size and modification
time) and of ``size``: a changed folder gets a new cache, built at its first use; the old one is removed.

    images, labels, classes = cached_split("~/imagenette", "train", size=160, cache_dir="data/image_cache")
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from dataset import SKIPPED_LABEL, ImageFiles, image_folder
from progress import progress_bar

VERSION = 1  # part of the fingerprint: a change of how images are decoded or resized rebuilds every cache


def fingerprint(paths, size):
    """A hex digest of the files (path, byte size, modification time) and the cache size."""
    digest = hashlib.sha256(f"v{VERSION} {size}\n".encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def square(image, size):
    """A uint8 H x W x 3 image as ``size`` x ``size``: shorter side resized to ``size`` (PIL's bilinear, which
    antialiases), then the centre square."""
    image = Image.fromarray(image)
    scale = size / min(image.size)
    resized = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                           Image.BILINEAR)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)))


def build(paths, labels, size, target, strict=False, progress=None):
    """Decode every image into ``target`` (a ``.npy`` file, written whole, then renamed) and return the
    labels. Files are read by ``dataset.ImageFiles``, so an unreadable one is skipped as in the folder path
    (a warning naming it, ``SKIPPED_LABEL``, black pixels), or stops the build with ``strict`` or after 20
    failures in a row (a wrong folder), before any training."""
    source = ImageFiles(paths, labels, strict)
    labels = np.array(labels, dtype=np.int64)
    partial = target.with_suffix(".part.npy")
    images = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
    try:
        for index in progress_bar(range(len(paths)), progress=progress, desc=f"caching {target.name}", unit="img"):
            image, labels[index] = source[index]
            if labels[index] != SKIPPED_LABEL:
                images[index] = square(image, size)
        images.flush()
    except BaseException:
        partial.unlink()
        raise
    del images
    partial.replace(target)
    return labels


def cached_split(root, split, size, cache_dir, class_names=None, strict=False, progress=None):
    """``(images, labels, class_names)`` of ``<root>/<split>``: the images as a read-only memory-mapped uint8
    array N x ``size`` x ``size`` x 3, built on first use (and whenever the folder changed) under
    ``cache_dir``. ``class_names`` (the training split's) fixes the label order, as ``dataset.image_folder``;
    ``strict`` stops at the first unreadable image (``--strict_images``)."""
    paths, labels, class_names = image_folder(root, split, class_names)
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = f"{Path(root).expanduser().resolve().name}-{split}-{size}px"
    target = cache_dir / f"{name}-{fingerprint(paths, size)}.npy"
    meta = target.with_suffix(".json")
    if not (target.exists() and meta.exists()):
        for stale in cache_dir.glob(f"{name}-*"):  # the same split at the same size, from an older folder
            stale.unlink()
        labels = build(paths, labels, size, target, strict, progress)
        meta.write_text(json.dumps({"root": str(root), "split": split, "size": size, "images": len(paths),
                                    "classes": class_names, "labels": labels.tolist()}) + "\n")
    stored = json.loads(meta.read_text())
    return np.load(target, mmap_mode="r"), np.asarray(stored["labels"], dtype=np.int64), stored["classes"]

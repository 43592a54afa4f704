"""Data for the lessons: sources, the Albumentations wrapper and transform presets.

Sources give (image, label) pairs as uint8 HWC RGB numpy arrays:
* ``load_cifar``: CIFAR-10/100 from a folder of ``train.npz``/``test.npz``, a torchvision-format folder,
  or torchvision's download (in that order);
* ``image_folder``: an ImageNet-style ``<root>/<split>/<class>/*.JPEG`` tree (``image_folder_datasets``
  builds both splits with their transforms; ``write_image_folder`` writes one);
* ``SyntheticImages``: a small, seeded, learnable data set of coloured shapes for offline runs.

``AlbumentationsDataset`` turns any source plus an Albumentations ``Compose`` into a torch Dataset for a
DataLoader. The fast path, ``BatchedCifarLoader`` (the whole uint8 data set as one tensor on the training
device, each batch augmented with tensor operations) and test-time augmentation, is in ``batched_data.py``.
"""
import os
import pickle
import warnings
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image

from seeding import derive_seed
from specification import TransformedDataset  # noqa: F401 (the specification's name)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# a folder's batch files and their md5 sums are those torchvision's class ("torchvision") lists
_CIFAR = {
    "cifar10": {"env": "CIFAR10_DIR", "num_classes": 10, "torchvision": "CIFAR10", "folder": "cifar-10-batches-py",
                "key": b"labels"},
    "cifar100": {"env": "CIFAR100_DIR", "num_classes": 100, "torchvision": "CIFAR100", "folder": "cifar-100-python",
                 "key": b"fine_labels"},
}


class DataNotFoundError(FileNotFoundError):
    """The data set is not on disk and could not be downloaded."""


class DataFormatError(ValueError):
    """Data files exist but do not hold what the loader expects."""


# ----------------------------------------------------------------------------------------------- CIFAR
def validate_arrays(images, labels, num_classes, source="arrays"):
    """Check uint8 N x H x W x 3 images and integer labels in [0, num_classes); raise DataFormatError."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DataFormatError(f"{source}: 'images' must be a uint8 array of shape (N, H, W, 3) (HWC, RGB); "
                              f"got {getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}")
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(f"{source}: 'labels' must be a 1-D integer array; "
                              f"got {getattr(labels, 'dtype', type(labels))} {getattr(labels, 'shape', '')}")
    if len(images) != len(labels):
        raise DataFormatError(f"{source}: {len(images)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataFormatError(f"{source}: labels span [{labels.min()}, {labels.max()}], outside [0, {num_classes}) "
                              f"for a {num_classes}-class data set; check num_classes or the file")


def load_npz(path, num_classes):
    """Read ``images`` (uint8 N x H x W x 3) and ``labels`` (int) from an ``.npz`` file and validate them."""
    try:
        with np.load(path) as data:
            missing = {"images", "labels"} - set(data.files)
            if missing:
                raise DataFormatError(f"{path}: missing key(s) {sorted(missing)}; found {sorted(data.files)}. "
                                      "Expected 'images' (uint8 N x H x W x 3) and 'labels' (int, N).")
            images, labels = data["images"], data["labels"]
    except (OSError, ValueError, EOFError) as error:
        if isinstance(error, DataFormatError):
            raise
        raise DataFormatError(f"{path}: not a readable .npz file ({error}); re-create or re-download it") from error
    validate_arrays(images, labels, num_classes, source=str(path))
    return images, labels.astype(np.int64)


def _torchvision_cifar(spec):
    import torchvision
    return getattr(torchvision.datasets, spec["torchvision"])


def _batch_files(spec, train):
    """``[(file name, md5), ...]`` of one split, as torchvision's CIFAR class lists them."""
    dataset_class = _torchvision_cifar(spec)
    return dataset_class.train_list if train else dataset_class.test_list


def check_cifar_folder(folder, name="cifar10", train=True):
    """torchvision's own integrity check of one split of a torchvision-format folder such as
    ``cifar-10-batches-py``: ``check_integrity`` of each batch file against the md5 sum torchvision's
    CIFAR10 / CIFAR100 class lists. Raises ``DataFormatError`` naming each missing or damaged file and
    how to get a good copy."""
    from torchvision.datasets.utils import check_integrity
    spec, folder, bad = _CIFAR[name], Path(folder), []
    for file, md5 in _batch_files(spec, train):
        path = folder / file
        if not path.is_file():
            bad.append(f"{file} (missing)")
        elif not check_integrity(path, md5):
            bad.append(f"{file} ({path.stat().st_size:,} bytes, md5 differs)")
    if bad:
        raise DataFormatError(
            f"{folder}: torchvision's integrity check failed for {', '.join(bad)}: incomplete or damaged. "
            f"Get a good copy: delete the folder {folder} and run once with network access (torchvision "
            f"downloads {name} again and checks it), or set {spec['env']} to a folder with a good copy "
            "(or pass data_dir).")


def _load_torchvision_folder(folder, name, train):
    check_cifar_folder(folder, name, train)
    spec, images, labels = _CIFAR[name], [], []
    for file_name, _ in _batch_files(spec, train):
        with open(folder / file_name, "rb") as file:
            entry = pickle.load(file, encoding="bytes")
        images.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(entry[spec["key"]], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_cifar(name="cifar10", data_dir=None, train=True, download=True):
    """CIFAR-10 or CIFAR-100 as ``(images uint8 N x 32 x 32 x 3 RGB, labels int64 N)``.

    ``name="synthetic"`` gives ``SyntheticImages`` arrays instead (384 training, 256 test images, no
    files), the stand-in the notebooks use in SMOKE mode.

    Looks, in order, for: ``<data_dir>/train.npz`` / ``test.npz`` (keys ``images`` and ``labels``); a
    torchvision-format folder ``<data_dir>/cifar-10-batches-py`` (md5-checked first: ``check_cifar_folder``);
    torchvision's download into ``data_dir``. ``data_dir`` defaults to the ``CIFAR10_DIR``
    (``CIFAR100_DIR``) environment variable, else ``./data``.
    """
    if name == "synthetic":
        data = SyntheticImages(n=384 if train else 256, seed=0 if train else 1)
        return data.images, data.labels
    if name not in _CIFAR:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(_CIFAR) + ['synthetic']}")
    spec = _CIFAR[name]
    root = Path(data_dir or os.environ.get(spec["env"]) or "data").expanduser()
    npz = root / ("train.npz" if train else "test.npz")
    if npz.is_file():
        return load_npz(npz, spec["num_classes"])
    folder = root / spec["folder"]
    if (folder / _batch_files(spec, train=False)[0][0]).is_file():
        return _load_torchvision_folder(folder, name, train)
    if download:
        try:
            dataset = _torchvision_cifar(spec)(str(root), train=train, download=True)
        except Exception as error:  # URLError, timeouts, SSL errors, a broken archive
            raise DataNotFoundError(_missing_cifar_message(name, root, spec, f"the download failed: {error}")) from None
        return np.asarray(dataset.data, dtype=np.uint8), np.asarray(dataset.targets, dtype=np.int64)
    raise DataNotFoundError(_missing_cifar_message(name, root, spec, "download=False"))


def _missing_cifar_message(name, root, spec, reason):
    return (f"{name} not found in {root} and {reason}. Provide it in one of three ways:\n"
            f"  1. download: run once with network access (torchvision saves it under {root});\n"
            f"  2. folder: put torchvision's extracted '{spec['folder']}' folder in {root};\n"
            f"  3. .npz: put train.npz and test.npz (keys 'images' uint8 N x 32 x 32 x 3, 'labels' int64) in a "
            f"folder and set {spec['env']}=<folder> (or pass data_dir).")


def class_names(name):
    """The class names of ``"cifar10"``, ``"cifar100"`` (as numbers) or ``"synthetic"``."""
    if name == "synthetic":
        return SyntheticImages.classes
    return CIFAR10_CLASSES if name == "cifar10" else tuple(str(i) for i in range(_CIFAR[name]["num_classes"]))


def channel_stats(images):
    """Per-channel mean and std of uint8 HWC images, scaled to [0, 1] (computed in float64)."""
    channels = [images[..., c] for c in range(images.shape[-1])]
    mean = tuple(float(ch.mean(dtype=np.float64)) / 255 for ch in channels)
    std = tuple(float(ch.std(dtype=np.float64)) / 255 for ch in channels)
    return mean, std


# -------------------------------------------------------------------------------------- synthetic data
class SyntheticImages:
    """A seeded, learnable data set of coloured shapes: uint8 ``images`` (N x size x size x 3), ``labels``.

    Class ``c`` draws shape ``c % 5`` (disc, square, ring, horizontal bar, vertical bar) in colour family
    ``c // 5`` (warm or cool) at a random place and size over a noisy background. A small CNN learns it
    well above chance in one epoch; it stands in for CIFAR-10 in tests and SMOKE runs.
    """

    classes = ("warm disc", "warm square", "warm ring", "warm h-bar", "warm v-bar",
               "cool disc", "cool square", "cool ring", "cool h-bar", "cool v-bar")

    def __init__(self, n=1000, size=32, seed=0, num_classes=10):
        if not 2 <= num_classes <= 10:
            raise ValueError(f"num_classes must be in [2, 10], got {num_classes}")
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, num_classes, n).astype(np.int64)
        self.classes = self.classes[:num_classes]
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        cy = rng.uniform(0.3, 0.7, (n, 1, 1)) * size
        cx = rng.uniform(0.3, 0.7, (n, 1, 1)) * size
        r = rng.uniform(0.18, 0.3, (n, 1, 1)) * size
        dy, dx = np.abs(yy - cy), np.abs(xx - cx)
        dist = np.sqrt(dy ** 2 + dx ** 2)
        shapes = np.stack([dist < r, np.maximum(dy, dx) < r * 0.8, (dist < r) & (dist > r * 0.55),
                           (dy < r * 0.3) & (dx < r * 1.2), (dx < r * 0.3) & (dy < r * 1.2)], axis=1)
        mask = shapes[np.arange(n), self.labels % 5]
        warm = rng.uniform([0.7, 0.1, 0.0], [1.0, 0.5, 0.2], (n, 3))
        cool = rng.uniform([0.0, 0.3, 0.7], [0.2, 0.7, 1.0], (n, 3))
        colour = np.where((self.labels // 5 == 0)[:, None], warm, cool)
        background = rng.uniform(0.2, 0.6, (n, 1, 1, 3)) + rng.normal(0, 0.08, (n, size, size, 3))
        images = np.where(mask[..., None], colour[:, None, None, :], background)
        self.images = (np.clip(images, 0, 1) * 255).astype(np.uint8)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])


# ------------------------------------------------------------------------------------ ImageNet folders
def image_folder(root, split="train", class_names=None, max_samples=None, seed=0):
    """List an ImageFolder split: ``(paths, labels, class_names)``.

    ``class_names`` (e.g. from the train split) fixes the label order; a split whose class folders differ
    raises an error naming both sets. Files that are not images are skipped with one warning that counts
    them. ``max_samples`` keeps a class-balanced subset chosen with ``seed``.
    """
    split_dir = Path(root).expanduser() / split
    expected = f"expected the ImageNet layout {Path(root) / split}/<class>/<image>.JPEG (folders train/ and val/)"
    if not split_dir.is_dir():
        raise DataNotFoundError(f"{split_dir} does not exist; {expected}")
    found = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise DataFormatError(f"{split_dir} holds no class folders; {expected}")
    if class_names is not None and list(class_names) != found:
        extra, missing = sorted(set(found) - set(class_names)), sorted(set(class_names) - set(found))
        raise DataFormatError(f"class folders of {split_dir} differ from the training classes: "
                              f"extra {extra[:5]}, missing {missing[:5]}")
    paths, labels, skipped = [], [], 0
    for label, name in enumerate(found):
        for file in sorted((split_dir / name).iterdir()):
            if file.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(str(file))
                labels.append(label)
            elif file.is_file():
                skipped += 1
    if skipped:
        warnings.warn(f"{split_dir}: skipped {skipped} file(s) that are not images ({', '.join(IMAGE_EXTENSIONS)})")
    if not paths:
        raise DataFormatError(f"{split_dir} has class folders but no images; {expected}")
    labels = np.asarray(labels, dtype=np.int64)
    if max_samples is not None and max_samples < len(paths):
        keep = balanced_indices(labels, max_samples, seed)
        paths, labels = [paths[i] for i in keep], labels[keep]
    return paths, labels, found


def balanced_indices(labels, max_samples, seed=0):
    """Sorted indices of a class-balanced random subset: ``max_samples // classes`` items of each class
    (at least one; fewer where a class has fewer), chosen with ``seed``."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    per_class = max(1, max_samples // len(classes))
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]))


HOLDOUT_SEED = 0  # the held-out validation split is the same for every run's seed


def holdout_split(labels, size, seed=HOLDOUT_SEED):
    """``(train_indices, holdout_indices)``: a fixed, class-balanced validation split of a training set.
    ``size`` is a number of images (``size // classes`` of each class) or, below 1, a share of each class
    (``0.1``: 10% of every class). The split depends on ``seed`` only, never on a run's seed, so every run
    of an experiment tunes on the same images; both index arrays are sorted."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if not 0 < size < len(labels):
        raise ValueError(f"a held-out split of {size:g} images from {len(labels)} training images is impossible")
    rng = np.random.default_rng(seed)
    held = []
    for cls, count in zip(classes, counts):
        keep = round(count * size) if size < 1 else int(size) // len(classes)
        if not 0 < keep < count:
            raise ValueError(f"a held-out split of {size:g} leaves class {cls} ({count} images) {keep} held out: "
                             "choose a split that keeps some of every class on both sides")
        held.append(rng.permutation(np.flatnonzero(labels == cls))[:keep])
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), held), held


def split_arrays(images, labels, size):
    """``((train_images, train_labels), (held_images, held_labels))``: ``holdout_split`` applied to arrays."""
    kept, held = holdout_split(labels, size)
    return (images[kept], labels[kept]), (images[held], labels[held])


def write_image_folder(images, labels, class_names, root, split, quality=90):
    """Save uint8 HWC images as JPEGs in the ImageFolder layout ``<root>/<split>/<class>/<index>.JPEG``
    (spaces in class names become underscores); returns the split folder. Makes small ImageNet-style
    folders for tests and SMOKE runs, e.g. from ``SyntheticImages``."""
    split_dir = Path(root) / split
    folders = [name.replace(" ", "_") for name in class_names]
    for name in folders:
        (split_dir / name).mkdir(parents=True, exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(np.asarray(image)).save(split_dir / folders[int(label)] / f"{index:06d}.JPEG", quality=quality)
    return split_dir


def image_folder_datasets(root, image_size=224, max_samples=None, seed=0, strict_images=False, cutout_holes=0,
                          cutout_length=0, rotate_degrees=0.0, color_jitter=0.0, holdout=None, min_scale=0.0):
    """The train and val datasets of an ImageNet-style folder: ``(train_set, val_set, class_names)``.

    Training images get ``imagenet_train_transforms`` (with the optional cutout, rotation, colour
    jitter and crop ``min_scale`` settings; ``strict_images`` stops at the first unreadable file),
    validation images ``imagenet_val_transforms(image_size)``; the class list (and count) comes from ``<root>/train``, and
    ``val`` must hold the same class folders. ``max_samples`` keeps a class-balanced subset of at most
    that many images in each split. ``seed`` picks the subsets and, with the epoch, the training
    augmentations (see ``AlbumentationsDataset``). ``holdout`` (a count, or a share of each class below 1)
    takes the evaluation set from the training folder instead (``holdout_split``), leaving ``val`` unseen.
    """
    train_paths, train_labels, class_names = image_folder(root, "train", max_samples=max_samples, seed=seed)
    if holdout:
        kept, held = holdout_split(train_labels, holdout)
        val_paths, val_labels = [train_paths[i] for i in held], train_labels[held]
        train_paths, train_labels = [train_paths[i] for i in kept], train_labels[kept]
    else:
        val_paths, val_labels, _ = image_folder(root, "val", class_names, max_samples=max_samples, seed=seed)
    train_transforms = imagenet_train_transforms(image_size, cutout_holes=cutout_holes, cutout_length=cutout_length,
                                                 rotate_degrees=rotate_degrees, color_jitter=color_jitter,
                                                 min_scale=min_scale)
    train_set = AlbumentationsDataset(ImageFiles(train_paths, train_labels, strict_images), train_transforms, seed=seed)
    val_set = AlbumentationsDataset(ImageFiles(val_paths, val_labels, strict_images), imagenet_val_transforms(image_size))
    return train_set, val_set, class_names


SKIPPED_LABEL = -100  # CrossEntropyLoss's default ignore_index: a skipped image adds nothing to the loss


class ImageFiles:
    """An (image, label) source over image files: decodes to uint8 RGB (grayscale, CMYK, RGBA and palette
    images are converted).

    A file that cannot be decoded (truncated, not an image, a decompression bomb) does not stop a run:
    it is skipped with a warning naming it, and comes out as a small black image with label
    ``SKIPPED_LABEL`` (-100), which the loss ignores and ``train``/``test`` count as skipped. Only when
    ``max_consecutive_failures`` files in a row fail (a wrong folder), or at the first failure with
    ``strict=True``, does it raise ``DataFormatError`` naming the file.
    """

    def __init__(self, paths, labels, strict=False, max_consecutive_failures=20):
        self.paths, self.labels = list(paths), np.asarray(labels)
        self.strict, self.max_consecutive_failures = strict, max_consecutive_failures
        self.failures_in_a_row = 0

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                decoded = np.asarray(image.convert("RGB"))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            self.failures_in_a_row += 1
            message = f"cannot decode image {path}: {error}"
            if self.strict:
                raise DataFormatError(f"{message}; delete or replace the file (or drop --strict_images to skip "
                                      "unreadable files)") from None
            if self.failures_in_a_row >= self.max_consecutive_failures:
                raise DataFormatError(f"{message}; {self.failures_in_a_row} files in a row could not be decoded: "
                                      "is --data_dir the right folder?") from None
            warnings.warn(f"skipped: {message}", stacklevel=2)
            return np.zeros((8, 8, 3), dtype=np.uint8), SKIPPED_LABEL
        self.failures_in_a_row = 0
        return decoded, int(self.labels[index])


# --------------------------------------------------------------------------------- Albumentations path
class ImageArrays:
    """An (image, label) source over in-memory arrays: uint8 ``images`` (N x H x W x 3) and ``labels``."""

    def __init__(self, images, labels):
        if len(images) != len(labels):
            raise DataFormatError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])


class AlbumentationsDataset(torch.utils.data.Dataset):
    """Any (image, label) source plus an Albumentations ``Compose`` -> (tensor, label).

    ``source`` is anything indexable that returns ``(image, label)`` with a HWC uint8 image (numpy array
    or PIL image): ``ImageArrays(images, labels)``, ``ImageFiles``, ``SyntheticImages``, a torchvision
    data set. Indexed with an ``(epoch, index)`` key (what ``EpochSampler`` yields), the transform is
    seeded from ``(seed, epoch, index)``: the augmentation of every image in every epoch is fixed by
    the seed, whatever the number of DataLoader workers, so an interrupted run resumes exactly. Indexed
    with a plain integer, the transform draws from its own running random state.
    """

    def __init__(self, source, transform, seed=0):
        if isinstance(source, tuple):
            raise TypeError("AlbumentationsDataset takes an (image, label) source, not a tuple of arrays: "
                            "wrap arrays as ImageArrays(images, labels)")
        self.source, self.transform, self.seed = source, transform, seed

    def __len__(self):
        return len(self.source)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            epoch, index = key
            self.transform.set_random_seed(derive_seed(self.seed, epoch, index))
        else:
            index = key
        image, label = self.source[index]
        return self.transform(image=np.asarray(image))["image"], label


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)`` keys: the order of an epoch (shuffled or not) is derived from ``(seed,
    epoch)``, and ``AlbumentationsDataset`` seeds each image's augmentation from the key. Call
    ``set_epoch`` before each epoch (``fit`` does). With ``num_replicas > 1`` each rank gets its own
    share; ``pad`` (the default for shuffled training) repeats a few indices so every rank has the same
    length, as ``DistributedSampler`` does (DDP needs the same number of steps everywhere), while
    ``pad=False`` (the default for evaluation) leaves the shares unequal so that each image counts once."""

    def __init__(self, length, shuffle=True, seed=0, num_replicas=1, rank=0, pad=None):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0
        self.pad = shuffle if pad is None else pad

    def set_epoch(self, epoch):
        """Choose the epoch whose order and augmentations the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self):
        if self.pad:
            return -(-self.length // self.num_replicas)
        return len(range(self.rank, self.length, self.num_replicas))

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        if self.pad:
            total = -(-self.length // self.num_replicas) * self.num_replicas
            order = (order * -(-total // max(len(order), 1)))[:total]
        return iter([(self.epoch, index) for index in order[self.rank::self.num_replicas]])


def cifar_augmentations(mean, cutout_length=8, cutout_holes=1, crop_padding=4, flip=True, rotate_degrees=0.0):
    """The CIFAR training augmentations as a list (uint8 in, uint8 out, no normalisation): reflect-pad
    ``crop_padding`` + random crop back to 32x32, horizontal flip, optional random rotation by at most
    ``rotate_degrees``, and ``cutout_holes`` square holes of ``cutout_length`` filled with the data mean."""
    fill = tuple(int(round(m * 255)) for m in mean)
    augmentations = []
    if crop_padding:
        side = 32 + 2 * crop_padding
        augmentations += [A.PadIfNeeded(side, side, border_mode=4), A.RandomCrop(32, 32)]  # BORDER_REFLECT_101
    if flip:
        augmentations.append(A.HorizontalFlip(p=0.5))
    if rotate_degrees:
        augmentations.append(A.Rotate(limit=rotate_degrees, border_mode=4, p=1.0))
    if cutout_holes and cutout_length:
        augmentations.append(cutout(cutout_holes, cutout_length, fill))
    return augmentations


def cutout(holes, length, fill):
    """Cutout (DeVries & Taylor 2017): ``holes`` squares of ``length`` pixels filled with ``fill``."""
    return A.CoarseDropout(num_holes_range=(holes, holes), hole_height_range=(length, length),
                           hole_width_range=(length, length), fill=fill, p=1.0)


def cifar_train_transforms(mean, std, cutout_length=8, cutout_holes=1, crop_padding=4, flip=True,
                           rotate_degrees=0.0):
    """CIFAR training transform: ``cifar_augmentations`` (pad + crop, flip, [rotation], cutout), then
    normalisation and ``ToTensorV2``."""
    return A.Compose(cifar_augmentations(mean, cutout_length, cutout_holes, crop_padding, flip, rotate_degrees)
                     + [A.Normalize(mean=mean, std=std), ToTensorV2()])


def cifar_test_transforms(mean, std):
    """Test-time CIFAR transform: normalisation and ``ToTensorV2`` only."""
    return A.Compose([A.Normalize(mean=mean, std=std), ToTensorV2()])


def crop_scale(size, min_scale=0.0):
    """The range of the share of the image a random-resized crop keeps: ``(min_scale, 1)``, and when
    ``min_scale`` is 0 torchvision's (0.08, 1) for crops of 160 px and more, fastai's Imagenette (0.35, 1)
    below, where a smaller share leaves too little."""
    return (min_scale or (0.08 if size >= 160 else 0.35), 1.0)


def imagenet_augmentations(size=224, mean=IMAGENET_MEAN, cutout_holes=0, cutout_length=0, rotate_degrees=0.0,
                           color_jitter=0.0, min_scale=0.0):
    """The ImageNet training augmentations as a list (uint8 in, uint8 out, no normalisation): random-resized
    crop (keeping a share of the area in ``crop_scale(size, min_scale)``), horizontal flip, optional rotation
    by at most ``rotate_degrees``, colour jitter of strength ``color_jitter`` (0: off), optional cutout (``cutout_holes`` squares of ``cutout_length`` pixels,
    filled with the mean)."""
    augmentations = [A.RandomResizedCrop(size=(size, size), scale=crop_scale(size, min_scale)),
                     A.HorizontalFlip(p=0.5)]
    if rotate_degrees:
        augmentations.append(A.Rotate(limit=rotate_degrees, border_mode=4, p=1.0))
    if color_jitter:
        augmentations.append(A.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter,
                                           hue=0.0, p=0.8))
    if cutout_holes and cutout_length:
        augmentations.append(cutout(cutout_holes, cutout_length, tuple(int(round(m * 255)) for m in mean)))
    return augmentations


def imagenet_train_transforms(size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, seed=None, cutout_holes=0,
                              cutout_length=0, rotate_degrees=0.0, color_jitter=0.0, min_scale=0.0):
    """ImageNet training transform: ``imagenet_augmentations``, then normalisation and ``ToTensorV2``.
    ``seed`` starts the transform's own random state (Albumentations ignores the global seeds)."""
    return A.Compose(imagenet_augmentations(size, mean, cutout_holes, cutout_length, rotate_degrees, color_jitter,
                                            min_scale)
                     + [A.Normalize(mean=mean, std=std), ToTensorV2()], seed=seed)


def imagenet_val_crop(size=224):
    """The evaluation resize and crop as a list: short side to size/0.875 (256 for 224), center crop."""
    return [A.SmallestMaxSize(max_size=int(round(size / 0.875))), A.CenterCrop(size, size)]


def imagenet_val_transforms(size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """ImageNet evaluation: ``imagenet_val_crop``, normalisation and ``ToTensorV2``."""
    return A.Compose(imagenet_val_crop(size) + [A.Normalize(mean=mean, std=std), ToTensorV2()])


def default_workers(cores, processes=1, most=16):
    """DataLoader workers per process: the cores each of the ``processes`` on the machine gets, less one
    for the process itself, at most ``most`` (torchvision's ImageNet reference uses 16). 1 on a 2-core
    Colab machine, 11 per process for 8 GPUs on 96 cores, whose JPEG decoding a fixed 4 would starve."""
    return max(0, min(most, cores // max(processes, 1) - 1))


def make_loader(dataset, batch_size, train, device="cpu", workers=None, persistent=True, seed=0, num_replicas=1,
                rank=0):
    """A DataLoader over an ``AlbumentationsDataset`` whose shuffling and augmentations are fixed by
    ``(seed, epoch)`` (an ``EpochSampler``; ``fit`` sets the epoch), so a resumed run is exact.

    ``workers`` defaults to ``default_workers`` for the processes on this machine (torchrun's
    LOCAL_WORLD_SIZE, else ``num_replicas``); pinned memory on CUDA, persistent workers, drop_last when
    training. ``num_replicas``/``rank`` shard the data for a distributed run."""
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = default_workers(cores, int(os.environ.get("LOCAL_WORLD_SIZE", num_replicas)))
    sampler = EpochSampler(len(dataset), shuffle=train, seed=seed, num_replicas=num_replicas, rank=rank)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, drop_last=train, num_workers=workers,
        pin_memory=torch.device(device).type == "cuda", persistent_workers=persistent and workers > 0)

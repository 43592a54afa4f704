"""Imagenette, fast.ai's 10-class subset of ImageNet (https://github.com/fastai/imagenette), for the ImageNet
lesson when no ImageNet folder is given.

``download_imagenette()`` fetches the 160-pixel archive (``imagenette2-160.tgz``, 94 MiB) into ``./data``
once, checks its size and SHA-256, unpacks it and returns the folder in the ImageNet layout
(``imagenette2-160/train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``). A later call finds the folder and
returns at once.

Nothing half-done looks finished: the download goes to ``<archive>.part`` and gets its real name only
after the check; the archive is unpacked into a temporary folder that is renamed when complete. Members
that would land outside the target (absolute paths, ``..``, links, devices) are refused.

The address and checksum can be replaced (a mirror, or a test's local archive as a ``file://`` URL):
the ``url`` and ``sha256`` arguments, else the ``IMAGENETTE_URL`` and ``IMAGENETTE_SHA256`` environment
variables.
"""
import hashlib
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from dataset import DataFormatError, DataNotFoundError, image_folder
from progress import progress_bar

URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"  # fastai/imagenette's README
# the archive as served since 2021: its size in fastai's fastai/data/checks.txt and in TensorFlow Datasets'
# imagenette/checksums.tsv, its SHA-256 in the latter
SIZE = 99_003_388
SHA256 = "64d0c4859f35a461889e0147755a999a48b49bf38a7e0f9bd27003f10db02fe5"
CHUNK = 1 << 20
# images per class of imagenette2 (the split since December 2019: 9,469 training, 3,925 validation images),
# counted in the public 224 px copy thunderInfy/imagenette (commit b850f030), the same split as fast.ai's archives
FULL_COUNTS = {
    "train": {"n01440764": 963, "n02102040": 955, "n02979186": 993, "n03000684": 858, "n03028079": 941,
              "n03394916": 956, "n03417042": 961, "n03425413": 931, "n03445777": 951, "n03888257": 960},
    "val": {"n01440764": 387, "n02102040": 395, "n02979186": 357, "n03000684": 386, "n03028079": 409,
            "n03394916": 394, "n03417042": 389, "n03425413": 419, "n03445777": 399, "n03888257": 390},
}


def folder_counts(root):
    """``{split: {class folder: images}}`` of an ImageNet-style folder's train and val splits."""
    counts = {}
    for split in FULL_COUNTS:
        _, labels, names = image_folder(root, split)
        counts[split] = {name: int((labels == index).sum()) for index, name in enumerate(names)}
    return counts


def not_full_imagenette(counts):
    """For an image folder with Imagenette's classes, ``counts`` being ``{split: {wnid: images}}``: a sentence
    saying how it differs from all of Imagenette (whose numbers the leaderboard reports), or None when it is
    the full set or not Imagenette at all."""
    if set(counts.get("train", {})) != set(FULL_COUNTS["train"]):
        return None
    short = {split: sum(counts[split].values()) for split in FULL_COUNTS if counts.get(split) != FULL_COUNTS[split]}
    if not short:
        return None
    return ("this folder holds Imagenette's classes but not all of its images (" + ", ".join(
        f"{split}: {short[split]:,} of {sum(FULL_COUNTS[split].values()):,}" for split in short) +
        "): its accuracy is not comparable with the Imagenette leaderboard, which uses the full split")


def download_imagenette(root="data", url=None, sha256=None, progress=None):
    """Imagenette's folder under ``root`` (with ``train/`` and ``val/``), downloaded and unpacked if missing.

    ``url`` (default: ``IMAGENETTE_URL``, else fast.ai's address) is any address urllib opens, ``file://``
    included; ``sha256`` (default: ``IMAGENETTE_SHA256``, else the published archive's) is the archive's
    expected SHA-256; the size is checked too when it is the published archive's checksum. ``progress``
    as in ``progress.progress_bar`` (None: a bar for a person watching, plain lines otherwise).
    Raises ``DataNotFoundError`` when the download fails and ``DataFormatError`` when the archive is not
    the expected one or not in the expected layout, each saying what to do.
    """
    url = url or os.environ.get("IMAGENETTE_URL") or URL
    sha256 = (sha256 or os.environ.get("IMAGENETTE_SHA256") or SHA256).lower()
    size = SIZE if sha256 == SHA256 else None
    root = Path(root)
    name = url.rstrip("/").rsplit("/", 1)[-1]
    folder = root / name.removesuffix(".tgz").removesuffix(".tar.gz")
    if (folder / "train").is_dir() and (folder / "val").is_dir():
        return folder
    if folder.exists():
        raise DataFormatError(f"{folder} exists but holds no train/ and val/ folders: delete it and run again")
    root.mkdir(parents=True, exist_ok=True)
    archive = root / name
    if archive.is_file():
        check_archive(archive, sha256, size, action=f"delete {archive} and run again to download it again")
    else:
        download(url, archive, sha256, size, progress)
    extract(archive, root, folder.name)
    return folder


def download(url, path, sha256, size=None, progress=None):
    """Fetch ``url`` into ``path`` through ``<path>.part``, checking size and SHA-256 on the way; ``path``
    exists only once both match (a failed or interrupted download leaves nothing under its name)."""
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    start = time.perf_counter()
    digest, received = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as file:
            total = int(response.headers.get("Content-Length") or 0) or size
            print(f"downloading {url}" + (f" ({total / 2**20:.1f} MiB)" if total else "") + f" to {path}")
            with progress_bar(None, progress, total=total, unit="B", unit_scale=True, unit_divisor=1024,
                              desc=path.name) as bar:
                while chunk := response.read(CHUNK):
                    file.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        raise DataNotFoundError(_not_downloaded(url, path, error)) from None
    except BaseException:  # Ctrl-C: nothing half-downloaded stays behind
        partial.unlink(missing_ok=True)
        raise
    problem = _mismatch(received, digest.hexdigest(), sha256, size)
    if problem:
        partial.unlink()
        raise DataFormatError(f"{url} downloaded to {partial}, but {problem}; the partial file was deleted. "
                              f"Run again to download it again. If it fails again, the file on the server may "
                              f"have changed: set IMAGENETTE_SHA256 to its new checksum if you trust it, or "
                              f"download and unpack it yourself and set IMAGENET_DIR to the folder that holds "
                              f"train/ and val/.")
    partial.replace(path)
    print(f"downloaded {received / 2**20:.1f} MiB in {time.perf_counter() - start:.0f} s, SHA-256 checked")
    return path


def check_archive(path, sha256, size=None, action="delete it and run again"):
    """Raise ``DataFormatError`` naming ``path`` and ``action`` unless its SHA-256 (and ``size``) match."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    problem = _mismatch(Path(path).stat().st_size, digest.hexdigest(), sha256, size)
    if problem:
        raise DataFormatError(f"{path} is not the expected archive: {problem}; {action}.")


def _mismatch(received, digest, sha256, size):
    if size is not None and received != size:
        return f"it has {received:,} bytes instead of {size:,} (a cut-off or changed download)"
    if digest != sha256:
        return f"its SHA-256 is {digest}, not the expected {sha256}"
    return ""


def _not_downloaded(url, path, error):
    return (f"could not download {url} ({error}). Provide Imagenette (or any folder in the ImageNet layout) in "
            f"one of three ways:\n"
            f"  1. download: run again with network access (it is saved as {path} and unpacked beside it);\n"
            f"  2. archive: put {path.name}, downloaded elsewhere, at {path};\n"
            f"  3. folder: set IMAGENET_DIR to a folder that holds train/<class>/*.JPEG and val/<class>/*.JPEG.")


def safe_members(archive, target):
    """The members of the open ``archive``, after checking that each one is a plain file or folder that lands
    inside ``target``; raises ``DataFormatError`` naming the first that does not."""
    target = Path(target).resolve()
    members = archive.getmembers()
    for member in members:
        destination = (target / member.name).resolve()
        if not (member.isfile() or member.isdir()):
            raise DataFormatError(f"{archive.name}: refused {member.name!r}, which is not a plain file or folder "
                                  f"(a link or a device)")
        if os.path.isabs(member.name) or not destination.is_relative_to(target):
            raise DataFormatError(f"{archive.name}: refused {member.name!r}, which would land outside {target}")
    return members


def extract(archive, root, folder_name):
    """Unpack ``archive`` (a .tgz whose members all sit under ``folder_name/``, with ``train/`` and ``val/``)
    into ``root/folder_name``: first into a temporary folder in ``root``, renamed when complete."""
    root = Path(root)
    print(f"unpacking {archive} into {root / folder_name}")
    staging = Path(tempfile.mkdtemp(prefix=f".{folder_name}-", dir=root))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = safe_members(tar, staging)
            if hasattr(tarfile, "data_filter"):  # Python 3.12, and the security releases of 3.8 to 3.11
                tar.extractall(staging, members=members, filter="data")
            else:
                tar.extractall(staging, members=members)
        unpacked = staging / folder_name
        if not ((unpacked / "train").is_dir() and (unpacked / "val").is_dir()):
            found = sorted(path.name for path in staging.iterdir())
            raise DataFormatError(f"{archive} holds {found}, not {folder_name}/train and {folder_name}/val: "
                                  f"delete it and point IMAGENETTE_URL at an Imagenette archive")
        unpacked.replace(root / folder_name)
    except tarfile.TarError as error:
        raise DataFormatError(f"{archive} cannot be unpacked ({error}): delete it and run again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / folder_name

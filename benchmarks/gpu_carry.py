"""What the GPU check needs on a machine without network, packed to travel with one call of a device tool.

The workplace's device tool sends the working tree and the ignored folders a call names, at most 64 MiB in
all, and its machine keeps nothing between calls once idle: the CIFAR-10 data (170 MB as .npz), the wheels
of the libraries that machine lacks and the repository travel together, in one call. No lossless encoding
of CIFAR's 60,000 images comes near that (measured: WebP lossless, the best, 4.4 bits per value, 96 MiB),
so by default:

* the test set, on which the accuracy floor is measured, travels lossless (WebP lossless, 16 MiB); join
  checks the decoded images against the sha256 of the original's;
* the training set travels as JPEG at quality 90 without chroma subsampling (28 MiB; mean absolute error
  3 of 255 per value). Whether that moves S10's accuracy is not measured: gpu_check.md names the encoding
  beside the figure;
* ``--train npz --test npz`` carries the .npz files as they are, byte for byte (for a bigger allowance).

Images are packed 1,000 to a mosaic (10 x 100 tiles of 32 x 32; JPEG's 8 x 8 blocks never straddle two
images). Each payload is split into parts of at most --part-mib, and manifest.json holds the sha256 of
every part, payload and wheel: join refuses a missing or damaged file by name before anything runs.

    python benchmarks/gpu_carry.py prepare --data DIR [--carry .carry] [--jpeg-quality 90] [--no-wheels]
    python benchmarks/gpu_carry.py join [--carry .carry] [--out DIR]  # on the GPU machine; no --out: verify only

The wheels are those of this environment's versions (albumentations, torch-lr-finder, torchsummary and the
dependencies of theirs that the GPU machine lacks), downloaded for its Python (--python-version 3.12).
"""
import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# albumentations, torch-lr-finder, torchsummary and what of theirs the GPU machine lacks (it has numpy,
# scipy, PyYAML, opencv, tqdm, matplotlib); typing-extensions as new as pydantic needs
WHEELS = ["albumentations", "albucore", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
          "stringzilla", "simsimd", "torch-lr-finder", "torchsummary", "typing-extensions"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
MOSAIC = (10, 100)  # rows, columns of 32 x 32 images
MIB = 2 ** 20


class CarryError(Exception):
    """A carry folder that cannot be trusted or used; the message says which file and what to do."""


def sha256(data):
    """The hex sha256 of ``data`` (bytes)."""
    return hashlib.sha256(data).hexdigest()


def to_mosaics(images):
    """Images (N, 32, 32, 3) as mosaics of MOSAIC tiles, the last one padded with black tiles."""
    rows, cols = MOSAIC
    per = rows * cols
    padded = np.zeros((-(-len(images) // per) * per, 32, 32, 3), np.uint8)
    padded[:len(images)] = images
    grid = padded.reshape(-1, rows, cols, 32, 32, 3).transpose(0, 1, 3, 2, 4, 5)
    return list(grid.reshape(-1, rows * 32, cols * 32, 3))


def from_mosaics(mosaics, count):
    """The first ``count`` images of ``mosaics`` (the inverse of ``to_mosaics``)."""
    rows, cols = MOSAIC
    grid = np.stack(mosaics).reshape(-1, rows, 32, cols, 32, 3).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(grid.reshape(-1, 32, 32, 3)[:count])


def encode_image(mosaic, encoding, quality):
    """One mosaic as WebP lossless or JPEG (4:4:4, optimised Huffman tables: 4% smaller)."""
    from PIL import Image, ImageFile

    ImageFile.MAXBLOCK = max(ImageFile.MAXBLOCK, 2 * mosaic.nbytes)  # an optimised JPEG of noise outgrows the default
    buffer = io.BytesIO()
    if encoding == "webp":
        Image.fromarray(mosaic).save(buffer, "WEBP", lossless=True, quality=100, method=4, exact=True)
    else:
        Image.fromarray(mosaic).save(buffer, "JPEG", quality=quality, subsampling=0, optimize=True)
    return buffer.getvalue()


def decode_image(data):
    """The RGB array of one encoded mosaic."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def encode(npz_path, encoding, quality):
    """``(payload bytes, manifest entry)`` of one CIFAR .npz: the file itself for "npz", else an .npz of
    labels and the mosaics' encoded bytes. The entry records the original's hashes for join to check."""
    raw = Path(npz_path).read_bytes()
    with np.load(io.BytesIO(raw)) as data:
        images, labels = data["images"], data["labels"]
    entry = {"encoding": encoding, "count": len(images), "source_sha256": sha256(raw),
             "images_sha256": sha256(np.ascontiguousarray(images).tobytes()), "labels_sha256": sha256(labels.tobytes())}
    if encoding == "npz":
        return raw, entry
    blobs = [encode_image(mosaic, encoding, quality) for mosaic in to_mosaics(images)]
    buffer = io.BytesIO()
    np.savez(buffer, labels=labels, sizes=np.array([len(blob) for blob in blobs]),
             blob=np.frombuffer(b"".join(blobs), np.uint8))
    if encoding == "jpeg":
        decoded = from_mosaics([decode_image(blob) for blob in blobs], len(images))
        entry.update(quality=quality, decoded_sha256=sha256(decoded.tobytes()),
                     mean_abs_error=round(float(np.abs(decoded.astype(np.int16) - images).mean()), 3))
    return buffer.getvalue(), entry


def decode(payload, entry):
    """``(images, labels)`` of a payload, checked against the original's hashes where the encoding is
    lossless (a lossy one's decoded hash may differ with another JPEG library: said, not refused)."""
    if entry["encoding"] == "npz":
        with np.load(io.BytesIO(payload)) as data:
            images, labels = data["images"], data["labels"]
    else:
        with np.load(io.BytesIO(payload)) as data:
            labels, sizes, blob = data["labels"], data["sizes"], data["blob"].tobytes()
        mosaics = [decode_image(blob[end - size:end]) for size, end in zip(sizes, np.cumsum(sizes))]
        images = from_mosaics(mosaics, entry["count"])
    if sha256(labels.tobytes()) != entry["labels_sha256"]:
        raise CarryError("the decoded labels differ from the original's")
    got = sha256(images.tobytes())
    if entry["encoding"] != "jpeg" and got != entry["images_sha256"]:
        raise CarryError(f"the decoded {entry['encoding']} images differ from the original's")
    if entry["encoding"] == "jpeg" and got != entry["decoded_sha256"]:
        print("gpu_carry.py: note: this JPEG decoder's pixels differ from the preparing machine's "
              "(a lossy encoding; not an error)")
    return images, labels


def split(payload, name, carry, part_bytes):
    """Writes ``payload`` as ``data/<name>.partNN`` files of at most ``part_bytes``; their manifest rows."""
    (carry / "data").mkdir(parents=True, exist_ok=True)
    parts = []
    for index, start in enumerate(range(0, max(len(payload), 1), part_bytes)):
        chunk = payload[start:start + part_bytes]
        path = f"data/{name}.part{index:02d}"
        (carry / path).write_bytes(chunk)
        parts.append({"path": path, "bytes": len(chunk), "sha256": sha256(chunk)})
    return parts


def verified(carry, row):
    """The bytes of the carried file ``row`` names, refused when missing or not what the manifest says."""
    path = carry / row["path"]
    redo = "prepare the carry folder again: python benchmarks/gpu_carry.py prepare --data <cifar10 folder>"
    if not path.is_file():
        raise CarryError(f"{path} is missing; {redo}")
    data = path.read_bytes()
    if len(data) != row["bytes"] or sha256(data) != row["sha256"]:
        raise CarryError(f"{path} is damaged: {len(data)} bytes with sha256 {sha256(data)[:16]}..., the manifest "
                         f"says {row['bytes']} bytes with sha256 {row['sha256'][:16]}...; {redo}")
    return data


def pinned_requirements(wheel):
    """``{name: version}`` of a wheel's exact pins (``Requires-Dist: name==version``), names normalised."""
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    pins = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+) ?\(?==([^\s,;)]+)\)?\s*$", text, re.MULTILINE)
    return {normalise(name): version for name, version in pins}


def normalise(name):
    """A distribution name as pip compares them (PEP 503): "pydantic_core" is "pydantic-core"."""
    return re.sub(r"[-_.]+", "-", name).lower()


def download_wheels(folder, python_version):
    """Downloads this environment's version of each of WHEELS for the GPU machine's Python into ``folder``
    (emptied first: two versions of one package stop pip's install) and checks that every exact pin among
    them (albumentations' albucore, pydantic's pydantic-core) names the version carried."""
    try:
        versions = {normalise(name): metadata.version(name) for name in WHEELS}
    except metadata.PackageNotFoundError as error:
        raise CarryError(f"{error.name} is not installed here: install requirements.txt first") from None
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", python_version, "--implementation", "cp", "-d", str(folder),
               *[f"--platform={platform}" for platform in PLATFORMS],
               *[f"{name}=={version}" for name, version in versions.items()]]
    if subprocess.run(command).returncode != 0:
        raise CarryError("pip download failed (it needs the network to PyPI); see its message above")
    wheels = sorted(folder.glob("*.whl"))
    for wheel in wheels:
        for name, version in pinned_requirements(wheel).items():
            if name in versions and versions[name] != version:
                raise CarryError(f"{wheel.name} pins {name}=={version} but {versions[name]} is carried: "
                                 f"install matching versions here first")
    return [{"path": f"{folder.name}/{wheel.name}", "bytes": wheel.stat().st_size, "sha256": sha256(wheel.read_bytes())}
            for wheel in wheels]


def travelling_bytes(carry):
    """What one device call would send: the repository's tracked and untracked-but-not-ignored files, plus
    the carry folder (ignored by git, named in the call's ``carry``)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    repository = sum((ROOT / name).stat().st_size for name in listed if name and (ROOT / name).is_file())
    carried = sum(path.stat().st_size for path in carry.rglob("*") if path.is_file())
    return repository, carried


def prepare(args):
    """Encodes and splits the data, downloads the wheels, writes the manifest; refuses a carry that would not
    travel in one call (--budget-mib, 0 for no check)."""
    carry, data = Path(args.carry), Path(args.data)
    manifest = {"version": 1, "datasets": {}, "wheels": []}
    for old in (carry / "data").glob("*.part*") if (carry / "data").is_dir() else []:
        old.unlink()
    for name, encoding in (("train", args.train), ("test", args.test)):
        if not (data / f"{name}.npz").is_file():
            raise CarryError(f"{data / (name + '.npz')} is missing: --data names the folder of train.npz and test.npz")
        payload, entry = encode(data / f"{name}.npz", encoding, args.jpeg_quality)
        parts = split(payload, name, carry, int(args.part_mib * MIB))
        manifest["datasets"][name] = {**entry, "bytes": len(payload), "sha256": sha256(payload), "parts": parts}
        print(f"{name}: {entry['count']} images as {describe(entry)}: " +
              ", ".join(f"{Path(p['path']).name} {p['bytes'] / MIB:.2f} MiB" for p in parts))
    if args.wheels:
        manifest["wheels"] = download_wheels(carry / "wheels", args.python_version)
        print(f"wheels: {len(manifest['wheels'])}, {sum(w['bytes'] for w in manifest['wheels']) / MIB:.2f} MiB")
    else:  # gpu_check.sh installs every wheel in the folder: none that the manifest does not vouch for
        for old in (carry / "wheels").glob("*.whl"):
            old.unlink()
    (carry / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if args.budget_mib:
        repository, carried = travelling_bytes(carry)
        total = (repository + carried) / MIB
        print(f"one call sends {total:.1f} MiB: the repository {repository / MIB:.1f} MiB, {carry} "
              f"{carried / MIB:.1f} MiB (budget {args.budget_mib} MiB)")
        if total > args.budget_mib:
            raise CarryError(f"{total:.1f} MiB would not travel in one call of {args.budget_mib} MiB: prepare "
                             f"again with a lower --jpeg-quality (85 saves about 5 MiB)")


def describe(entry):
    """How a data set travels, in words, e.g. "jpeg q90 (lossy, mean abs error 2.99 of 255)"."""
    if entry["encoding"] == "jpeg":
        return f"jpeg q{entry['quality']} (lossy, mean abs error {entry['mean_abs_error']} of 255)"
    return f"{entry['encoding']} (lossless)"


def join(args):
    """Checks every carried part and wheel against the manifest, then (with --out) joins and decodes the data
    into ``--out``/train.npz and test.npz, the files dataset.load_cifar reads."""
    carry = Path(args.carry)
    if not (carry / "manifest.json").is_file():
        raise CarryError(f"{carry / 'manifest.json'} is missing: prepare the carry folder with "
                         "python benchmarks/gpu_carry.py prepare --data <cifar10 folder>")
    manifest = json.loads((carry / "manifest.json").read_text())
    for wheel in manifest["wheels"]:
        verified(carry, wheel)
    payloads = {name: b"".join(verified(carry, part) for part in entry["parts"])
                for name, entry in manifest["datasets"].items()}
    for name, payload in payloads.items():
        if sha256(payload) != manifest["datasets"][name]["sha256"]:
            raise CarryError(f"the joined {name} parts differ from the payload prepared: prepare the carry "
                             "folder again")
    print(f"gpu_carry.py: {sum(len(e['parts']) for e in manifest['datasets'].values())} data parts and "
          f"{len(manifest['wheels'])} wheels match {carry / 'manifest.json'}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, payload in payloads.items():
            write_npz(out / f"{name}.npz", payload, manifest["datasets"][name])
        notes = "; ".join(f"{name} {describe(entry)}" for name, entry in manifest["datasets"].items())
        (out / "encoding.txt").write_text(notes + "\n")
        print(f"gpu_carry.py: wrote {out}/train.npz and test.npz ({notes})")


def write_npz(path, payload, entry):
    """The original .npz's bytes for "npz", else the decoded images and labels (uncompressed: fast to read)."""
    if entry["encoding"] == "npz":
        path.write_bytes(payload)
    else:
        images, labels = decode(payload, entry)
        np.savez(path, images=images, labels=labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="here, with network: fill the carry folder")
    prep.add_argument("--data", default=os.environ.get("CIFAR10_DIR"), help="folder of train.npz and test.npz")
    prep.add_argument("--carry", default=str(ROOT / ".carry"))
    prep.add_argument("--train", choices=["jpeg", "webp", "npz"], default="jpeg")
    prep.add_argument("--test", choices=["jpeg", "webp", "npz"], default="webp")
    prep.add_argument("--jpeg-quality", type=int, default=90)
    prep.add_argument("--part-mib", type=float, default=60.0, help="the largest part (default 60 MiB)")
    prep.add_argument("--no-wheels", dest="wheels", action="store_false", help="carry the data only")
    prep.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    prep.add_argument("--budget-mib", type=float, default=64, help="refuse more than this in one call (0: no check)")
    joins = commands.add_parser("join", help="on the GPU machine: verify, then join and decode the data")
    joins.add_argument("--carry", default=str(ROOT / ".carry"))
    joins.add_argument("--out", help="write train.npz and test.npz here (without it: verify only)")
    args = parser.parse_args(argv)
    if args.command == "prepare" and not args.data:
        parser.error("prepare needs --data (or CIFAR10_DIR): the folder of CIFAR-10's train.npz and test.npz")
    try:
        (prepare if args.command == "prepare" else join)(args)
    except CarryError as error:
        print(f"gpu_carry.py: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

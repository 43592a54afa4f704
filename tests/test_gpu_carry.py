"""benchmarks/gpu_carry.py: the data and wheels the GPU check needs, in parts no larger than asked, joined
back byte for byte (or, encoded, to the same pixels where the encoding is lossless), and a missing or
damaged part refused by name before anything runs."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import write_cifar_npz

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_carry  # noqa: E402


def carry(*args):
    return subprocess.run([sys.executable, "benchmarks/gpu_carry.py", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def prepared(tmp_path, *options, part_mib=0.1):
    """Generated CIFAR-shaped train.npz (600 images, 1.8 MB) and test.npz, prepared into tmp_path/carry."""
    data = write_cifar_npz(tmp_path, 600, 120)
    result = carry("prepare", "--data", data, "--carry", tmp_path / "carry", "--no-wheels", "--budget-mib", 0,
                   "--part-mib", part_mib, *options)
    assert result.returncode == 0, result.stderr
    return data, tmp_path / "carry"


def test_prepare_splits_below_the_part_size_and_join_restores_the_exact_bytes(tmp_path):
    data, folder = prepared(tmp_path, "--train", "npz", "--test", "npz")
    parts = sorted((folder / "data").iterdir())
    assert len(parts) > 10 and max(part.stat().st_size for part in parts) <= 0.1 * 2 ** 20
    result = carry("join", "--carry", folder, "--out", tmp_path / "joined")
    assert result.returncode == 0, result.stderr
    for name in ("train.npz", "test.npz"):
        assert (tmp_path / "joined" / name).read_bytes() == (data / name).read_bytes()


def test_encoded_data_joins_to_the_same_labels_and_lossless_test_images(tmp_path):
    data, folder = prepared(tmp_path)  # the defaults: train as JPEG q90, test as WebP lossless
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [manifest["datasets"][name]["encoding"] for name in ("train", "test")] == ["jpeg", "webp"]
    assert carry("join", "--carry", folder, "--out", tmp_path / "joined").returncode == 0
    for name, exact in (("train", False), ("test", True)):
        with np.load(data / f"{name}.npz") as original, np.load(tmp_path / "joined" / f"{name}.npz") as joined:
            assert np.array_equal(joined["labels"], original["labels"]) and joined["images"].dtype == np.uint8
            error = np.abs(joined["images"].astype(int) - original["images"]).mean()
            assert error == 0 if exact else 0 < error < 10
    assert (tmp_path / "joined" / "encoding.txt").read_text().startswith("train jpeg q90 (lossy, mean abs error ")


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete"])
def test_a_damaged_or_missing_part_is_refused_by_name(tmp_path, damage):
    _, folder = prepared(tmp_path, "--train", "npz", "--test", "npz")
    part = folder / "data" / "train.part03"
    data = bytearray(part.read_bytes())
    if damage == "flip a byte":
        data[100] ^= 0xFF
        part.write_bytes(bytes(data))
    elif damage == "truncate":
        part.write_bytes(bytes(data[:-1]))
    else:
        part.unlink()
    result = carry("join", "--carry", folder, "--out", tmp_path / "joined")
    said = "is missing" if damage == "delete" else "is damaged"
    assert result.returncode == 2 and f"{part} {said}" in result.stderr
    assert "prepare the carry folder again" in result.stderr
    assert not (tmp_path / "joined" / "train.npz").exists()


def test_prepare_refuses_more_than_one_call_carries(tmp_path):
    data = write_cifar_npz(tmp_path, 64, 32)
    result = carry("prepare", "--data", data, "--carry", tmp_path / "carry", "--no-wheels", "--budget-mib", 1)
    assert result.returncode == 2 and "would not travel in one call of 1.0 MiB" in result.stderr


def fake_wheel(folder, name, version, requires=()):
    """A wheel holding only its METADATA, with ``Requires-Dist`` lines."""
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    lines = [f"Name: {name}", f"Version: {version}", *[f"Requires-Dist: {r}" for r in requires]]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")


@pytest.mark.parametrize("pinned, refused", [("2.50.5", False), ("2.41.0", True)])
def test_wheels_whose_pins_disagree_with_the_versions_carried_are_refused(tmp_path, monkeypatch, pinned, refused):
    """pydantic pins pydantic-core exactly: a carried pair that does not match would fail on the GPU machine."""
    versions = {"pydantic": "2.14.4", "pydantic-core": "2.50.5"}
    monkeypatch.setattr(gpu_carry, "WHEELS", list(versions))
    monkeypatch.setattr(gpu_carry.metadata, "version", versions.get)

    def download(command, **kwargs):
        folder = Path(command[command.index("-d") + 1])
        fake_wheel(folder, "pydantic", "2.14.4", [f"pydantic-core=={pinned}", "typing-extensions>=4.14.1"])
        fake_wheel(folder, "pydantic-core", "2.50.5")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(gpu_carry.subprocess, "run", download)
    if refused:
        with pytest.raises(gpu_carry.CarryError, match="pins pydantic-core==2.41.0 but 2.50.5 is carried"):
            gpu_carry.download_wheels(tmp_path / "wheels", "3.12")
    else:
        rows = gpu_carry.download_wheels(tmp_path / "wheels", "3.12")
        assert [row["path"].split("-")[0] for row in rows] == ["wheels/pydantic", "wheels/pydantic_core"]

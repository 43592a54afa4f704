"""imagenette.download_imagenette, offline: a small archive in Imagenette's layout stands in for fast.ai's,
fetched through a file:// URL by the real download, check and extraction code."""
import hashlib
import io
import tarfile

import numpy as np
import pytest
from PIL import Image

import imagenette
from dataset import DataFormatError, DataNotFoundError, image_folder

WNIDS = ("n01440764", "n02102040", "n03888257")  # tench, English springer, parachute


def make_imagenette_archive(folder, name="imagenette2-160", train_per_class=6, val_per_class=3, size=(40, 48),
                            extra=None):
    """A .tgz in Imagenette's layout, ``<name>/{train,val}/<wnid>/*.JPEG`` (small random JPEGs of
    ``size`` (height, width) pixels), written into ``folder``; returns ``(path, file:// url, sha256)``.
    ``extra``, a member name (a small file) or a ``TarInfo`` without data, is added last."""
    rng = np.random.default_rng(0)
    path = folder / f"{name}.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            for wnid in WNIDS:
                for index in range(count):
                    buffer = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buffer, "JPEG")
                    add_file(archive, f"{name}/{split}/{wnid}/{wnid}_{index}.JPEG", buffer.getvalue())
        if isinstance(extra, tarfile.TarInfo):
            archive.addfile(extra)
        elif extra:
            add_file(archive, extra, b"outside")
    return path, path.as_uri(), sha256_of(path)


def add_file(archive, member_name, data):
    """Add a regular file ``member_name`` holding ``data`` to the open tar ``archive``."""
    info = tarfile.TarInfo(member_name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def source(tmp_path):
    """The stand-in archive, in its own folder (the "server")."""
    server = tmp_path / "server"
    server.mkdir()
    return make_imagenette_archive(server)


def leftovers(root):
    """Files and folders in ``root`` other than the finished archive and folder."""
    return sorted(path.name for path in root.iterdir() if path.name not in ("imagenette2-160.tgz", "imagenette2-160"))


def test_download_checks_and_unpacks_into_the_imagenet_layout(tmp_path, source, capsys):
    _, url, sha256 = source
    root = tmp_path / "data"
    folder = imagenette.download_imagenette(root, url=url, sha256=sha256)
    assert folder == root / "imagenette2-160"
    paths, labels, classes = image_folder(folder, "train")
    assert classes == list(WNIDS) and len(paths) == 18 and np.bincount(labels).tolist() == [6, 6, 6]
    assert len(image_folder(folder, "val", classes)[0]) == 9
    assert sha256_of(root / "imagenette2-160.tgz") == sha256, "the archive is kept under its name"
    assert leftovers(root) == [], "no .part file and no unpacking folder left behind"
    output = capsys.readouterr()
    assert f"downloading {url}" in output.out and "SHA-256 checked" in output.out
    assert "\r" not in output.out + output.err, "under pytest: plain lines, no live bar"


def test_a_second_call_neither_downloads_nor_unpacks_again(tmp_path, source):
    archive, url, sha256 = source
    root = tmp_path / "data"
    folder = imagenette.download_imagenette(root, url=url, sha256=sha256)
    marker = folder / "train" / WNIDS[0] / "added_by_the_test.JPEG"
    marker.write_bytes(b"")
    archive.unlink()  # the "server" is gone: any download would fail
    assert imagenette.download_imagenette(root, url=url, sha256=sha256) == folder
    assert marker.exists(), "the unpacked folder was left as it was"


def test_a_kept_archive_is_checked_and_unpacked_without_a_download(tmp_path, source):
    archive, url, sha256 = source
    root = tmp_path / "data"
    folder = imagenette.download_imagenette(root, url=url, sha256=sha256)
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()
    archive.unlink()
    assert imagenette.download_imagenette(root, url=url, sha256=sha256) == folder
    assert len(image_folder(folder, "train")[0]) == 18


def test_a_wrong_checksum_is_refused_and_leaves_nothing_that_looks_complete(tmp_path, source):
    _, url, _ = source
    root = tmp_path / "data"
    with pytest.raises(DataFormatError) as error:
        imagenette.download_imagenette(root, url=url, sha256="0" * 64)
    message = str(error.value)
    assert url in message and "SHA-256" in message and "Run again" in message and "IMAGENET_DIR" in message
    assert list(root.iterdir()) == [], "neither the archive, nor its .part, nor a folder"


def test_an_interrupted_download_leaves_nothing_that_looks_complete(tmp_path, source, monkeypatch):
    _, url, sha256 = source
    root = tmp_path / "data"
    monkeypatch.setattr(imagenette, "CHUNK", 1024)  # several chunks even for the small stand-in

    class Interrupting:  # the progress bar, interrupted (Ctrl-C) after the first chunk was written
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, count):
            assert (root / "imagenette2-160.tgz.part").is_file(), "the download goes to a .part file"
            raise KeyboardInterrupt

    monkeypatch.setattr(imagenette, "progress_bar", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        imagenette.download_imagenette(root, url=url, sha256=sha256)
    assert list(root.iterdir()) == [], "no archive, no .part"


def test_the_published_archive_size_is_checked_first(tmp_path, source):
    _, url, _ = source  # fast.ai's checksum (the default) comes with fast.ai's size, which the stand-in lacks
    root = tmp_path / "data"
    with pytest.raises(DataFormatError, match=f"bytes instead of {imagenette.SIZE:,}"):
        imagenette.download_imagenette(root, url=url)
    assert list(root.iterdir()) == []


def test_a_damaged_kept_archive_is_named_with_what_to_do(tmp_path, source):
    _, url, sha256 = source
    root = tmp_path / "data"
    root.mkdir()
    (root / "imagenette2-160.tgz").write_bytes(b"not an archive")
    with pytest.raises(DataFormatError, match="imagenette2-160.tgz is not the expected archive.*delete"):
        imagenette.download_imagenette(root, url=url, sha256=sha256)


def test_no_network_says_the_three_ways_to_provide_the_data(tmp_path):
    root = tmp_path / "data"
    url = (tmp_path / "nowhere" / "imagenette2-160.tgz").as_uri()
    with pytest.raises(DataNotFoundError) as error:
        imagenette.download_imagenette(root, url=url)
    message = str(error.value)
    assert f"could not download {url}" in message and "IMAGENET_DIR" in message
    assert all(f"  {n}. " in message for n in (1, 2, 3))
    assert error.value.__cause__ is None and error.value.__suppress_context__, "no urllib traceback"
    assert list(root.iterdir()) == []


def test_the_address_and_checksum_come_from_the_environment(tmp_path, source, monkeypatch):
    _, url, sha256 = source
    monkeypatch.setenv("IMAGENETTE_URL", url)
    monkeypatch.setenv("IMAGENETTE_SHA256", sha256.upper())
    assert imagenette.download_imagenette(tmp_path / "data") == tmp_path / "data" / "imagenette2-160"


@pytest.mark.parametrize("member", ["imagenette2-160/../../escaped.txt", "/tmp/escaped_absolute.txt", "link"])
def test_members_that_would_land_outside_the_target_are_refused(tmp_path, member):
    server = tmp_path / "server"
    server.mkdir()
    if member == "link":
        extra = tarfile.TarInfo("imagenette2-160/train/n01440764/link.JPEG")
        extra.type, extra.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        extra = member
    archive_path, url, sha256 = make_imagenette_archive(server, extra=extra)
    root = tmp_path / "data"
    with pytest.raises(DataFormatError, match="refused"):
        imagenette.download_imagenette(root, url=url, sha256=sha256)
    assert not (tmp_path / "escaped.txt").exists() and not (root / "imagenette2-160").exists()
    assert leftovers(root) == [], "the unpacking folder is removed"

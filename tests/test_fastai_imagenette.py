"""benchmarks/fastai_imagenette.py: what it refuses before any run, and, where fastai is installed (it is
not one of the repository's requirements: ``pip install fastai``), one interleaved pair on a tiny folder."""
import json
import sys
from pathlib import Path

import pytest

from tests.test_main import tiny_folder  # noqa: F401 (a fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fastai_imagenette  # noqa: E402


def test_without_fastai_it_says_how_to_get_it_before_any_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "fastai", None)  # "import fastai" fails as where it is not installed
    report = tmp_path / "report.json"
    with pytest.raises(SystemExit) as stopped:
        fastai_imagenette.main(["--data_dir", str(tmp_path), "--output", str(report)])
    assert stopped.value.code == 2 and "pip install fastai" in capsys.readouterr().err
    assert not report.exists()


def test_a_folder_without_the_imagenet_layout_is_refused_before_any_run(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    with pytest.raises(SystemExit) as stopped:
        fastai_imagenette.main(["--only", "resnet50", "--data_dir", str(tmp_path), "--output", ""])
    assert stopped.value.code == 2 and "has no val folder" in capsys.readouterr().err


def test_one_pair_runs_both_recipes_on_the_same_folder_and_reports_the_ratio(tiny_folder, tmp_path):  # noqa: F811
    pytest.importorskip("fastai")
    output = tmp_path / "report.json"
    report = fastai_imagenette.main(["--data_dir", str(tiny_folder), "--image_size", "32", "--epochs", "1",
                                     "--workers", "0", "--output", str(output)])
    assert [(run["name"], run["seed"]) for run in report["runs"]] == [("fastai", 0), ("resnet50", 0)]
    assert all(run["seconds"] > 0 and 0 <= run["accuracy"] <= 100 for run in report["runs"])
    assert report["runs"][0]["accuracy"] * 32 / 100 == pytest.approx(round(report["runs"][0]["accuracy"] * 32 / 100))
    assert report["resnet50_time_over_fastai_time"] == pytest.approx(
        report["runs"][1]["seconds"] / report["runs"][0]["seconds"])
    assert report["finished"] and report["fastai_recipe"]["lr"] == 0.01 and report["epochs"] == 1
    assert json.loads(output.read_text()) == json.loads(json.dumps(report))

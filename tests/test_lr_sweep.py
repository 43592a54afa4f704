"""lr_sweep.py: the range test, one short one-cycle run per max LR, the JSON and the figure."""
import json

import lr_sweep


def test_sweep_trains_each_max_lr_and_writes_its_numbers(tmp_path):
    output = tmp_path / "sweep"
    summary = lr_sweep.main(["--dataset", "synthetic", "--subset", "128", "--batch_size", "32", "--lr_iter", "12",
                             "--epochs", "1", "--grid", "0.05", "0.4", "--workers", "0", "--output", str(output)])
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    trained = [run["max_lr"] for run in saved["results"]]
    assert {0.05, 0.4} <= set(trained) and trained == sorted(trained)
    assert set(saved["suggestions"]) == {"steepest", "valley", "min_loss", "minimum"}
    assert saved["best"]["test_acc"] == max(run["test_acc"] for run in saved["results"])
    assert summary["at_rule"]["max_lr"] in trained and saved["settings"]["epochs"] == 1
    again = lr_sweep.main(["--plot_only", "--output", str(output)])
    assert again["results"] == saved["results"]

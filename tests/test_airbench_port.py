"""benchmarks/airbench_cpu.py: airbench94's CUDA calls answered on the CPU (bf16 autocast where the CPU
has bf16 units, fp32 weights, the wall clock for CUDA events), its data written in its own layout, the
patches gone afterwards, and the interleaved comparison's report. airbench94.py itself is not part of
this repository (nor reachable offline), so a stand-in with the same CUDA-isms and interface trains here."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_main import tiny_cifar  # noqa: F401 (a fixture)
from precision import Precision

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import airbench_cpu  # noqa: E402

STAND_IN = '''
import os
import torch
from torch import nn
import torch.nn.functional as F

hyp = {"opt": {"train_epochs": 3}}
seen = {}

class CifarLoader:
    def __init__(self, path, train=True):
        data = torch.load(os.path.join(path, "train.pt" if train else "test.pt"), map_location=torch.device(0))
        self.images = (data["images"].half() / 255).permute(0, 3, 1, 2).cuda()
        self.labels, self.classes = data["labels"].cuda(), data["classes"]

def get_whitening_parameters(patches):
    flat = patches.reshape(len(patches), -1)
    seen["covariance_dtype"] = ((flat.T @ flat) / len(flat)).dtype
    return flat

def main(run):
    train, test = CifarLoader("cifar10"), CifarLoader("cifar10", train=False)
    seen.update(classes=train.classes, images=tuple(train.images.shape), image_dtype=train.images.dtype,
                autocast=torch.is_autocast_cpu_enabled(), cuda_event=torch.cuda.Event)
    get_whitening_parameters(train.images[:8].float())
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).half().cuda()
    seen["weight_dtype"] = next(net.parameters()).dtype
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    starter, ender = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    starter.record()
    losses = []
    for _ in range(int(hyp["opt"]["train_epochs"]) * 20):
        loss = F.cross_entropy(net(train.images), train.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    ender.record()
    torch.cuda.synchronize()
    seen.update(losses=losses, milliseconds=starter.elapsed_time(ender), run=run)
    with torch.no_grad():
        return (net(test.images).argmax(1) == test.labels).float().mean().item()
'''


@pytest.fixture
def stand_in(tmp_path):
    path = tmp_path / "airbench94.py"
    path.write_text(STAND_IN)
    return path


def test_the_port_runs_airbench_style_code_on_the_cpu_and_restores_torch(stand_in, tiny_cifar):  # noqa: F811
    module = airbench_cpu.load_airbench(stand_in, epochs=2)
    event, half = torch.cuda.Event, torch.Tensor.half
    result = airbench_cpu.run_airbench(module, tiny_cifar, seed=3)
    inside = module.seen
    precision = Precision.resolve(torch.device("cpu")).name
    assert result["precision"] == precision and inside["autocast"] == (precision == "bf16")
    assert inside["covariance_dtype"] == torch.float32  # the whitening statistics stay fp32 under autocast
    assert inside["weight_dtype"] == torch.float32 and inside["image_dtype"] == torch.float32
    assert inside["images"] == (64, 3, 32, 32) and inside["classes"][0] == "airplane" and inside["run"] == 3
    assert inside["cuda_event"] is airbench_cpu.WallClockEvent and inside["milliseconds"] > 0
    assert len(inside["losses"]) == 40 and inside["losses"][-1] < 0.8 * inside["losses"][0]  # it trained (a stale autocast cache stalls it)
    assert 0 <= result["accuracy_tta"] <= 100 and result["seconds_in_process"] > 0
    assert torch.cuda.Event is event and torch.Tensor.half is half  # nothing leaks out of the port
    assert torch.ones(1).half().dtype == torch.float16


def test_a_comparison_stopped_half_way_keeps_the_runs_it_finished(stand_in, tiny_cifar, tmp_path):  # noqa: F811
    output = tmp_path / "report.json"
    with pytest.raises(subprocess.CalledProcessError):  # the speedrun side (second) fails on a bad option
        airbench_cpu.main(["--airbench", str(stand_in), "--data_dir", str(tiny_cifar), "--pairs", "1", "--epochs", "1",
                           "--output", str(output), "--", "--no_such_option"])
    report = json.loads(output.read_text())
    assert report["finished"] is False and [run["side"] for run in report["runs"]] == ["airbench94 (CPU port)"]
    assert report["means"]["airbench"]["runs"] == 1 and "speedrun_time_over_airbench_time" not in report


def test_the_comparison_interleaves_both_sides_reports_the_ratio_and_resume_adds_the_missing_pair(  # noqa: F811
        stand_in, tiny_cifar, tmp_path, capsys):
    """One pair, then --pairs 2 --resume: the first pair's runs are kept, the second pair runs B A, and the
    report of the four runs gives the ratio of the sides' mean times and each pair's; a report measured with
    other speedrun options is refused. (Each run is a process: one comparison of two pairs, not two.)"""
    output = tmp_path / "report.json"
    common = ["--airbench", str(stand_in), "--data_dir", str(tiny_cifar), "--epochs", "1", "--output", str(output)]
    first = airbench_cpu.main(common + ["--pairs", "1", "--", "--batch_size", "32", "--no-weight_average"])
    capsys.readouterr()
    both = airbench_cpu.main(common + ["--pairs", "2", "--resume", "--", "--batch_size", "32", "--no-weight_average"])
    assert both["runs"][:2] == first["runs"]  # kept as they were, not run again
    assert [(run["name"], run["seed"]) for run in both["runs"]] == [
        ("airbench", 0), ("speedrun", 0), ("speedrun", 1), ("airbench", 1)]  # the second pair B A
    assert [(run["side"].split()[0], run["seed"]) for run in both["runs"]] == [
        ("airbench94", 0), ("speedrun", 0), ("speedrun", 1), ("airbench94", 1)]  # A B, B A
    assert all(run["seconds"] > 0 and 0 <= run["accuracy_tta"] <= 100 for run in both["runs"])
    speedrun = [run["seconds"] for run in both["runs"] if run["side"].startswith("speedrun")]
    airbench = [run["seconds"] for run in both["runs"] if run["side"].startswith("airbench")]
    assert both["speedrun_time_over_airbench_time"] == pytest.approx(sum(speedrun) / sum(airbench))
    seconds = {(run["name"], run["seed"]): run["seconds"] for run in both["runs"]}
    assert both["pair_ratios"] == {seed: pytest.approx(seconds[("speedrun", int(seed))] / seconds[("airbench", int(seed))])
                                   for seed in ("0", "1")}
    assert both["finished"] is True and both["pairs"] == 2 and both["means"]["speedrun"]["runs"] == 2
    assert json.loads(output.read_text()) == json.loads(json.dumps(both))
    assert "speedrun time / airbench time:" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="measured otherwise .*speedrun_options"):
        airbench_cpu.main(common + ["--pairs", "3", "--resume", "--", "--batch_size", "64"])
    assert json.loads(output.read_text()) == json.loads(json.dumps(both))  # the refused call wrote nothing


def test_a_missing_or_foreign_file_says_what_it_needs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        airbench_cpu.main(["--airbench", str(tmp_path / "nowhere.py")])
    assert "download legacy/airbench94.py" in capsys.readouterr().err
    foreign = tmp_path / "other.py"
    foreign.write_text("x = 1\n")
    with pytest.raises(SystemExit, match="has no 'hyp'"):
        airbench_cpu.load_airbench(foreign)

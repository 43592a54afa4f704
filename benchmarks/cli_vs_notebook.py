"""main.py against the S10 notebook's training cell, side by side on the same CIFAR-10 slice: one epoch
each (training and the test pass), interleaved, each in a fresh process, so the command line can be
checked to train as fast as the lesson (the same precision rule, loader and batch size).

    python benchmarks/cli_vs_notebook.py --data_dir <cifar10 with train.npz/test.npz> [--train 5120] [--rounds 2]

Rows: the notebook's path (recipes.S10, make_loader with its default workers, fit with the automatic
precision), main.py with its defaults (--precision auto), and main.py --precision fp32 (the command
line's old default) for scale.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOTEBOOK_CELL = """
import json, sys, time
from dataclasses import replace
import torch
import dataset
from custom_resnet import CustomResNet
from recipes import S10, build_criterion, build_one_cycle, build_optimizer
from precision import Precision
from seeding import seed_everything
from training_utils import fit
folder, out = sys.argv[1], sys.argv[2]
device = torch.device("cpu")
precision = Precision.resolve(device)
train_data, test_data = (dataset.load_cifar("cifar10", folder, train=t) for t in (True, False))
mean, std = dataset.channel_stats(train_data[0])
train_set = dataset.AlbumentationsDataset(dataset.ImageArrays(*train_data), dataset.cifar_train_transforms(
    mean, std, S10.cutout_length, S10.cutout_holes, S10.crop_padding), seed=1)
test_set = dataset.AlbumentationsDataset(dataset.ImageArrays(*test_data), dataset.cifar_test_transforms(mean, std))
train_loader = dataset.make_loader(train_set, S10.batch_size, train=True, device=device, workers=None, seed=1)
test_loader = dataset.make_loader(test_set, 1000, train=False, device=device, workers=None)
seed_everything(1)
model = precision.prepare(CustomResNet())
optimizer = build_optimizer(S10, model.parameters(), lr=0.4)
scheduler = build_one_cycle(replace(S10, max_lr=0.4, epochs=1), optimizer, len(train_loader))
history = fit(model, device, train_loader, test_loader, optimizer, build_criterion(S10), 1, scheduler,
              precision=precision, seed=1, log=lambda *_: None)
json.dump({"epoch_time": history["epoch_time"], "precision": precision.name}, open(out, "w"))
"""


def write_slice(data_dir, folder, n_train):
    """train.npz with the first ``n_train`` training images and test.npz with 1,000 test images."""
    for name, count in (("train", n_train), ("test", 1000)):
        with np.load(Path(data_dir) / f"{name}.npz") as arrays:
            np.savez(Path(folder) / f"{name}.npz", images=arrays["images"][:count], labels=arrays["labels"][:count])


def notebook_epoch(folder, work):
    out = Path(work) / "notebook.json"
    subprocess.run([sys.executable, "-c", NOTEBOOK_CELL, str(folder), str(out)], cwd=ROOT, check=True)
    return json.loads(out.read_text())["epoch_time"][0]


def main_py_epoch(folder, work, precision):
    out = Path(work) / f"main_{precision}"
    subprocess.run([sys.executable, "main.py", "--dataset", "cifar10", "--data_dir", str(folder), "--epochs", "1",
                    "--max_lr", "0.4", "--precision", precision, "--output_dir", str(out), "--overwrite",
                    "--no_plots"], cwd=ROOT, check=True, capture_output=True)
    return json.loads((out / "history.json").read_text())["epoch_time"][0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=os.environ.get("CIFAR10_DIR"), help="CIFAR-10 train.npz/test.npz")
    parser.add_argument("--train", type=int, default=5120, help="training images in the slice (10 steps of 512)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the three paths")
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("--data_dir (or CIFAR10_DIR) must name a folder with CIFAR-10's train.npz and test.npz")
    from utils import describe_machine

    times = {"notebook (auto)": [], "main.py (default: auto)": [], "main.py --precision fp32": []}
    with tempfile.TemporaryDirectory() as work:
        write_slice(args.data_dir, work, args.train)
        for _ in range(args.rounds):
            times["notebook (auto)"].append(notebook_epoch(work, work))
            times["main.py (default: auto)"].append(main_py_epoch(work, work, "auto"))
            times["main.py --precision fp32"].append(main_py_epoch(work, work, "fp32"))
    print(f"{describe_machine('cpu')}; {args.train} training + 1,000 test images, batch 512, one epoch per run, "
          f"{args.rounds} interleaved rounds ({time.strftime('%Y-%m-%d')})")
    print("| path | epoch seconds, training + test pass (each round) | training images / epoch second (best round) | speed vs the notebook |")
    print("| --- | --- | ---: | ---: |")
    best_notebook = min(times["notebook (auto)"])
    for name, seconds in times.items():
        rate = args.train // 512 * 512 / min(seconds)
        print(f"| {name} | {', '.join(f'{s:.1f}' for s in seconds)} | {rate:.1f} | {best_notebook / min(seconds):.3f}x |")


if __name__ == "__main__":
    main()

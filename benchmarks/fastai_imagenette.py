"""fastai's own Imagenette recipe against this repository's ResNet-50 run, interleaved on one machine.

fastai's side is the recipe of its example `nbs/examples/train_imagenette.py` at its defaults (the script
behind the Imagenette leaderboard's 5- and 20-epoch rows, there with MaxBlurPool and tuned settings),
run with fastai from the package registry (`pip install fastai`; not one of this repository's
requirements): `xresnet50` with Mish, the Ranger optimizer (mom 0.9, sqr_mom 0.99, eps 1e-6), lr 1e-2,
weight decay 1e-2, batch 64, `fit_flat_cos`, `RandomResizedCrop(size, min_scale=0.35)` and a flip per
image, ImageNet normalisation, label-smoothing cross-entropy, the folder's `train` / `val` split. Two
changes for a CPU: each run is seeded (`set_seed`), and where the CPU has bf16 units its forward pass and
loss run under bf16 autocast, as this repository's runs do there (fastai's `to_fp16` / `to_bf16`
autocast on CUDA only); elsewhere both sides train in fp32.

This repository's side is `main.py` on the same folder (`recipes.IMAGENET`: torchvision's ResNet-50 v1.5
with zero-initialised residual branches, SGD, one cycle), `--image_size`, `--batch_size 64` and
`--epochs` as fastai's, and the options after `--` (the peak the held-out sweep chose, for example).
Both report top-1 on the `val` folder after the last epoch, without test-time augmentation.

The runs alternate, A B B A ..., each a fresh process, and the report (`Data/fastai_imagenette.json`)
gives each run's accuracy and whole-process time and the ratio of the sides' mean times
(`benchmarks/interleaved.py`).

    pip install fastai
    python benchmarks/fastai_imagenette.py --data_dir <imagenette> --pairs 1 -- --max_lr 0.1
    python benchmarks/fastai_imagenette.py --data_dir <imagenette> --pairs 2 --resume -- --max_lr 0.1
"""
import argparse
import json
import os
import sys
from pathlib import Path

import interleaved

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RECIPE = {"lr": 1e-2, "wd": 1e-2, "batch_size": 64, "mom": 0.9, "sqr_mom": 0.99, "eps": 1e-6, "min_scale": 0.35}


def fastai_version():
    """The installed fastai's version, or None where it does not import."""
    try:
        import fastai
    except ImportError:
        return None
    return fastai.__version__


def run_fastai(data_dir, size, epochs, seed, workers):
    """One run of fastai's recipe (this process); returns its top-1 on ``val`` and its precision."""
    from functools import partial

    import torch
    from fastai.vision.all import (AvgPool, Callback, CategoryBlock, DataBlock, FlipItem, GrandparentSplitter,
                                   ImageBlock, LabelSmoothingCrossEntropy, Learner, Mish, Normalize,
                                   RandomResizedCrop, accuracy, get_image_files, imagenet_stats, parent_label,
                                   ranger, set_seed, xresnet50)

    from precision import cpu_has_bf16

    class CpuBf16Autocast(Callback):
        """The forward pass and the loss under the CPU's bf16 autocast (fastai's MixedPrecision is CUDA's)."""
        def before_batch(self):
            self.autocast = torch.autocast("cpu", dtype=torch.bfloat16)
            self.autocast.__enter__()

        def after_loss(self):
            self.autocast.__exit__(None, None, None)

    set_seed(seed, reproducible=True)
    blocks = DataBlock(blocks=(ImageBlock, CategoryBlock), splitter=GrandparentSplitter(valid_name="val"),
                       get_items=get_image_files, get_y=parent_label,
                       item_tfms=[RandomResizedCrop(size, min_scale=RECIPE["min_scale"]), FlipItem(0.5)],
                       batch_tfms=[Normalize.from_stats(*imagenet_stats)])
    loaders = blocks.dataloaders(data_dir, path=data_dir, bs=RECIPE["batch_size"], num_workers=workers,
                                 device=torch.device("cpu"))
    optimizer = partial(ranger, mom=RECIPE["mom"], sqr_mom=RECIPE["sqr_mom"], eps=RECIPE["eps"], beta=0.0)
    model = xresnet50(n_out=len(loaders.vocab), act_cls=Mish, sa=0, sym=0, pool=AvgPool)
    learn = Learner(loaders, model, opt_func=optimizer, metrics=[accuracy], loss_func=LabelSmoothingCrossEntropy())
    bf16 = cpu_has_bf16()
    learn.fit_flat_cos(epochs, RECIPE["lr"], wd=RECIPE["wd"], cbs=[CpuBf16Autocast()] if bf16 else [])
    # the last epoch's validation, in the run's precision (learn.validate() after fit would run without the
    # fit's callbacks: in fp32, which main.py's side does not do)
    return {"accuracy": 100 * float(learn.recorder.values[-1][-1]), "precision": "bf16" if bf16 else "fp32"}


def fastai_side(args, seed, work, log):
    result = work / f"fastai_seed{seed}.json"
    command = [sys.executable, Path(__file__).resolve(), "--child", "--data_dir", args.data_dir, "--image_size",
               args.image_size, "--epochs", args.epochs, "--seed", seed, "--workers", args.workers, "--result", result]
    seconds = interleaved.timed(command, log)
    return {"name": "fastai", "side": f"fastai {fastai_version()} train_imagenette.py recipe", "seed": seed,
            "seconds": seconds, **json.loads(result.read_text())}


def resnet50_side(args, seed, work, log):
    run_dir = work / f"resnet50_seed{seed}"
    command = [sys.executable, "main.py", "--data_dir", args.data_dir, "--image_size", args.image_size, "--batch_size",
               RECIPE["batch_size"], "--epochs", args.epochs, "--seed", seed, "--workers", args.workers, "--no_plots",
               "--output_dir", run_dir, "--overwrite", *args.resnet50_options]
    seconds = interleaved.timed(command, log)
    history = json.loads((run_dir / "history.json").read_text())
    return {"name": "resnet50", "side": "main.py (recipes.IMAGENET, ResNet-50 v1.5)", "seed": seed,
            "seconds": seconds, "accuracy": history["test_acc"][-1]}


def compare(args, log=print):
    import torch

    from precision import cpu_has_bf16
    from utils import describe_machine
    sides = {"fastai": lambda seed, work, log: fastai_side(args, seed, work, log),
             "resnet50": lambda seed, work, log: resnet50_side(args, seed, work, log)}
    settings = {"machine": describe_machine(torch.device("cpu")), "data_dir": Path(args.data_dir).name,
                "precision": "bf16 autocast on both sides" if cpu_has_bf16() else "fp32 on both sides",
                "image_size": args.image_size, "epochs": args.epochs, "fastai": fastai_version(),
                "fastai_recipe": RECIPE, "resnet50_options": list(args.resnet50_options)}
    return interleaved.compare(sides, [args.only] if args.only else ["fastai", "resnet50"], args.pairs, args.seed,
                               settings, "accuracy", args.output, args.resume, log)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", help="an ImageNet-style folder with train/ and val/ (default IMAGENET_DIR)")
    parser.add_argument("--image_size", type=int, default=128, help="training and evaluation size (default 128)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each run (default 5)")
    parser.add_argument("--pairs", type=int, default=1, help="interleaved pairs of runs (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="the first pair's seed; each pair adds one (default 0)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="data-loading processes of each side (default: fastai's, min(8, CPUs))")
    parser.add_argument("--only", choices=("fastai", "resnet50"), help="run one side only")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs of the report at --output and run only the missing ones")
    parser.add_argument("--output", default=str(ROOT / "Data" / "fastai_imagenette.json"),
                        help="the report (default: Data/fastai_imagenette.json; '' for none)")
    parser.add_argument("resnet50_options", nargs="*", help="after --: further main.py options for this repository's side")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.data_dir = str(Path(args.data_dir or os.environ.get("IMAGENET_DIR") or "data/imagenette").expanduser().resolve())
    if args.child:  # one fastai run, in this fresh process
        result = run_fastai(args.data_dir, args.image_size, args.epochs, args.seed, args.workers)
        Path(args.result).write_text(json.dumps(result))
        return result
    if args.only != "resnet50" and fastai_version() is None:
        parser.error("fastai does not import here: pip install fastai (it is not one of this repository's "
                     "requirements), or give --only resnet50")
    missing = [split for split in ("train", "val") if not (Path(args.data_dir) / split).is_dir()]
    if missing:
        parser.error(f"--data_dir {args.data_dir} has no {' and no '.join(missing)} folder: both sides read the "
                     "ImageNet layout (train/<class>/*.JPEG, val/<class>/*.JPEG)")
    return compare(args)


if __name__ == "__main__":
    main()

"""One command line for long or headless runs: the LR range test (--find_lr), training, or both, on
CIFAR-10/100 or an ImageNet-style folder, in one process or several under torchrun.

Every training setting defaults to the recipe of the data set and model (recipes.py: S10 for CIFAR with
the custom ResNet, RESNET50_CIFAR for CIFAR with --model resnet50, IMAGENET for image folders); any
option given on the command line overrides it. The run prints the settings it uses.

  # the range test alone: writes lr_finder_plot.png, lr_finder_log.txt and suggested_lr.json
  python main.py --data_dir ~/imagenet --find_lr --batch_size 256 --amp --output_dir runs/r50_lr
  # train with its suggestion (the JSON is checked for the same batch size)
  python main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 --max_lr runs/r50_lr/suggested_lr.json --amp --output_dir runs/r50
  # both in one command: the range test, then training at its suggested max LR
  python main.py --dataset CIFAR100 --find_lr --epochs 30 --output_dir runs/c100
  # continue after a crash, Ctrl-C or SIGTERM: the same schedule, from the last finished epoch
  python main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 --max_lr 0.8 --amp --output_dir runs/r50 --resume
  torchrun --nproc_per_node=4 main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 --max_lr 0.8 --amp ...
  CPU smoke run:  python main.py --dataset cifar10 --epochs 1 --max_samples 500 --batch_size 50 --output_dir /tmp/smoke

--find_lr alone, or with --epochs 1 (the range test is "always 1 epoch"), runs only the range test; with
--epochs N > 1 it then trains for N epochs at the suggested max LR. Training writes last.pt, best.pt,
epoch_<k>.pt (--save_every), history.json and curves.png into --output_dir. Under torchrun,
--batch_size is the global batch, split over the processes; only rank 0 writes files and prints.
"""
# Only the standard library at the top: --help and argument errors answer before torch (seconds) loads.
import argparse
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from recipes import SCHEDULES

DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagefolder": "imagefolder", "imagenet": "imagefolder",
            "imagenet1k": "imagefolder", "custom": "imagefolder"}
MODELS = ("custom_resnet", "resnet50", "speedrun")
RECIPE_NAMES = ("s10", "imagenet", "resnet50_cifar", "speedrun")
REPORT_FILES = ("suggested_lr.json", "lr_finder_log.txt")
DEFAULT_SEED = 1
# option -> recipe field; the default of each comes from the recipe of the data set and model
RECIPE_OPTIONS = {
    "epochs": "epochs", "batch_size": "batch_size", "max_lr": "max_lr", "weight_decay": "weight_decay",
    "momentum": "momentum", "label_smoothing": "label_smoothing", "image_size": "image_size",
    "cutout_holes": "cutout_holes", "cutout_length": "cutout_length", "rotate_degrees": "rotate_degrees",
    "color_jitter": "color_jitter", "pct_start": "pct_start", "div_factor": "div_factor",
    "final_div_factor": "final_div_factor",
    "anneal_strategy": "anneal_strategy", "three_phase": "three_phase", "cycle_momentum": "cycle_momentum",
    "base_momentum": "base_momentum", "max_momentum": "max_momentum", "lr_start": "lr_start", "lr_end": "lr_end",
    "lr_iter": "lr_iter", "crop_padding": "crop_padding", "alternating_flip": "alternating_flip",
    "bias_lr_scale": "bias_lr_scale", "weight_average": "weight_average", "tta_views": "tta_views",
    "whiten_bias_epochs": "whiten_bias_epochs",
}


def non_negative_int(text):
    """An argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive(kind):
    """An argparse type: a number of ``kind`` (int or float) that must be > 0."""
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names it in "invalid int value"
    return parse


def holdout_size(text):
    """An argparse type: a number of images (an integer >= 1) or a share of each class (in (0, 1))."""
    value = float(text)
    if value >= 1 and value == int(value):
        return int(value)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number of images (1, 2, ...) or a share in (0, 1), got {text}")
    return value


def dataset_name(text):
    """Case-insensitive data-set names with the documented aliases (ImageNet, imagenet1k, custom)."""
    key = text.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise argparse.ArgumentTypeError(f"unknown data set {text!r}: choose cifar10, cifar100, imagefolder "
                                         "(aliases: ImageNet, imagenet1k, custom)")
    return DATASETS[key]


def lr_iterations(text):
    """``--lr_iter``: a number of batches (at least 2), or ``epoch`` for one pass over the training data."""
    if text.lower() == "epoch":
        return "epoch"
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (or 'epoch'), got {text}")
    return value


def max_lr_value(text):
    """``--max_lr``: a number, or the path of a range test's ``suggested_lr.json``."""
    try:
        value = float(text)
    except ValueError:
        if not text.endswith(".json"):
            raise argparse.ArgumentTypeError(f"expected a number or a suggested_lr.json file, got {text!r}") from None
        return text
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def recipe_help(field, speedrun=False):
    """' (default: cifar10 ..., resnet50 on CIFAR ..., image folders ...)' for a recipe field (with
    ``speedrun``, the speedrun recipe's value too)."""
    from recipes import IMAGENET, RESNET50_CIFAR, S10, SPEEDRUN

    values = [(f"CIFAR {S10.name}", getattr(S10, field)), ("CIFAR --model resnet50", getattr(RESNET50_CIFAR, field)),
              ("image folders", getattr(IMAGENET, field))] + ([("--recipe speedrun", getattr(SPEEDRUN, field))]
                                                              if speedrun else [])
    return " (default from the recipe: " + ", ".join(f"{name} {value:g}" if isinstance(value, float)
                                                     else f"{name} {value}" for name, value in values) + ")"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and shows each fixed default that is set."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return f"{action.help} (default: %(default)s)"


def build_parser():
    """The command line: data, augmentation, range test, training and run options, each with its help."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    flag = argparse.BooleanOptionalAction
    data = parser.add_argument_group("data and model")
    data.add_argument("--data_dir", help="a folder with train/ and val/ class folders (ImageNet layout), or for "
                      "CIFAR one with train.npz/test.npz or torchvision's files (default: CIFAR10_DIR or ./data)")
    data.add_argument("--dataset", type=dataset_name, help="cifar10, cifar100 or imagefolder, any case; ImageNet, "
                      "imagenet1k and custom mean imagefolder (default: imagefolder when --data_dir holds train/ "
                      "and val/, else cifar10)")
    data.add_argument("--model", choices=MODELS, help="default: custom_resnet for CIFAR, resnet50 for image folders "
                      "(ResNet-50 on 32x32 CIFAR images gets the CIFAR stem: 3x3 stride-1 conv, no max-pool), "
                      "the recipe's model with --recipe")
    data.add_argument("--recipe", choices=RECIPE_NAMES, help="the training recipe (recipes.py) whose settings are the "
                      "defaults: speedrun trains SpeedrunNet on CIFAR from the batched loader with alternating flips, "
                      "lookahead weight averaging and test-time augmentation (default: s10 for CIFAR, resnet50_cifar "
                      "for CIFAR with --model resnet50, imagenet for image folders)")
    data.add_argument("--num_classes", type=positive(int), help="checked against the data (default: what the data holds)")
    data.add_argument("--image_size", "--img_size", type=positive(int), help="training crop size of image folders"
                      + recipe_help("image_size"))
    data.add_argument("--max_samples", type=positive(int), help="use a class-balanced subset of at most this "
                      "many images from each split (quick runs)")
    data.add_argument("--holdout", type=holdout_size, help="hold out this many training images (or, below 1, this "
                      "share of each class), the same class-balanced ones for every seed (dataset.holdout_split), "
                      "train on the rest and evaluate on them instead of the test or val set: the validation split "
                      "on which settings are chosen")
    data.add_argument("--cache_dir", default=os.environ.get("IMAGE_CACHE_DIR", "data/image_cache"),
                      help="image folders, batched loader: where the decoded images are kept (image_cache.py; "
                      "default: IMAGE_CACHE_DIR or data/image_cache)")
    data.add_argument("--batch_size", type=positive(int), help="images per step, over all processes"
                      + recipe_help("batch_size"))
    data.add_argument("--workers", "--num_workers", type=int, help="DataLoader workers per process "
                      "(default: the cores per process on this machine less one, at most 16)")
    data.add_argument("--loader", choices=["auto", "albumentations", "batched"], default="auto",
                      help="how training batches are made: albumentations (a DataLoader, one image at a time in "
                      "worker processes) or batched (CIFAR only: the uint8 images on the training device, each "
                      "batch cropped, flipped and cut out with tensor operations; one process, one cutout hole, "
                      "no rotation). auto: batched for CIFAR on one CUDA GPU where the settings allow it, "
                      "albumentations otherwise")
    data.add_argument("--strict_images", action="store_true", help="stop at the first image that cannot be "
                      "decoded (default: skip it with a warning naming it; stop after 20 failures in a row)")
    aug = parser.add_argument_group("augmentation (always on: Albumentations, or the same crop, flip and cutout "
                                    "as tensor operations with --loader batched)")
    aug.add_argument("--use_albumentation", action="store_true", help="augment with Albumentations "
                     "(= --loader albumentations)")
    aug.add_argument("--cutout", action=flag, help="cutout on or off (on: --cutout_holes holes of --cutout_length "
                     "pixels, filled with the data mean; default: on where the recipe has holes)")
    aug.add_argument("--cutout_holes", type=int, help="number of cutout holes" + recipe_help("cutout_holes"))
    aug.add_argument("--cutout_length", type=int, help="side of each cutout hole, pixels" + recipe_help("cutout_length"))
    aug.add_argument("--rotate_degrees", type=float, help="random rotation by at most this angle (0: off)"
                     + recipe_help("rotate_degrees"))
    aug.add_argument("--color_jitter", type=float, help="image folders: brightness/contrast/saturation jitter of "
                     "this strength (0: off, 0.4: the classic ImageNet value)" + recipe_help("color_jitter"))
    lr = parser.add_argument_group("LR range test")
    lr.add_argument("--find_lr", action="store_true", help="run the range test and write its report; with "
                    "--epochs N > 1, then train N epochs at its suggested max LR (alone or with --epochs 1: the "
                    "range test only)")
    lr.add_argument("--lr_advanced", action="store_true", help="accepted for compatibility: the range test "
                    "always reports all four suggestions (steepest, valley, min_loss, minimum)")
    lr.add_argument("--lr_start", type=positive(float), help="first learning rate" + recipe_help("lr_start"))
    lr.add_argument("--lr_end", type=positive(float), help="last learning rate" + recipe_help("lr_end"))
    lr.add_argument("--lr_iter", type=lr_iterations, help="iterations (batches), at least 2, or 'epoch' for one "
                    "pass over the training data" + recipe_help("lr_iter"))
    lr.add_argument("--lr_step_mode", choices=("exp", "linear"), default="exp", help="how the LR grows")
    lr.add_argument("--lr_smooth_f", type=float, default=0.05, help="loss smoothing factor in [0, 1)")
    lr.add_argument("--lr_diverge_th", type=float, default=5.0, help="stop once the loss exceeds this many times "
                    "the best (> 1)")
    lr.add_argument("--lr_accumulation_steps", type=positive(int), default=1, help="accumulate gradients over "
                    "this many batches per range-test step (effective batch = batch_size x this, the batch size "
                    "suggested_lr.json records). The range test alone: training does not accumulate, so --find_lr "
                    "--epochs N > 1 refuses it (the LR found would belong to another batch size)")
    lr.add_argument("--lr_plot", help="where to save the plot; the log and suggested_lr.json go into the same "
                    "folder (a folder name puts all three there; default: --output_dir)")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=positive(int), help="number of epochs" + recipe_help("epochs"))
    train.add_argument("--max_lr", "--lr", dest="max_lr", type=max_lr_value, help="peak LR of the one-cycle "
                       "schedule (starting LR of cosine/step), or a range test's suggested_lr.json"
                       + recipe_help("max_lr"))
    train.add_argument("--scheduler", choices=SCHEDULES, default="onecycle",
                       help="onecycle: OneCycleLR stepped per batch; constant: max_lr throughout; step: LR x "
                       "--gamma every --step_size epochs; warmup_cosine: linear warm-up over pct_start of the steps "
                       "from max_lr / div_factor, then cosine to 0, per batch; cosine: cosine decay to 0 per epoch; warmup_step: "
                       "the same warm-up, then LR x --gamma half-way and at three quarters of the steps; flat_cosine: "
                       "fastai's fit_flat_cos, max_lr for 75%% of the steps, then cosine to 0")
    train.add_argument("--pct_start", type=float, help="one-cycle: share of the steps spent rising to max_lr"
                       + recipe_help("pct_start"))
    train.add_argument("--div_factor", type=positive(float), help="one-cycle: first LR = max_lr / this"
                       + recipe_help("div_factor"))
    train.add_argument("--final_div_factor", type=positive(float), help="one-cycle: last LR = first LR / this"
                       + recipe_help("final_div_factor"))
    train.add_argument("--anneal_strategy", choices=("linear", "cos"), help="one-cycle: shape of the rise and fall"
                       + recipe_help("anneal_strategy"))
    train.add_argument("--three_phase", action=flag, help="one-cycle: a third phase that annihilates the LR"
                       + recipe_help("three_phase"))
    train.add_argument("--cycle_momentum", action=flag, help="one-cycle: momentum falls from --max_momentum to "
                       "--base_momentum while the LR rises, and back" + recipe_help("cycle_momentum"))
    train.add_argument("--base_momentum", type=float, help="one-cycle: lowest momentum" + recipe_help("base_momentum"))
    train.add_argument("--max_momentum", type=float, help="one-cycle: highest momentum" + recipe_help("max_momentum"))
    train.add_argument("--step_size", type=positive(int), help="step scheduler: epochs between LR drops "
                       "(default: a third of the epochs)")
    train.add_argument("--gamma", type=positive(float), default=0.1, help="step scheduler: LR factor at each drop")
    train.add_argument("--weight_decay", type=float, help="SGD weight decay" + recipe_help("weight_decay"))
    train.add_argument("--momentum", type=float, help="SGD Nesterov momentum when it does not cycle, in [0, 1)"
                       + recipe_help("momentum"))
    train.add_argument("--label_smoothing", type=float, help="cross-entropy label smoothing in [0, 1)"
                       + recipe_help("label_smoothing"))
    train.add_argument("--grad_clip", type=positive(float), help="clip the gradient norm to this value")
    tricks = parser.add_argument_group("the speedrun's tricks (each can be switched off to measure what it adds)")
    tricks.add_argument("--crop_padding", type=non_negative_int, help="CIFAR: pixels of reflect padding before the "
                        "random crop (the translation)" + recipe_help("crop_padding", speedrun=True))
    tricks.add_argument("--alternating_flip", action=flag, help="CIFAR, batched loader: each image mirrored on every "
                        "other epoch instead of at random" + recipe_help("alternating_flip", speedrun=True))
    tricks.add_argument("--bias_lr_scale", type=positive(float), help="batch-norm biases train at this many times "
                        "the LR" + recipe_help("bias_lr_scale", speedrun=True))
    tricks.add_argument("--weight_average", action=flag, help="evaluate and keep lookahead-averaged weights "
                        "(training_utils.LookaheadAverage)" + recipe_help("weight_average", speedrun=True))
    tricks.add_argument("--tta_views", type=int, choices=(1, 2, 6), help="views of the final test-time "
                        "augmentation: 1 (none), 2 (+ mirror), 6 (+ 1-pixel shifts)" + recipe_help("tta_views", speedrun=True))
    tricks.add_argument("--whiten_bias_epochs", type=non_negative_int, help="SpeedrunNet: epochs during which the "
                        "whitening layer's bias trains" + recipe_help("whiten_bias_epochs", speedrun=True))
    train.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), help="how the model computes. "
                       "auto (the notebooks' rule): bf16 autocast on GPUs from compute capability 8.0 and on CPUs "
                       "with bf16 units, fp16 autocast with a GradScaler on older GPUs, fp32 where neither pays "
                       "off; the log says what was chosen and why (default: auto)")
    train.add_argument("--amp", action="store_true", help="the specification's spelling of --precision auto")
    train.add_argument("--deterministic", action="store_true", help="CUDA: deterministic cuDNN algorithms, no "
                       "autotuning (cudnn.benchmark off), so a resumed run repeats the straight run bit for bit on "
                       "the same GPU and software; a little slower. CPU runs are deterministic anyway")
    train.add_argument("--compile", action="store_true", help="train the torch.compile'd model (the first steps "
                       "compile it: a minute or more; off by default until a measurement shows it pays, see "
                       "benchmarks/throughput.py --compile); checkpoints hold the plain model's weights")
    train.add_argument("--pretrained", "--use_pretrained", action="store_true", help="start ResNet-50 from "
                       "torchvision's ImageNet weights (downloaded once)")
    train.add_argument("--torchvision_init", action="store_true", help="ResNet-50 from scratch with torchvision's "
                       "initialisation; by default each block's last batch-norm scale starts at zero (Goyal et al.), "
                       "which lets the range test and training see it learn: see ImageNet_LR_Finder.ipynb")
    run = parser.add_argument_group("run")
    run.add_argument("--output_dir", default="runs", help="folder for the report, checkpoints and history")
    run.add_argument("--save_every", type=int, default=5, help="also keep epoch_<k>.pt every this many epochs (0: off)")
    run.add_argument("--save_best", action="store_true", help="accepted for compatibility: best.pt is always kept")
    previous = run.add_mutually_exclusive_group()
    previous.add_argument("--resume", "--checkpoint", nargs="?", const=True, metavar="CHECKPOINT",
                          help="continue the run in --output_dir from its last.pt (or from CHECKPOINT): same "
                          "schedule, same history, the same result as a run that never stopped")
    previous.add_argument("--overwrite", action="store_true", help="replace a previous run in --output_dir")
    run.add_argument("--seed", type=int, help=f"seed for weights, data order, augmentations and --max_samples "
                     f"subsets (default: {DEFAULT_SEED}; --resume continues with the checkpoint's seed, and says so)")
    run.add_argument("--device", default="auto", help="auto (CUDA when available), cuda, cuda:N or cpu")
    run.add_argument("--no_cuda", action="store_true", help="run on the CPU even when CUDA is available")
    run.add_argument("--no_plots", action="store_true", help="skip figures other than the range-test plot")
    return parser


def base_recipe(args):
    """The recipe the run starts from: ``--recipe``, or the one of the data set and model."""
    from recipes import RECIPES, recipe_for

    return RECIPES[args.recipe] if args.recipe else recipe_for(args.dataset, args.model)


def apply_recipe(args):
    """Fill every option left unset from the recipe of the data set and model; returns the recipe."""
    recipe = base_recipe(args)
    for option, field in RECIPE_OPTIONS.items():
        if getattr(args, option) is None:
            setattr(args, option, getattr(recipe, field))
    if args.cutout is False:
        args.cutout_holes = 0
    elif args.cutout and not (args.cutout_holes and args.cutout_length):
        args.cutout_holes, args.cutout_length = args.cutout_holes or 1, args.cutout_length or 16
    return recipe


def validate(parser, args):
    """Reject impossible settings with an argparse error (exit code 2) before any work starts; fills in
    ``args.dataset``, ``args.model``, the recipe's defaults, ``args.train`` (whether to train),
    ``args.resume`` (a checkpoint path or None) and ``args.report_dir``."""
    def check(ok, message):
        if not ok:
            parser.error(message)

    world = int(os.environ.get("WORLD_SIZE", 1))
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else None
    check(data_dir is None or data_dir.is_dir(), f"--data_dir {args.data_dir} is not an existing folder")
    has_splits = data_dir is not None and (data_dir / "train").is_dir() and (data_dir / "val").is_dir()
    args.dataset = args.dataset or ("imagefolder" if has_splits else "cifar10")
    check(args.dataset != "imagefolder" or has_splits,
          f"--dataset imagefolder needs --data_dir with train/ and val/ class folders; {args.data_dir} has none")
    if args.recipe:
        from recipes import RECIPES
        model = RECIPES[args.recipe].model
        check(args.model in (None, model), f"--recipe {args.recipe} trains --model {model}, not {args.model}")
        check((args.dataset == "imagefolder") == (args.recipe == "imagenet"),
              f"--recipe {args.recipe} is for {'image folders' if args.recipe == 'imagenet' else 'CIFAR'}")
        args.model = model
    check(args.model != "speedrun" or args.dataset != "imagefolder", "--model speedrun is built for 32x32 CIFAR images")
    args.model = args.model or ("resnet50" if args.dataset == "imagefolder" else "custom_resnet")
    check(not (args.model == "custom_resnet" and args.dataset == "imagefolder"),
          "--model custom_resnet is built for 32x32 CIFAR images; use --model resnet50 for image folders")
    check(not args.pretrained or args.model == "resnet50", "--pretrained applies to --model resnet50")
    check(not args.torchvision_init or (args.model == "resnet50" and not args.pretrained),
          "--torchvision_init applies to --model resnet50 trained from scratch (not with --pretrained)")
    args.train = not args.find_lr or (args.epochs or 1) > 1
    apply_recipe(args)
    check(args.lr_start < args.lr_end, f"--lr_start {args.lr_start:g} must be below --lr_end {args.lr_end:g}")
    check(0 <= args.lr_smooth_f < 1, f"--lr_smooth_f must be in [0, 1), got {args.lr_smooth_f}")
    check(args.lr_diverge_th > 1, f"--lr_diverge_th must be > 1, got {args.lr_diverge_th}")
    check(0 < args.pct_start < 1, f"--pct_start must be in (0, 1), got {args.pct_start}")
    check(args.weight_decay >= 0, f"--weight_decay must be >= 0, got {args.weight_decay}")
    for name in ("momentum", "base_momentum", "max_momentum"):
        check(0 <= getattr(args, name) < 1, f"--{name} must be in [0, 1), got {getattr(args, name)}")
    check(args.base_momentum <= args.max_momentum, f"--base_momentum {args.base_momentum} must not exceed "
          f"--max_momentum {args.max_momentum}")
    check(0 <= args.label_smoothing < 1, f"--label_smoothing must be in [0, 1), got {args.label_smoothing}")
    check(args.cutout_holes >= 0 and args.cutout_length >= 0, "--cutout_holes and --cutout_length must be >= 0")
    check(0 <= args.rotate_degrees <= 180, f"--rotate_degrees must be in [0, 180], got {args.rotate_degrees}")
    check(0 <= args.color_jitter <= 1, f"--color_jitter must be in [0, 1], got {args.color_jitter}")
    check(args.save_every >= 0, f"--save_every must be >= 0, got {args.save_every}")
    check(args.workers is None or args.workers >= 0, f"--workers must be >= 0, got {args.workers}")
    check(args.batch_size % world == 0, f"--batch_size {args.batch_size} must divide over {world} processes")
    check(not (args.find_lr and world > 1), "--find_lr runs in one process: run it without torchrun")
    check(not (args.find_lr and args.resume), "--resume continues a training run; it does not apply to --find_lr")
    accumulated = args.batch_size * args.lr_accumulation_steps
    check(not (args.find_lr and args.train and args.lr_accumulation_steps > 1),
          f"--lr_accumulation_steps {args.lr_accumulation_steps} makes the range test find the max LR for batches of "
          f"{accumulated} images, but training steps every --batch_size {args.batch_size} images (it does not "
          f"accumulate): drop --lr_accumulation_steps, or run the range test alone (--find_lr without --epochs) and "
          f"train at --batch_size {accumulated} with --max_lr <its suggested_lr.json>")
    check(args.image_size >= 32, f"--image_size must be at least 32, got {args.image_size}")
    check(not (args.use_albumentation and args.loader == "batched"),
          "--use_albumentation and --loader batched contradict each other: choose one")
    if args.use_albumentation:
        args.loader = "albumentations"
    check(not (args.amp and args.precision not in (None, "auto")),
          f"--amp means --precision auto; it contradicts --precision {args.precision}: choose one")
    args.precision = args.precision or "auto"
    if args.alternating_flip:
        check(args.loader != "albumentations", ("--alternating_flip" if not base_recipe(args).alternating_flip else
                                                f"--recipe {args.recipe}") + ": alternating flips come from the "
              "batched loader; leave out --loader albumentations / --use_albumentation (or add --no-alternating_flip)")
        args.loader = "batched"
    if args.model == "speedrun":
        check(args.loader != "albumentations", "--model speedrun trains from the batched loader (its whitening layer "
              "starts from the training images' patches): leave out --loader albumentations / --use_albumentation")
        args.loader = "batched"
    if args.loader == "batched":
        problem = batched_loader_problem(args, world)
        check(problem is None, problem)
    if isinstance(args.max_lr, str):
        check(not args.find_lr, "--find_lr picks the max LR itself; leave out --max_lr")
        args.max_lr = max_lr_from_report(parser, args.max_lr, args.batch_size)
    output_dir = Path(args.output_dir).expanduser()
    args.report_dir = output_dir
    if args.lr_plot:
        plot = Path(args.lr_plot).expanduser()
        args.report_dir = plot if plot.is_dir() or not plot.suffix else plot.parent
        args.lr_plot = None if plot.is_dir() or not plot.suffix else plot
    if args.resume:
        args.resume = Path(output_dir / "last.pt" if args.resume is True else args.resume).expanduser()
        check(args.resume.is_file(), f"--resume: checkpoint {args.resume} does not exist")
    else:
        args.resume = None
        args.seed = DEFAULT_SEED if args.seed is None else args.seed
    previous_run = (output_dir / "last.pt").exists() and args.train
    previous_report = args.find_lr and any((args.report_dir / name).exists() for name in REPORT_FILES)
    check(not (previous_run or previous_report) or args.resume or args.overwrite,
          f"{'--output_dir ' + str(args.output_dir) if previous_run else str(args.report_dir)} holds a previous "
          f"{'run (last.pt)' if previous_run else 'range test (suggested_lr.json)'}: pass --resume to continue it, "
          "--overwrite to replace it, or choose another folder")
    for folder in {output_dir, args.report_dir}:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write_test_{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            parser.error(f"folder {folder} cannot be written: {error.strerror or error}")


def max_lr_from_report(parser, path, batch_size):
    """The ``suggested_lr`` of a range test's JSON, refused when it was found at another batch size."""
    try:
        report = json.loads(Path(path).expanduser().read_text())
    except (OSError, ValueError) as error:
        parser.error(f"--max_lr {path}: cannot read it as a range test's suggested_lr.json ({error})")
    if not report.get("suggested_lr"):
        parser.error(f"--max_lr {path}: the range test made no suggestion ({report.get('reason')}); run it again")
    if report.get("batch_size") != batch_size:
        parser.error(f"--max_lr {path}: the range test ran at batch size {report.get('batch_size')}, this run at "
                     f"{batch_size}; the best LR depends on the batch size: run the range test again at "
                     f"--batch_size {batch_size}, or train at --batch_size {report.get('batch_size')}")
    return float(report["suggested_lr"])


def resumed_seed(checkpoint, asked, log):
    """The seed a resumed run continues with: the checkpoint's, whatever ``--seed`` (``asked``, None when not
    given) says, so that the subset, the shuffling and the augmentations of the remaining epochs are those of
    the run that stopped; the log names it, and a differing ``--seed`` as ignored. A checkpoint without a
    seed continues with ``asked`` (default ``DEFAULT_SEED``)."""
    from training_utils import load_checkpoint

    saved = load_checkpoint(checkpoint).get("seed")
    if saved is None:
        return DEFAULT_SEED if asked is None else asked
    if asked is not None and asked != saved:
        log(f"note: --seed {asked} ignored: {checkpoint} was made with seed {saved}, and a resumed run continues "
            "with it")
    else:
        log(f"seed {saved}, from {checkpoint}")
    return saved


def setup_distributed(device_name):
    """``(rank, world_size, device)``; under torchrun, joins the process group (NCCL on CUDA, gloo on CPU)."""
    import torch

    from utils import get_device

    device = get_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return 0, 1, device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            sys.exit(f"main.py: error: torchrun started process {local_rank} on a machine with "
                     f"{torch.cuda.device_count()} GPU(s): use --nproc_per_node {torch.cuda.device_count()} "
                     "(one process per GPU), or --no_cuda for CPU processes")
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world, torch.device(f"cuda:{local_rank}" if device.type == "cuda" else "cpu")


def in_turn(work):
    """``work()`` in every process, but never two at once on the same files: rank 0 first (it downloads
    CIFAR when it is missing), then the first process of each other machine, then all the rest, with a
    barrier between the waves. One process: just ``work()``."""
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return work()
    rank, local_rank = torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", 0))
    result = None
    for turn in (rank == 0, rank != 0 and local_rank == 0, local_rank != 0):
        if turn:
            result = work()
        torch.distributed.barrier()
    return result


def build_data(args):
    """``(train_set, val_set, class_names)`` for ``args.dataset``, with the matching Albumentations
    transforms; ``--max_samples`` keeps a class-balanced subset of each split."""
    import dataset

    if args.dataset == "imagefolder":
        return dataset.image_folder_datasets(args.data_dir, args.image_size, args.max_samples, args.seed,
                                             args.strict_images, args.cutout_holes, args.cutout_length,
                                             args.rotate_degrees, args.color_jitter, args.holdout)
    splits = [dataset.load_cifar(args.dataset, args.data_dir, train=train) for train in (True, False)]
    if args.holdout:  # the validation split replaces the test set, which stays unseen
        splits = list(dataset.split_arrays(*splits[0], args.holdout))
    if args.max_samples:
        splits = [(images[keep], labels[keep]) for images, labels in splits
                  for keep in [dataset.balanced_indices(labels, args.max_samples, args.seed)]]
    mean, std = dataset.channel_stats(splits[0][0])
    train_transforms = dataset.cifar_train_transforms(mean, std, args.cutout_length, args.cutout_holes,
                                                      padding=args.crop_padding, rotate_degrees=args.rotate_degrees)
    train_set = dataset.AlbumentationsDataset(dataset.ImageArrays(*splits[0]), train_transforms, seed=args.seed)
    val_set = dataset.AlbumentationsDataset(dataset.ImageArrays(*splits[1]), dataset.cifar_test_transforms(mean, std))
    return train_set, val_set, dataset.class_names(args.dataset)


def note_partial_imagenette(data_dir, log):
    """A folder with Imagenette's classes but not all its images says so before it trains: its accuracy is
    not the leaderboard's."""
    import imagenette

    note = imagenette.not_full_imagenette(imagenette.folder_counts(data_dir))
    if note:
        log(f"note: {note}")


def batched_loader_problem(args, world):
    """Why the batched loader cannot train these settings (CIFAR, one process, at most one cutout hole, no
    rotation), as the message for ``--loader batched``; None when it can."""
    if args.dataset == "imagefolder" and (args.cutout_holes or args.rotate_degrees or args.color_jitter):
        return ("--loader batched crops and flips image folders, with no cutout, rotation or colour jitter: use "
                "--loader albumentations for those")
    if world != 1:
        return "--loader batched runs in one process; under torchrun use --loader albumentations"
    if args.rotate_degrees != 0:
        return "--loader batched has no rotation: use --loader albumentations for --rotate_degrees"
    if args.cutout_holes > 1:
        return (f"--loader batched cuts one hole per image, not --cutout_holes {args.cutout_holes}: use "
                "--loader albumentations for more")
    return None


def choose_loader(args, device, world):
    """``"batched"`` or ``"albumentations"``: ``--loader``, or for ``auto`` the batched loader wherever it
    can train on CUDA, where one image at a time in a few CPU workers cannot keep the GPU busy, and for image
    folders everywhere, where decoding every JPEG in every epoch costs as much as the ResNet-50 step."""
    if args.loader != "auto":
        return args.loader
    possible = batched_loader_problem(args, world) is None
    return "batched" if possible and (device.type == "cuda" or args.dataset == "imagefolder") else "albumentations"


def cached_images(args, split, class_names=None):
    """A split of ``--data_dir`` decoded once (``image_cache``) at 1.25x the training size, with ``--max_samples``
    applied as ``dataset.image_folder`` applies it: ``(images, labels, class_names)``."""
    import dataset
    import image_cache

    images, labels, class_names = image_cache.cached_split(args.data_dir, split, round(args.image_size * 1.25),
                                                           args.cache_dir, class_names, args.strict_images)
    if args.max_samples and args.max_samples < len(labels):
        keep = dataset.balanced_indices(labels, args.max_samples, args.seed)
        images, labels = images[keep], labels[keep]
    return images, labels, class_names


def image_loaders(args, batch, device):
    """BatchedImageLoaders over the decoded training and evaluation images (the val folder, or with
    ``--holdout`` the held-out training images): the recipe's random-resized crop (the share of the area as
    ``dataset.imagenet_augmentations``) and flip, as tensor operations."""
    import batched_data
    import dataset

    images, labels, class_names = cached_images(args, "train")
    if args.holdout:
        (images, labels), (val_images, val_labels) = dataset.split_arrays(images, labels, args.holdout)
    else:
        val_images, val_labels, _ = cached_images(args, "val", class_names)
    common = dict(size=args.image_size, mean=dataset.IMAGENET_MEAN, std=dataset.IMAGENET_STD, device=device)
    scale = dataset.crop_scale(args.image_size)
    return (batched_data.BatchedImageLoader(images, labels, batch, train=True, scale=scale, seed=args.seed, **common),
            batched_data.BatchedImageLoader(val_images, val_labels, batch, train=False, **common))


def batched_loaders(args, train_set, val_set, batch, device):
    """BatchedCifarLoaders on ``device`` over the arrays of ``build_data``'s CIFAR sets: the recipe's crop
    padding, flip (random, or alternating) and cutout, and the same normalisation as their Albumentations
    transforms."""
    import batched_data
    import dataset

    if args.dataset == "imagefolder":
        return image_loaders(args, batch, device)
    images, labels = train_set.source.images, train_set.source.labels
    mean, std = dataset.channel_stats(images)
    cutout = args.cutout_length if args.cutout_holes else 0
    train_loader = batched_data.BatchedCifarLoader(images, labels, batch, mean, std, train=True, device=device,
                                                   cutout_size=cutout, seed=args.seed, pad=args.crop_padding,
                                                   flip="alternating" if args.alternating_flip else "random")
    val_loader = batched_data.BatchedCifarLoader(val_set.source.images, val_set.source.labels, batch, mean, std,
                                                 train=False, device=device)
    return train_loader, val_loader


def training_recipe(args):
    """The recipe as this run uses it: the data set's recipe with every command-line override."""
    from dataclasses import replace

    overrides = {field: getattr(args, option) for option, field in RECIPE_OPTIONS.items()}
    overrides["max_lr"] = args.max_lr or 0.0
    return replace(base_recipe(args), **overrides)


def build_scheduler(args, recipe, optimizer, steps_per_epoch):
    """The ``--scheduler`` (``recipes.build_schedule``) and whether it steps per batch."""
    from recipes import build_schedule

    return build_schedule(args.scheduler, recipe, optimizer, args.max_lr, args.epochs, steps_per_epoch,
                          step_size=args.step_size, gamma=args.gamma)


def run(args, command):
    """Build data, model and optimizer, then run the range test, train, or both."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    import batched_data
    import dataset
    import visualize
    from custom_resnet import build_model
    from lr_finder import find_lr, write_report
    from recipes import build_criterion, build_optimizer
    from batched_data import TestTimeAugmentation
    from training_utils import (LookaheadAverage, Precision, compile_model, fit, precision_reason, replicas_agree, test,
                                unwrap)
    from utils import count_parameters, describe_machine, seed_everything

    rank, world, device = setup_distributed("cpu" if args.no_cuda else args.device)
    # fixed input shapes: let cuDNN time its algorithms once, unless the run must be repeatable bit for bit
    torch.backends.cudnn.benchmark = device.type == "cuda" and not args.deterministic
    torch.backends.cudnn.deterministic = args.deterministic
    if args.deterministic:  # any op without a deterministic implementation is then named in a warning
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        precision = Precision.resolve(device, args.precision)
    except ValueError as error:
        sys.exit(f"main.py: error: --precision {args.precision}: {error}")
    master = rank == 0
    log = print if master else (lambda *_: None)
    if args.resume:  # the subset, the shuffling and the augmentations were drawn from the checkpoint's seed
        args.seed = resumed_seed(args.resume, args.seed, log)
    output_dir = Path(args.output_dir).expanduser()
    train_set, val_set, class_names = in_turn(lambda: build_data(args))
    if args.num_classes is not None and args.num_classes != len(class_names):
        sys.exit(f"main.py: error: --num_classes {args.num_classes} does not match the data: {args.dataset} "
                 f"{args.data_dir or ''} holds {len(class_names)} classes")
    batch = args.batch_size // world
    if choose_loader(args, device, world) == "batched":
        train_loader, val_loader = batched_loaders(args, train_set, val_set, batch, device)
    else:
        train_loader = dataset.make_loader(train_set, batch, True, device, args.workers, seed=args.seed,
                                           num_replicas=world, rank=rank)
        val_loader = dataset.make_loader(val_set, batch, False, device, args.workers, num_replicas=world, rank=rank)
    if len(train_loader) == 0:
        sys.exit(f"main.py: error: {len(train_set)} training images make no full batch of {args.batch_size}")
    recipe = training_recipe(args)
    seed_everything(args.seed)
    model_name = {"custom_resnet": "CustomResNet", "resnet50": "ResNet-50 v1.5", "speedrun": "SpeedrunNet"}[args.model]
    if args.model == "resnet50" and not args.pretrained:
        model_name += ", torchvision's init" if args.torchvision_init else ", zero-init residuals"
    cifar = args.dataset != "imagefolder"
    # in turn: rank 0 downloads --pretrained weights into the hub cache first, the others then read them
    model = precision.prepare(in_turn(lambda: build_model(
        f"{args.model}_cifar" if cifar and args.model == "resnet50" else args.model, len(class_names),
        args.pretrained, zero_init_residual=not args.torchvision_init)))
    if args.model == "speedrun":
        model.whiten.initialize(train_loader.normalize(train_loader.images[:5000]))
        model.whiten.bias_train_steps = recipe.whiten_bias_epochs * len(train_loader)
    criterion = build_criterion(recipe)
    image_size = 32 if cifar else args.image_size
    folder = args.data_dir or os.environ.get(f"{args.dataset.upper()}_DIR", "data")
    batched = isinstance(train_loader, (batched_data.BatchedCifarLoader, batched_data.BatchedImageLoader))
    loader_name = "batched loader (on the device)" if batched else "Albumentations DataLoader"
    description = f"{args.dataset} {folder} ({len(class_names)} classes, {len(train_set)} training images at {image_size}px" + (
        f", evaluated on {len(val_set)} held-out training images)" if args.holdout else ")")
    log(f"{description}; {model_name} ({count_parameters(model):,} parameters) on {describe_machine(device)}, "
        f"x {world}, {precision.name}, batch {args.batch_size}, {len(train_loader)} steps per epoch, {loader_name}")
    if not cifar:
        note_partial_imagenette(args.data_dir, log)
    why = precision_reason(device, precision.name) if args.precision == "auto" else "as asked (--precision)"
    log(f"precision {precision.name}: {why}" + ("; deterministic cuDNN" if args.deterministic else ""))
    log("recipe " + recipe.name + ": " + ", ".join(
        f"{field}={getattr(recipe, field):g}" if isinstance(getattr(recipe, field), float) else
        f"{field}={getattr(recipe, field)}" for field in ("epochs", "max_lr", "weight_decay", "momentum",
                                                          "label_smoothing", "cutout_holes", "cutout_length",
                                                          "rotate_degrees", "color_jitter", "pct_start",
                                                          "div_factor",
                                                          "final_div_factor", "anneal_strategy", "three_phase",
                                                          "cycle_momentum", "base_momentum", "max_momentum",
                                                          "crop_padding", "alternating_flip", "bias_lr_scale",
                                                          "weight_average", "tta_views", "whiten_bias_epochs"))
        + f", scheduler={args.scheduler}")
    if args.find_lr:
        num_iter = len(train_loader) if args.lr_iter == "epoch" else args.lr_iter
        # the same param groups as training (the speedrun's batch-norm biases at 64x the LR under test)
        optimizer = build_optimizer(recipe, model if recipe.bias_lr_scale != 1 else model.parameters(), lr=args.lr_start)
        result = find_lr(model, optimizer, criterion, train_loader, device=device, start_lr=args.lr_start,
                         end_lr=args.lr_end, num_iter=num_iter, step_mode=args.lr_step_mode,
                         smooth_f=args.lr_smooth_f, diverge_th=args.lr_diverge_th, precision=precision,
                         accumulation_steps=args.lr_accumulation_steps)
        config = {"model": model_name, "image_size": image_size, "optimizer": f"SGD momentum {recipe.momentum} "
                  f"(Nesterov) weight decay {recipe.weight_decay}", "label_smoothing": recipe.label_smoothing,
                  "accumulation_steps": args.lr_accumulation_steps, "seed": args.seed}
        report = write_report(result, args.report_dir, description, args.batch_size * args.lr_accumulation_steps,
                              command, config, plot_file=args.lr_plot)
        for name, value in result.suggestions.items():
            log(f"{name:9s} {value:.3e}")
        for warning in result.warnings:
            log(f"WARNING: {warning}")
        log("wrote " + ", ".join(str(path) for path in report.values()))
        if not args.train:
            return
        if not result.suggestions:
            sys.exit(f"main.py: error: no max LR to train with: {result.reason}")
        args.max_lr = result.suggestions["min_loss"]
        recipe = training_recipe(args)
        log(f"training at the range test's suggested max LR {args.max_lr:.3g} (min_loss)")
    log(f"max LR {args.max_lr:g}, {args.epochs} epochs, scheduler {args.scheduler}")
    # batch-norm biases at their own LR scale (the speedrun's 64x) where the recipe has one
    optimizer = build_optimizer(recipe, model if recipe.bias_lr_scale != 1 else model.parameters(), lr=args.max_lr)
    weight_average = LookaheadAverage(model, args.epochs * len(train_loader)) if recipe.weight_average else None
    scheduler, per_batch = build_scheduler(args, recipe, optimizer, len(train_loader))
    if args.compile:
        model = compile_model(model)
    if world > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    split_name = "test" if cifar and not args.holdout else "val"  # what the evaluation set is called
    history = fit(model, device, train_loader, val_loader, optimizer, criterion, args.epochs, scheduler,
                  scheduler_per_batch=per_batch, precision=precision, grad_clip=args.grad_clip, topk=5,
                  checkpoint_dir=output_dir if master else None,
                  save_every=args.save_every, resume=args.resume, seed=args.seed, log=log,
                  test_name=split_name, weight_average=weight_average)
    history["eval_split"] = (f"holdout {len(val_set)}" if args.holdout else "test" if cifar else "val")
    if recipe.tta_views > 1:
        started = time.perf_counter()
        tested = test(TestTimeAugmentation(unwrap(model), recipe.tta_views), device, val_loader, criterion,
                      precision=precision)
        history["test_acc_tta"], history["tta_seconds"] = tested.acc, time.perf_counter() - started
        log(f"{split_name} accuracy with {recipe.tta_views}-view test-time augmentation: "
            f"{tested.acc:.2f}%")
    if world > 1:
        log(replicas_agree(model))
    if master:
        (output_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        written = "last.pt, best.pt, history.json"
        if not args.no_plots:
            visualize.plot_history(history, save_path=output_dir / "curves.png", split="test" if cifar else "validation")
            written += ", curves.png"
        log(f"best accuracy {max(history['test_acc']):.2f}%, last {history['test_acc'][-1]:.2f}%; wrote {written} "
            f"in {output_dir}")


def resume_command(argv, args):
    """The command that continues an interrupted training run: the same options, ``--resume`` instead of
    ``--overwrite``, and a finished range test's ``suggested_lr.json`` instead of ``--find_lr``; under
    torchrun, started by ``torchrun --nproc_per_node=<processes per machine>``."""
    kept, skip_value = [], False
    for item in argv:
        if skip_value and not item.startswith("--"):
            skip_value = False
            continue
        skip_value = item in ("--resume", "--checkpoint")
        if item not in ("--find_lr", "--overwrite", "--resume", "--checkpoint"):
            kept.append(item)
    if args.find_lr:
        kept += ["--max_lr", str(args.report_dir / "suggested_lr.json")]
    world = int(os.environ.get("WORLD_SIZE", 1))
    processes = os.environ.get("LOCAL_WORLD_SIZE", world)
    launcher = ["python"] if world == 1 else ["torchrun", f"--nproc_per_node={processes}"]
    return shlex.join([*launcher, "main.py", *kept, "--resume"])


def remove_previous_run(output_dir):
    """``--overwrite``: delete the previous run's last.pt, best.pt, epoch_<k>.pt, history.json and
    curves.png in ``output_dir`` (nothing else) before this run starts, so that an interrupt in its first
    epoch neither names the old run's epoch nor offers to resume the old run."""
    folder = Path(output_dir).expanduser()
    for path in folder.glob("*"):
        numbered = path.name.startswith("epoch_") and path.name.endswith(".pt") and path.name[6:-3].isdigit()
        if numbered or path.name in ("last.pt", "best.pt", "history.json", "curves.png"):
            path.unlink(missing_ok=True)


def one_line(error):
    """The message of an error, without the worker traceback a DataLoader wraps around it."""
    text = str(error)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def stop_on_sigterm(*_):
    """SIGTERM (sent by Colab and cluster schedulers) stops the run as Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv=None):
    """Check the arguments, then run; data, checkpoint and divergence errors end with one clear line.
    ``argv`` (a list of strings) lets Python code call it: ``main(["--find_lr", "--max_samples", "500"])``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(parser, args)
    master = int(os.environ.get("RANK", 0)) == 0
    if args.overwrite and args.train and master:
        remove_previous_run(args.output_dir)
    command = shlex.join(["python", "main.py", *(sys.argv[1:] if argv is None else argv)])
    if args.deterministic:  # cuBLAS reads this when it starts: before torch touches the GPU
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch
    from custom_resnet import PretrainedWeightsError
    from dataset import DataFormatError, DataNotFoundError
    from training_utils import CheckpointError, NonFiniteLossError

    previous_handler = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        run(args, command)
    except (DataNotFoundError, DataFormatError, CheckpointError, NonFiniteLossError, PretrainedWeightsError) as error:
        sys.exit(f"main.py: error: {one_line(error)}")
    except KeyboardInterrupt:
        if not master:  # rank 0 says how to continue, once
            sys.exit(1)
        if not (Path(args.output_dir).expanduser() / "last.pt").exists():
            sys.exit("main.py: stopped before the first epoch finished: there is nothing to resume")
        sys.exit(f"main.py: stopped. Continue with: {resume_command(sys.argv[1:] if argv is None else argv, args)}")
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()

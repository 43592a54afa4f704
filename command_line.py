"""main.py's options: one per recipe field (made from ``recipes.Recipe``'s fields, their types and help),
and those of the data, the range test and the run; the checks that need only the options.

Only the standard library and recipes.py: ``main.py --help`` and argument errors answer before torch loads.
"""
import argparse
import json
import os
from dataclasses import fields
from pathlib import Path

from recipes import DIVERGE_TH, IMAGENET, RESNET50_CIFAR, S10, SMOOTH_F, SPEEDRUN, STEP_MODE, Recipe

DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagefolder": "imagefolder", "imagenet": "imagefolder",
            "imagenet1k": "imagefolder", "custom": "imagefolder"}
MODELS = ("custom_resnet", "resnet50", "speedrun")
RECIPE_NAMES = ("s10", "imagenet", "resnet50_cifar", "speedrun")
DEFAULT_SEED = 1
# recipe fields whose option has another spelling too (the specification's) or a stricter type than the field's
ALIASES = {"image_size": ["--img_size"], "max_lr": ["--lr"]}
SPEEDRUN_FIELDS = ("crop_padding", "alternating_flip", "bias_lr_scale", "weight_average", "tta_views",
                   "whiten_bias_epochs")  # their help names the speedrun recipe's value too


class SettingsError(ValueError):
    """Settings that cannot run, said before any work starts (main.py prints it as an argparse error)."""


class SettingsParser(argparse.ArgumentParser):
    """An ArgumentParser that raises SettingsError instead of exiting when ``raise_errors`` (for Python
    callers: experiments.py)."""

    def __init__(self, *args, raise_errors=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.raise_errors = raise_errors

    def error(self, message):
        if self.raise_errors:
            raise SettingsError(message)
        super().error(message)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and shows each fixed default that is set."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return f"{action.help} (default: %(default)s)"


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


# the option's type where the field's own (int, float, str) would accept values that cannot run
TYPES = {"epochs": positive(int), "batch_size": positive(int), "image_size": positive(int), "max_lr": max_lr_value,
         "lr_iter": lr_iterations, "lr_start": positive(float), "lr_end": positive(float),
         "div_factor": positive(float), "final_div_factor": positive(float), "bias_lr_scale": positive(float),
         "gamma": positive(float), "crop_padding": non_negative_int, "whiten_bias_epochs": non_negative_int,
         "step_size": non_negative_int}


def recipe_help(field):
    """' (default from the recipe: CIFAR s10 ..., CIFAR --model resnet50 ..., image folders ...)' for a
    recipe field, with the speedrun recipe's value for its tricks."""
    values = [(f"CIFAR {S10.name}", getattr(S10, field)), ("CIFAR --model resnet50", getattr(RESNET50_CIFAR, field)),
              ("image folders", getattr(IMAGENET, field))]
    values += [("--recipe speedrun", getattr(SPEEDRUN, field))] if field in SPEEDRUN_FIELDS else []
    return " (default from the recipe: " + ", ".join(f"{name} {value:g}" if isinstance(value, float)
                                                     else f"{name} {value}" for name, value in values) + ")"


def add_recipe_options(parser):
    """``--<field>`` for every recipe field with an option, typed as the field (booleans: --x / --no-x),
    defaulting to None: the recipe's value (``main.resolve_recipe``)."""
    group = parser.add_argument_group("the recipe (recipes.py): each option overrides the field of the same name")
    for field in fields(Recipe):
        if not field.metadata.get("cli", True):
            continue
        names = [f"--{field.name}", *ALIASES.get(field.name, [])]
        help_text = field.metadata["help"] + recipe_help(field.name)
        if field.type is bool:
            group.add_argument(*names, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            group.add_argument(*names, type=TYPES.get(field.name, field.type), choices=field.metadata.get("choices"),
                               help=help_text)


def add_data_options(parser):
    """Data set, model, subset, held-out split, loaders and augmentation switches."""
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
                      "defaults (default: s10 for CIFAR, resnet50_cifar for CIFAR with --model resnet50, imagenet "
                      "for image folders)")
    data.add_argument("--num_classes", type=positive(int), help="checked against the data (default: what it holds)")
    data.add_argument("--max_samples", type=positive(int), help="use a class-balanced subset of at most this "
                      "many images from each split (quick runs)")
    data.add_argument("--holdout", type=holdout_size, help="hold out this many training images (or, below 1, this "
                      "share of each class), the same class-balanced ones for every seed (dataset.holdout_split), "
                      "train on the rest and evaluate on them instead of the test or val set: the validation split "
                      "on which settings are chosen")
    data.add_argument("--cache_dir", default=os.environ.get("IMAGE_CACHE_DIR", "data/image_cache"),
                      help="image folders, batched loader: where the decoded images are kept (image_cache.py; "
                      "default: IMAGE_CACHE_DIR or data/image_cache)")
    data.add_argument("--workers", "--num_workers", type=non_negative_int, help="DataLoader workers per process "
                      "(default: the cores per process on this machine less one, at most 16)")
    data.add_argument("--loader", choices=["auto", "albumentations", "batched"], default="auto",
                      help="how training batches are made: albumentations (a DataLoader, one image at a time in "
                      "worker processes) or batched (the uint8 images on the training device, each batch cropped, "
                      "flipped and cut out with tensor operations; one process, one cutout hole, no rotation). "
                      "auto: batched for image folders, and for CIFAR on one CUDA GPU where the settings allow it")
    data.add_argument("--strict_images", action="store_true", help="stop at the first image that cannot be "
                      "decoded (default: skip it with a warning naming it; stop after 20 failures in a row)")
    data.add_argument("--use_albumentation", action="store_true", help="= --loader albumentations")
    data.add_argument("--cutout", action=argparse.BooleanOptionalAction, help="cutout on or off (on: the recipe's "
                      "holes, or one of 16 pixels; default: on where the recipe has holes)")


def add_range_test_options(parser):
    """The range test's switch and the settings that are not the recipe's."""
    lr = parser.add_argument_group("LR range test (its range and iterations: --lr_start, --lr_end, --lr_iter)")
    lr.add_argument("--find_lr", action="store_true", help="run the range test and write its report; with "
                    "--epochs N > 1, then train N epochs at its suggested max LR (alone or with --epochs 1: the "
                    "range test only)")
    lr.add_argument("--lr_advanced", action="store_true", help="accepted for compatibility: the range test "
                    "always reports all four suggestions (steepest, valley, min_loss, minimum)")
    lr.add_argument("--lr_step_mode", choices=("exp", "linear"), default=STEP_MODE, help="how the LR grows")
    lr.add_argument("--lr_smooth_f", type=float, default=SMOOTH_F, help="loss smoothing factor in [0, 1)")
    lr.add_argument("--lr_diverge_th", type=float, default=DIVERGE_TH, help="stop once the loss exceeds this many times "
                    "the best (> 1)")
    lr.add_argument("--lr_accumulation_steps", type=positive(int), default=1, help="accumulate gradients over "
                    "this many batches per range-test step (effective batch = batch_size x this, the batch size "
                    "suggested_lr.json records). The range test alone: training does not accumulate, so --find_lr "
                    "--epochs N > 1 refuses it (the LR found would belong to another batch size)")
    lr.add_argument("--lr_plot", help="where to save the plot; the log and suggested_lr.json go into the same "
                    "folder (a folder name puts all three there; default: --output_dir)")


def add_run_options(parser):
    """Precision, device, files, resume and seed."""
    run = parser.add_argument_group("run")
    run.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), help="how the model computes. "
                     "auto (the notebooks' rule): bf16 autocast on GPUs from compute capability 8.0 and on CPUs "
                     "with bf16 units, fp16 autocast with a GradScaler on older GPUs, fp32 where neither pays "
                     "off; the log says what was chosen and why (default: auto)")
    run.add_argument("--amp", action="store_true", help="the specification's spelling of --precision auto")
    run.add_argument("--deterministic", action="store_true", help="CUDA: deterministic cuDNN algorithms, no "
                     "autotuning, so a resumed run repeats the straight run bit for bit on the same GPU and "
                     "software; a little slower. CPU runs are deterministic anyway")
    run.add_argument("--compile", action="store_true", help="train the torch.compile'd model (the first steps "
                     "compile it: a minute or more; see benchmarks/throughput.py --compile); checkpoints hold the "
                     "plain model's weights")
    run.add_argument("--pretrained", "--use_pretrained", action="store_true", help="start ResNet-50 from "
                     "torchvision's ImageNet weights (downloaded once)")
    run.add_argument("--torchvision_init", action="store_true", help="ResNet-50 from scratch with torchvision's "
                     "initialisation; by default each block's last batch-norm scale starts at zero (Goyal et al.)")
    run.add_argument("--output_dir", default="runs", help="folder for the report, checkpoints and history")
    run.add_argument("--save_every", type=non_negative_int, default=5, help="also keep epoch_<k>.pt every this many "
                     "epochs (0: off)")
    run.add_argument("--save_best", action="store_true", help="accepted for compatibility: best.pt is always kept")
    previous = run.add_mutually_exclusive_group()
    previous.add_argument("--resume", "--checkpoint", nargs="?", const=True, metavar="CHECKPOINT",
                          help="continue the run in --output_dir from its last.pt (or from CHECKPOINT): same "
                          "schedule, same history, the same result as a run that never stopped")
    previous.add_argument("--overwrite", action="store_true", help="replace a previous run in --output_dir")
    run.add_argument("--seed", type=int, help="seed for weights, data order, augmentations and --max_samples subsets "
                     f"(default: {DEFAULT_SEED}; --resume continues with the checkpoint's seed, and says so)")
    run.add_argument("--device", default="auto", help="auto (CUDA when available), cuda, cuda:N or cpu")
    run.add_argument("--no_cuda", action="store_true", help="run on the CPU even when CUDA is available")
    run.add_argument("--no_plots", action="store_true", help="skip figures other than the range-test plot")


def range_test_problems(args):
    """What makes the range test's own settings impossible, as messages (empty when none)."""
    found = []
    if not 0 <= args.lr_smooth_f < 1:
        found.append(f"--lr_smooth_f must be in [0, 1), got {args.lr_smooth_f}")
    if not args.lr_diverge_th > 1:
        found.append(f"--lr_diverge_th must be > 1, got {args.lr_diverge_th}")
    return found


def batched_loader_problem(cifar, recipe, world):
    """Why the batched loader cannot train these settings (CIFAR: one process, at most one cutout hole, no
    rotation; image folders: crop and flip only), as the message for ``--loader batched``; None when it can."""
    if not cifar and (recipe.cutout_holes or recipe.rotate_degrees or recipe.color_jitter):
        return ("--loader batched crops and flips image folders, with no cutout, rotation or colour jitter: use "
                "--loader albumentations for those")
    if world != 1:
        return "--loader batched runs in one process; under torchrun use --loader albumentations"
    if recipe.rotate_degrees != 0:
        return "--loader batched has no rotation: use --loader albumentations for --rotate_degrees"
    if recipe.cutout_holes > 1:
        return (f"--loader batched cuts one hole per image, not --cutout_holes {recipe.cutout_holes}: use "
                "--loader albumentations for more")
    return None


def max_lr_from_report(path, batch_size):
    """The ``suggested_lr`` of a range test's JSON; SettingsError when it was found at another batch size."""
    try:
        report = json.loads(Path(path).expanduser().read_text())
    except (OSError, ValueError) as error:
        raise SettingsError(f"--max_lr {path}: cannot read it as a range test's suggested_lr.json ({error})") from None
    if not report.get("suggested_lr"):
        raise SettingsError(f"--max_lr {path}: the range test made no suggestion ({report.get('reason')}); run it again")
    if report.get("batch_size") != batch_size:
        raise SettingsError(f"--max_lr {path}: the range test ran at batch size {report.get('batch_size')}, this run "
                            f"at {batch_size}; the best LR depends on the batch size: run the range test again at "
                            f"--batch_size {batch_size}, or train at --batch_size {report.get('batch_size')}")
    return float(report["suggested_lr"])

"""One run, trained from its resolved settings: what main.py, experiments.py and Python code call.

``RunSettings`` holds everything a run needs: the resolved ``Recipe`` (every training setting; main.py's
options that mirror its fields are made from them) and where the data, the device and the files are.
``train_run(settings)`` builds the data, the model and the optimizer, runs the range test, trains, or
both, and returns a ``RunResult``: the history and the model, or ``interrupted`` with the checkpoint to
resume from. Errors the user can fix (missing data, a bad checkpoint, a diverged loss) are raised as the
errors listed in ``USER_ERRORS``, each with a message of one line.

  from main import settings_from_argv
  result = train_run(settings_from_argv(["--recipe", "speedrun", "--epochs", "2"]))
"""
import json
import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

import batched_data
import dataset
import visualize
from checkpoints import CheckpointError, load_checkpoint
from command_line import DEFAULT_SEED, batched_loader_problem
from custom_resnet import PretrainedWeightsError, build_model
from distributed import in_turn, replicas_agree, setup_distributed
from lr_finder import find_lr, write_report
from precision import Precision, precision_reason
from recipes import (DIVERGE_TH, SMOOTH_F, STEP_MODE, Recipe, build_criterion, build_optimizer, build_schedule,
                     training_sizes)
from seeding import seed_everything
from training_utils import LookaheadAverage, NonFiniteLossError, compile_model, fit, test, unwrap
from utils import count_parameters, describe_machine

MODEL_NAMES = {"custom_resnet": "CustomResNet", "resnet50": "ResNet-50 v1.5", "speedrun": "SpeedrunNet"}


class RunError(RuntimeError):
    """Settings that meet the data or the machine and do not fit them (one line, said before training)."""


USER_ERRORS = (dataset.DataNotFoundError, dataset.DataFormatError, CheckpointError, NonFiniteLossError,
               PretrainedWeightsError, RunError)


@dataclass
class RunSettings:
    """A run's resolved settings: the recipe, then the data, the machine and the files."""
    recipe: Recipe                  # every training setting (max_lr 0: the range test chooses it)
    dataset: str = "cifar10"        # "cifar10", "cifar100" or "imagefolder"
    data_dir: str = None            # None: CIFAR10_DIR / CIFAR100_DIR, else ./data
    num_classes: int = None         # checked against the data
    max_samples: int = None         # a class-balanced subset of each split
    holdout: float = None           # held-out training images (a count, or a share of each class) to evaluate on
    cache_dir: str = "data/image_cache"  # image folders, batched loader: the decoded images
    workers: int = None             # DataLoader workers per process (None: dataset.default_workers)
    loader: str = "auto"            # "auto", "albumentations" or "batched"
    strict_images: bool = False     # stop at the first undecodable image
    pretrained: bool = False        # ResNet-50 from torchvision's ImageNet weights
    torchvision_init: bool = False  # ResNet-50 without zero-initialised residual branches
    device: str = "auto"            # "auto", "cpu", "cuda" or "cuda:N"
    precision: str = "auto"         # "auto", "bf16", "fp16" or "fp32"
    deterministic: bool = False     # CUDA: deterministic cuDNN, no autotuning
    compile: bool = False           # train the torch.compile'd model
    seed: int = DEFAULT_SEED        # a resumed run continues with its checkpoint's seed (None: none was given)
    find_lr: bool = False           # run the range test (then train at its min_loss suggestion when train)
    train: bool = True
    lr_step_mode: str = STEP_MODE
    lr_smooth_f: float = SMOOTH_F
    lr_diverge_th: float = DIVERGE_TH
    lr_accumulation_steps: int = 1
    report_dir: Path = Path("runs")  # the range test's report
    lr_plot: Path = None            # its plot, when not in report_dir
    output_dir: Path = Path("runs")  # checkpoints, history.json, curves.png
    save_every: int = 5
    resume: Path = None             # a checkpoint to continue from
    overwrite: bool = False         # remove a previous run's files in output_dir first
    plots: bool = True
    command: str = "python main.py"  # the command, for the range test's report

    @property
    def cifar(self):
        return self.dataset != "imagefolder"


@dataclass
class RunResult:
    """What a run gave: its history (None after a range test alone), model and range test, or
    ``interrupted`` with ``checkpoint``, the file to resume from (None: nothing finished)."""
    history: dict = None
    model: torch.nn.Module = None
    range_test: object = None
    interrupted: bool = False
    checkpoint: Path = None
    device: torch.device = None


def stop_on_sigterm(*_):
    """SIGTERM (sent by Colab and cluster schedulers) stops the run as Ctrl-C does."""
    raise KeyboardInterrupt


def train_run(settings, log=print):
    """Run the range test, train, or both, as ``settings`` say; returns a ``RunResult``. Ctrl-C or
    SIGTERM end it with ``interrupted=True`` (its last checkpoint continues it: ``resume``)."""
    previous_handler = signal.signal(signal.SIGTERM, stop_on_sigterm)
    master = int(os.environ.get("RANK", 0)) == 0
    if settings.overwrite and settings.train and master:
        remove_previous_run(settings.output_dir)
    try:
        return _run(settings, log if master else (lambda *_: None))
    except KeyboardInterrupt:
        last = Path(settings.output_dir) / "last.pt"
        return RunResult(interrupted=True, checkpoint=last if last.exists() else None)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def remove_previous_run(output_dir):
    """``overwrite``: delete the previous run's last.pt, best.pt, epoch_<k>.pt, history.json and
    curves.png in ``output_dir`` (nothing else) before this run starts, so that an interrupt in its first
    epoch neither names the old run's epoch nor offers to resume the old run."""
    for path in Path(output_dir).expanduser().glob("*"):
        numbered = path.name.startswith("epoch_") and path.name.endswith(".pt") and path.name[6:-3].isdigit()
        if numbered or path.name in ("last.pt", "best.pt", "history.json", "curves.png"):
            path.unlink(missing_ok=True)


def _run(settings, log):
    """``train_run``'s work: the machine, the data, the model, then the range test and/or training."""
    rank, world, device = setup_distributed(settings.device)
    # fixed input shapes: let cuDNN time its algorithms once, unless the run must be repeatable bit for bit
    torch.backends.cudnn.benchmark = device.type == "cuda" and not settings.deterministic
    torch.backends.cudnn.deterministic = settings.deterministic
    if settings.deterministic:  # any op without a deterministic implementation is then named in a warning
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        precision = Precision.resolve(device, settings.precision)
    except ValueError as error:
        raise RunError(f"--precision {settings.precision}: {error}") from None
    if settings.resume:  # the subset, the shuffling and the augmentations were drawn from the checkpoint's seed
        settings = replace(settings, seed=resumed_seed(settings.resume, settings.seed, log))
    train_set, val_set, class_names = in_turn(lambda: build_data(settings))
    if settings.num_classes is not None and settings.num_classes != len(class_names):
        raise RunError(f"--num_classes {settings.num_classes} does not match the data: {settings.dataset} "
                       f"{settings.data_dir or ''} holds {len(class_names)} classes")
    train_loader, val_loader = make_loaders(settings, train_set, val_set, device, rank, world)
    seed_everything(settings.seed)
    model = run_model(settings, len(class_names), precision, train_loader)
    description = describe_run(settings, model, precision, device, world, (train_set, val_set, class_names),
                               train_loader, log)
    recipe, found = settings.recipe, None
    if settings.find_lr:
        found = range_test(settings, model, train_loader, device, precision, description, log)
        if not settings.train:
            return RunResult(model=model, range_test=found, device=device)
        if not found.suggestions:
            raise RunError(f"no max LR to train with: {found.reason}")
        recipe = replace(recipe, max_lr=found.suggestions["min_loss"])
        log(f"training at the range test's suggested max LR {recipe.max_lr:.3g} (min_loss)")
    log(f"max LR {recipe.max_lr:g}, {recipe.epochs} epochs, scheduler {recipe.scheduler}")
    history, model = train_model(
        model, recipe, train_loader, val_loader, precision, seed=settings.seed, log=log,
        checkpoint_dir=Path(settings.output_dir) if rank == 0 else None, save_every=settings.save_every,
        resume=settings.resume, test_name="test" if settings.cifar and not settings.holdout else "val",
        compile=settings.compile, world=world)
    history["eval_split"] = f"holdout {len(val_set)}" if settings.holdout else "test" if settings.cifar else "val"
    if rank == 0:
        write_history(history, settings, log)
    return RunResult(history=history, model=model, range_test=found, device=device)


def resumed_seed(checkpoint, asked, log):
    """The seed a resumed run continues with: the checkpoint's, whatever ``asked`` (the seed given) says, so
    that the subset, the shuffling and the augmentations of the remaining epochs are those of the run that
    stopped; the log names it, and a differing ``asked`` (None: no seed given) as ignored. A checkpoint
    without a seed continues with ``asked`` (None: ``DEFAULT_SEED``)."""
    saved = load_checkpoint(checkpoint).get("seed")
    if saved is None:
        return DEFAULT_SEED if asked is None else asked
    if asked is not None and asked != saved:
        log(f"note: --seed {asked} ignored: {checkpoint} was made with seed {saved}, and a resumed run continues "
            "with it")
    else:
        log(f"seed {saved}, from {checkpoint}")
    return saved


def build_data(settings):
    """``(train_set, val_set, class_names)`` with the recipe's Albumentations transforms; ``max_samples``
    keeps a class-balanced subset of each split, ``holdout`` evaluates on held-out training images."""
    recipe = settings.recipe
    if not settings.cifar:
        return dataset.image_folder_datasets(settings.data_dir, recipe.image_size, settings.max_samples,
                                             settings.seed, settings.strict_images, recipe.cutout_holes,
                                             recipe.cutout_length, recipe.rotate_degrees, recipe.color_jitter,
                                             settings.holdout, recipe.min_scale)
    splits = [dataset.load_cifar(settings.dataset, settings.data_dir, train=train) for train in (True, False)]
    if settings.holdout:  # the validation split replaces the test set, which stays unseen
        splits = list(dataset.split_arrays(*splits[0], settings.holdout))
    if settings.max_samples:
        splits = [(images[keep], labels[keep]) for images, labels in splits
                  for keep in [dataset.balanced_indices(labels, settings.max_samples, settings.seed)]]
    train_set, val_set = cifar_sets(splits[0], splits[1], recipe, settings.seed)
    return train_set, val_set, dataset.class_names(settings.dataset)


def cifar_sets(train, test, recipe, seed):
    """Albumentations datasets over CIFAR arrays ``(images, labels)``: the recipe's crop padding, flip and
    cutout for ``train``, both normalised by the training images' channel statistics."""
    mean, std = dataset.channel_stats(train[0])
    transforms = dataset.cifar_train_transforms(mean, std, recipe.cutout_length, recipe.cutout_holes,
                                                crop_padding=recipe.crop_padding, rotate_degrees=recipe.rotate_degrees)
    return (dataset.AlbumentationsDataset(dataset.ImageArrays(*train), transforms, seed=seed),
            dataset.AlbumentationsDataset(dataset.ImageArrays(*test), dataset.cifar_test_transforms(mean, std)))


def choose_loader(settings, device, world):
    """``"batched"`` or ``"albumentations"``: the settings' ``loader``, or for ``auto`` the batched loader
    wherever it can train on CUDA, where one image at a time in a few CPU workers cannot keep the GPU busy,
    and for image folders everywhere, where decoding every JPEG in every epoch costs as much as the
    ResNet-50 step."""
    if settings.loader != "auto":
        return settings.loader
    possible = batched_loader_problem(settings.cifar, settings.recipe, world) is None
    return "batched" if possible and (device.type == "cuda" or not settings.cifar) else "albumentations"


def make_loaders(settings, train_set, val_set, device, rank, world):
    """The training and evaluation loaders, batched or Albumentations (``choose_loader``), each process
    with its share of the batch."""
    batch = settings.recipe.batch_size // world
    if choose_loader(settings, device, world) == "batched":
        loaders = batched_loaders(settings, train_set, val_set, batch, device)
    else:
        loaders = (dataset.make_loader(train_set, batch, True, device, settings.workers, seed=settings.seed,
                                       num_replicas=world, rank=rank),
                   dataset.make_loader(val_set, batch, False, device, settings.workers, num_replicas=world, rank=rank))
    if len(loaders[0]) == 0:
        raise RunError(f"{len(train_set)} training images make no full batch of {settings.recipe.batch_size}")
    return loaders


def cached_images(settings, split, class_names=None):
    """A split of ``data_dir`` decoded once (``image_cache``) at 1.25x the training size, with ``max_samples``
    applied as ``dataset.image_folder`` applies it: ``(images, labels, class_names)``."""
    import image_cache

    images, labels, class_names = image_cache.cached_split(settings.data_dir, split,
                                                           round(settings.recipe.image_size * 1.25),
                                                           settings.cache_dir, class_names, settings.strict_images)
    if settings.max_samples and settings.max_samples < len(labels):
        keep = dataset.balanced_indices(labels, settings.max_samples, settings.seed)
        images, labels = images[keep], labels[keep]
    return images, labels, class_names


def image_loaders(settings, batch, device):
    """BatchedImageLoaders over the decoded training and evaluation images (the val folder, or with
    ``holdout`` the held-out training images): the recipe's random-resized crop (the share of the area as
    ``dataset.imagenet_augmentations``) and flip, as tensor operations."""
    images, labels, class_names = cached_images(settings, "train")
    if settings.holdout:
        (images, labels), (val_images, val_labels) = dataset.split_arrays(images, labels, settings.holdout)
    else:
        val_images, val_labels, _ = cached_images(settings, "val", class_names)
    size = settings.recipe.image_size
    common = dict(size=size, mean=dataset.IMAGENET_MEAN, std=dataset.IMAGENET_STD, device=device)
    return (batched_data.BatchedImageLoader(images, labels, batch, train=True,
                                            scale=dataset.crop_scale(size, settings.recipe.min_scale),
                                            seed=settings.seed, sizes=training_sizes(settings.recipe), **common),
            batched_data.BatchedImageLoader(val_images, val_labels, batch, train=False, **common))


def batched_loaders(settings, train_set, val_set, batch, device):
    """Batched loaders on ``device``: for CIFAR, BatchedCifarLoaders over the arrays of ``build_data``'s sets
    with the recipe's crop padding, flip (random, or alternating) and cutout, and the same normalisation as
    their Albumentations transforms; for image folders, ``image_loaders``."""
    if not settings.cifar:
        return image_loaders(settings, batch, device)
    recipe = settings.recipe
    images, labels = train_set.source.images, train_set.source.labels
    mean, std = dataset.channel_stats(images)
    cutout = recipe.cutout_length if recipe.cutout_holes else 0
    train_loader = batched_data.BatchedCifarLoader(images, labels, batch, mean, std, train=True, device=device,
                                                   cutout_length=cutout, crop_padding=recipe.crop_padding,
                                                   seed=settings.seed,
                                                   flip="alternating" if recipe.alternating_flip else "random")
    val_loader = batched_data.BatchedCifarLoader(val_set.source.images, val_set.source.labels, batch, mean, std,
                                                 train=False, device=device)
    return train_loader, val_loader


def run_model(settings, num_classes, precision, train_loader):
    """The recipe's model, prepared for ``precision``; SpeedrunNet's whitening starts from the training
    images. In turn: rank 0 downloads pretrained weights into the hub cache first, the others then read them."""
    recipe = settings.recipe
    name = f"{recipe.model}_cifar" if settings.cifar and recipe.model == "resnet50" else recipe.model
    model = precision.prepare(in_turn(lambda: build_model(name, num_classes, settings.pretrained,
                                                          zero_init_residual=not settings.torchvision_init)))
    if recipe.model == "speedrun":
        model.whiten.initialize(train_loader.normalize(train_loader.images[:5000]))
        model.whiten.bias_train_steps = recipe.whiten_bias_epochs * len(train_loader)
    return model


def model_name(settings):
    """The model as the log names it."""
    name = MODEL_NAMES[settings.recipe.model]
    if settings.recipe.model == "resnet50" and not settings.pretrained:
        name += ", torchvision's init" if settings.torchvision_init else ", zero-init residuals"
    return name


def data_description(settings, train_set, val_set, class_names):
    """The data in words: set, folder, classes, images, size, and what the run evaluates on."""
    folder = settings.data_dir or os.environ.get(f"{settings.dataset.upper()}_DIR", "data")
    size = 32 if settings.cifar else settings.recipe.image_size
    return (f"{settings.dataset} {folder} ({len(class_names)} classes, {len(train_set)} training images at {size}px"
            + (f", evaluated on {len(val_set)} held-out training images)" if settings.holdout else ")"))


def describe_run(settings, model, precision, device, world, data, train_loader, log):
    """The run's first lines: data, model, machine, precision and the recipe, whole; returns the data's
    description."""
    import imagenette

    batched = isinstance(train_loader, (batched_data.BatchedCifarLoader, batched_data.BatchedImageLoader))
    loader_name = "batched loader (on the device)" if batched else "Albumentations DataLoader"
    description = data_description(settings, *data)
    log(f"{description}; {model_name(settings)} ({count_parameters(model):,} parameters) on "
        f"{describe_machine(device)}, x {world}, {precision.name}, batch {settings.recipe.batch_size}, "
        f"{len(train_loader)} steps per epoch, {loader_name}")
    if not settings.cifar:  # a folder with Imagenette's classes but not all its images: not the leaderboard's
        note = imagenette.not_full_imagenette(imagenette.folder_counts(settings.data_dir))
        if note:
            log(f"note: {note}")
    why = precision_reason(device, precision.name) if settings.precision == "auto" else "as asked (--precision)"
    log(f"precision {precision.name}: {why}" + ("; deterministic cuDNN" if settings.deterministic else ""))
    log(settings.recipe.describe())
    if settings.recipe.start_size:
        sizes = training_sizes(settings.recipe)
        log(f"progressive resizing: training crops of {', '.join(map(str, sizes))} px in epochs 1-{len(sizes)}, "
            f"evaluation at {settings.recipe.image_size} px")
    return description


def range_test(settings, model, train_loader, device, precision, description, log):
    """The LR range test with the recipe's optimizer (its param groups: the speedrun's batch-norm biases at
    64x the LR under test) and loss; writes its report and returns the result."""
    recipe = settings.recipe
    num_iter = len(train_loader) if recipe.lr_iter == "epoch" else recipe.lr_iter
    result = find_lr(model, build_optimizer(recipe, model, lr=recipe.lr_start), build_criterion(recipe),
                     train_loader, device=device, start_lr=recipe.lr_start, end_lr=recipe.lr_end, num_iter=num_iter,
                     step_mode=settings.lr_step_mode, smooth_f=settings.lr_smooth_f, diverge_th=settings.lr_diverge_th,
                     precision=precision, accumulation_steps=settings.lr_accumulation_steps)
    config = {"model": model_name(settings), "image_size": 32 if settings.cifar else recipe.image_size,
              "optimizer": f"SGD momentum {recipe.momentum} (Nesterov) weight decay {recipe.weight_decay}",
              "label_smoothing": recipe.label_smoothing, "accumulation_steps": settings.lr_accumulation_steps,
              "seed": settings.seed}
    report = write_report(result, settings.report_dir, description, recipe.batch_size * settings.lr_accumulation_steps,
                          settings.command, config, plot_file=settings.lr_plot)
    for name, value in result.suggestions.items():
        log(f"{name:9s} {value:.3e}")
    for warning in result.warnings:
        log(f"WARNING: {warning}")
    log("wrote " + ", ".join(str(path) for path in report.values()))
    return result


def train_model(model, recipe, train_loader, val_loader, precision, *, seed, log=print, checkpoint_dir=None,
                save_every=0, resume=None, test_name="test", compile=False, world=1):
    """Train ``model`` by the recipe: its optimizer, schedule, loss, weight averaging and (after the last
    epoch) test-time augmentation, through ``training_utils.fit`` (checkpoints in ``checkpoint_dir``);
    returns the history and the trained model. The one place that turns a recipe into a training run:
    ``train_run`` and lr_sweep.py call it."""
    device = precision.device
    optimizer = build_optimizer(recipe, model)
    weight_average = LookaheadAverage(model, recipe.epochs * len(train_loader)) if recipe.weight_average else None
    scheduler, per_batch = build_schedule(recipe, optimizer, len(train_loader))
    if compile:
        model = compile_model(model)
    if world > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    history = fit(model, device, train_loader, val_loader, optimizer, build_criterion(recipe), recipe.epochs,
                  scheduler, scheduler_per_batch=per_batch, precision=precision, grad_clip=recipe.grad_clip or None,
                  topk=5, checkpoint_dir=checkpoint_dir, save_every=save_every, resume=resume, seed=seed, log=log,
                  test_name=test_name, weight_average=weight_average)
    history["recipe"] = recipe.as_dict()
    if recipe.tta_views > 1:
        started = time.perf_counter()
        tested = test(batched_data.TestTimeAugmentation(unwrap(model), recipe.tta_views), device, val_loader,
                      build_criterion(recipe), precision=precision)
        history["test_acc_tta"], history["tta_seconds"] = tested.acc, time.perf_counter() - started
        log(f"{test_name} accuracy with {recipe.tta_views}-view test-time augmentation: {tested.acc:.2f}%")
    if world > 1:
        log(replicas_agree(model))
    return history, model


def write_history(history, settings, log):
    """history.json and (unless ``plots`` is off) curves.png in the output folder, and the run's last line."""
    output_dir = Path(settings.output_dir)
    (output_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    written = "last.pt, best.pt, history.json"
    if settings.plots:
        visualize.plot_history(history, save_path=output_dir / "curves.png",
                               split="test" if settings.cifar else "validation")
        written += ", curves.png"
    log(f"best accuracy {max(history['test_acc']):.2f}%, last {history['test_acc'][-1]:.2f}%; wrote {written} "
        f"in {output_dir}")

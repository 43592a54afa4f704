"""Writes ImageNet_LR_Finder.ipynb's cells (sources only; outputs come from executing it)."""
from notebook_common import (CHECK_OUTPUT, DEVICE_SETTING, FIGURES_SETTING, SMOKE_SETTING, TRAINING_RECIPE,
                             badge, code, env_int, env_text, imports_cell, md, one_cycle_training, range_test,
                             recipe_setting, settings_cell, setup_cell_source, shown, smoke_folder, write_notebook)

IMAGENET_CPU_NOTE = ("No GPU in this runtime. Run all trains a range test and one 5-epoch ResNet-50 run and reads "
                     "the other runs from the repository's store: about 30 min on a 2-core CPU with bf16 units "
                     "(AVX-512 BF16; 20-25 min a run), far longer in fp32 on a CPU without them (about 4.5 images "
                     "per second on an AVX2-only CPU: some 3 hours a run). No GPU has run this lesson yet; to try "
                     "one: Runtime > Change runtime type > T4 GPU.")
LEADERBOARD = "87.43% (5 epochs) and 91.57% (20 epochs) at 128 px, fastai's xresnet50 recipe, means of 5 runs"
RULES = """Four rules turn the curve into one LR:
* `steepest`: where the loss falls fastest (torch-lr-finder's rule), easily fooled by early noise;
* `valley`: half-way down the longest stretch of falling loss (fastai's `lr_find` rule), a safe LR for
  training at a constant rate;
* `min_loss`: the LR at the lowest loss, the largest at which the loss still fell;
* `minimum`: `min_loss / 10`, the classic advice for a constant rate.

The rules only look at the curve before the loss blows up (past twice its lowest value): a wrecked
net's loss can drift down again, and that fall must not attract a suggestion. Which rule, if any,
gives a good one-cycle peak for this net is a question the held-out sweep below answers.

`write_report` keeps the result beside the run, as `main.py --find_lr` does: the plot, a log (the
configuration, the call, the results, warnings, next steps) and `suggested_lr.json`, the file that
`main.py --max_lr` reads. The cell prints the suggestions and anything the log warns about."""
cells = [
md(badge("ImageNet_LR_Finder.ipynb") + """

# ResNet-50 from scratch on Imagenette: find the learning rate, train in one cycle, stand beside the leaderboard

The S10 lesson found the maximum learning rate for a small net on CIFAR-10. Here the same two steps
train the classic large model, **ResNet-50 v1.5** (torchvision's; the stride-2 sits in the 3x3
convolution of each bottleneck), from scratch on real ImageNet photos:

1. the **LR range test** ([Smith 2015, arXiv 1506.01186](https://arxiv.org/abs/1506.01186)): train for
   about a hundred batches while the learning rate grows exponentially, and read off the largest LR at
   which the loss still falls;
2. **one-cycle training** ([Smith 2018, arXiv 1803.09820](https://arxiv.org/abs/1803.09820)): over the
   whole run the LR rises once to that maximum and then anneals to almost zero.

**Why one cycle works** ([Smith and Topin, "Super-convergence", arXiv 1708.07120](https://arxiv.org/abs/1708.07120)):
the *warm-up* lets a freshly initialised net reach a large LR without blowing up; the long stretch at
a *large LR* regularises, because its big, noisy steps cannot settle into a sharp minimum that fits
only the training images; the final *annealing* to a tiny LR then lets the net settle into the broad
minimum it has found, and most of the accuracy appears there. fastai made the two steps one call each
([`lr_find` and `fit_one_cycle`](https://docs.fast.ai/callback.schedule.html)).

**The yardstick.** [Imagenette](https://github.com/fastai/imagenette) is 10 easily told apart classes
of ImageNet, 9,469 training and 3,925 validation images, with a public leaderboard: """ + LEADERBOARD + """
(the `fastai/imagenette` README; runs differ by about 1% from each other there). This lesson trains
the seeds' own model, torchvision's ResNet-50 with one cycle, on the same data for the same 5 epochs
at 128 pixels, and puts its numbers beside that board.

**How a choice is made.** Every setting the lesson tunes (the peak LR above all) is chosen on 10% of
each class of the training folder, held out (`--holdout 0.1`: 8,522 training, 947 held-out images);
the validation folder is touched only for the reported figures. A difference between two runs is read
against the spread of runs that differ only in their seed.

The lesson: the data, the model, the range test, the held-out sweep that picks the peak, one 5-epoch
run by hand, then from the store of runs (each made by `experiments.py` through `main.py`): five seeds,
one cycle against fastai's flat-then-cosine schedule, 20 epochs, and fastai's own recipe on the same
machine.

**Data.** Any folder in the ImageNet layout, `train/<class>/*.JPEG` and `val/<class>/*.JPEG`, given
as `IMAGENET_DIR`. Without one, the Settings cell downloads fast.ai's `imagenette2-160` (the full
split at 160 pixels, a 94 MiB archive) into `data/`, checks it and unpacks it: in Colab, Runtime > Run
all works as it is. The committed run used the 224 px copy of the same split (`thunderInfy/imagenette`);
the leaderboard crops from the full-size images.

**From the command line** the same steps run headless (also on several GPUs under `torchrun`):
```
python main.py --recipe imagenet --data_dir data/imagenette2-160 --find_lr --batch_size 64 --image_size 128 \\
    --output_dir runs/imagenet_lr
python main.py --recipe imagenet --data_dir data/imagenette2-160 --epochs 5 --batch_size 64 --image_size 128 \\
    --max_lr 0.8 --output_dir runs/imagenet
python experiments.py --recipe imagenet --data_dir data/imagenette2-160 --store runs/imagenette_runs.json \\
    --seeds 0 1 2 3 4 --epochs 5 --max_lr 0.8 -- --image_size 128 --batch_size 64
```"""),
code(setup_cell_source(IMAGENET_CPU_NOTE)),
md("""## Settings
The next cell holds every setting a run may change. To change one, in Colab as anywhere, edit its line
(`SEEDS = 3`) or set it in a new cell above before running this one: `import os; os.environ["SEEDS"] = "3"`.
* `IMAGENET_DIR`: the data folder (default: download `imagenette2-160`);
* `IMAGE_SIZE`, `BATCH_SIZE`, `EPOCHS`, `LR_ITER` (batches in the range test): the run's;
* `SEEDS`: runs of the chosen recipe read from the store (or trained); `ARM_SEEDS`: runs of each schedule
  in the comparison of schedules;
* `STORE`, `REFERENCE`, `TRAIN_MISSING`: runs through `experiments.py` are kept in a JSON store, named by
  their settings, device and precision. `REFERENCE` is the repository's store, only read; runs this
  machine trains go to `STORE`, never into `REFERENCE`. With `TRAIN_MISSING=0` (the default) a run this
  machine has not made is read from the repository's store when it holds one from another machine (its
  line names that machine); `TRAIN_MISSING=1` trains this machine's own. The cell below the settings
  says what Run all will train and about how long;
* `FIGURES`: where the figures go (`runs/figures`); those in `Data/` are the committed run's
  (`FIGURES=Data`), which a re-run leaves as they are.

(`SMOKE=1` makes a tiny run on a generated folder, which the tests use; its stored runs are tiny runs too.)"""),
code(settings_cell(
    """import dataset
import recipes
from imagenette import download_imagenette""",
    "recipe = recipes.IMAGENET",
    SMOKE_SETTING,
    env_text("IMAGENET_DIR"),
    """if SMOKE and not os.environ.get("IMAGENETTE_URL"):  # a generated folder of JPEGs instead of real data
    IMAGENET_DIR = tempfile.mkdtemp()
    for split, seed, count in (("train", 0, 160), ("val", 1, 64)):
        shapes = dataset.SyntheticImages(n=count, size=40, seed=seed)
        dataset.write_image_folder(shapes.images, shapes.labels, shapes.classes, IMAGENET_DIR, split)
if not IMAGENET_DIR:  # fast.ai's Imagenette: downloaded, checked and unpacked into data/ once
    IMAGENET_DIR = download_imagenette("data")""",
    DEVICE_SETTING,
    env_int("IMAGE_SIZE", 128, smoke=32),
    env_int("BATCH_SIZE", 64, smoke=16),
    recipe_setting("LR_ITER", smoke=40),
    env_int("EPOCHS", 5, smoke=2),
    env_int("SEEDS", 5, smoke=2),
    env_int("ARM_SEEDS", 3, smoke=2),
    "SEED = 0  # the run by hand: the first of the seeds",
    "LEADERBOARD_5, LEADERBOARD_20 = 87.43, 91.57  # fastai/imagenette README: 128 px, 5 and 20 epochs",
    "HOLDOUT = 0.1  # the share of each class of the training folder every choice is made on",
    "GRID = (0.05, 0.2, 0.8) if SMOKE else (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # one-cycle peaks tried on the held-out part",
    'STORE = os.environ.get("STORE") or (os.path.join(tempfile.mkdtemp(), "runs.json") if SMOKE else '
    '"runs/imagenette_runs.json")  # yours',
    'REFERENCE = os.environ.get("REFERENCE") or ("tests/smoke_notebooks/imagenette_runs.json" if SMOKE else '
    '"Data/imagenette_runs.json")  # only read',
    'TRAIN_MISSING = os.environ.get("TRAIN_MISSING", "0") == "1"',
    FIGURES_SETTING,
    smoke_folder("REPORT_DIR", "runs/imagenet_lr_finder"),
    smoke_folder("CHECKPOINTS", "checkpoints/imagenet"),
    smoke_folder("RUNS_DIR", "runs/experiments", "the checkpoints of experiments.py's runs"),
    'CACHE_DIR = tempfile.mkdtemp() if SMOKE else os.environ.get("IMAGE_CACHE_DIR", "data/image_cache")',
    'print(f"' + shown("IMAGE_SIZE", "BATCH_SIZE", "LR_ITER", "EPOCHS", "SEEDS", "ARM_SEEDS", "HOLDOUT") + ' "\n'
    '      f"TRAIN_MISSING={TRAIN_MISSING} STORE={\'a new file\' if SMOKE and \'STORE\' not in os.environ else STORE}")')),
md("""## Device and precision
`get_device` picks the GPU when there is one. `Precision.resolve` chooses how the model computes:
* **bf16 autocast** ([PyTorch AMP](https://pytorch.org/docs/stable/amp.html)): matrix products and
  convolutions run in bfloat16, which has float32's range with fewer digits, at up to several times
  the speed, while the weights and their updates stay in float32; it pays on GPUs from compute
  capability 8.0 (A100, L4, H100) and on CPUs with bf16 units;
* **fp16 autocast with a GradScaler** on older GPUs (T4, V100): float16 has a narrow range, so small
  gradients would round to zero; the [GradScaler](https://pytorch.org/docs/stable/amp.html#gradient-scaling)
  multiplies the loss before the backward pass and divides the gradients after, skipping a step whose
  gradients overflowed;
* float32 where neither pays off.

The model is also stored **channels_last** (each pixel's channels side by side in memory,
[tutorial](https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html)), the layout the
fast convolution kernels of tensor cores and recent CPUs expect."""),
code(imports_cell("""import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from IPython.display import Image, display

import experiments
import image_cache
import visualize
from batched_data import BatchedImageLoader
from custom_resnet import resnet50
from experiments import RunSpec
from imagenet_classes import readable_class_names
from imagenette import folder_counts, not_full_imagenette
from lr_finder import find_lr, write_report
from precision import Precision, get_device
from recipes import build_criterion, build_one_cycle, build_optimizer
from seeding import seed_everything
from training_utils import fit
from utils import block_summary, count_parameters, describe_machine""")),
md("""## What Run all trains
Every run after the one by hand comes from `experiments.ensure`: it reads a stored run of the same
settings on this machine's device and precision, or (unless `TRAIN_MISSING=1`) another machine's, and
trains only what neither store holds. `lesson_runs` lists them all: the held-out sweeps, then the
seeds, the schedules' seeds and the 20-epoch run at the peaks those sweeps pick (where the sweeps are
not stored yet, at the grid's top as a stand-in). The cell says, before anything trains, what will."""),
code("""ARM_GRID = GRID if SMOKE else (0.05, 0.1, 0.2, 0.4, 0.8)  # both schedules' peaks: the same grid, widened at an edge best
SCHEDULES = {"onecycle": "one cycle (cosine anneal)", "flat_cosine": "flat, then cosine (fastai's fit_flat_cos)"}
CHOICES = {  # the recipe's other settings, each against one alternative at the chosen peak on the held-out images
    "weight decay 5e-4 (the recipe's: 5e-5)": ("--weight_decay", "5e-4"),
    "no label smoothing (the recipe's: 0.1)": ("--label_smoothing", "0"),
    "crops from 8% of the area, torchvision's (the recipe's at 128 px: 35%, fastai's)": ("--min_scale", "0.08"),
    **{f"progressive resizing from {size} px (the recipe's: {IMAGE_SIZE} px throughout)": ("--start_size", str(size))
       for size in (IMAGE_SIZE * 3 // 4, IMAGE_SIZE // 2)}}
OTHER_BATCHES = (BATCH_SIZE // 2, BATCH_SIZE * 2)  # each with its own peak sweep, the grid scaled with the batch


def imagenet_run(max_lr, scheduler="onecycle", seed=0, holdout=0, epochs=None, options=(), batch=None):
    \"\"\"The stored run of this lesson's recipe at ``max_lr``: 'imagenet onecycle max_lr=0.8 epochs=5 --image_size
    128 --batch_size 64 ...', with further main.py ``options`` where a setting differs from the recipe's.\"\"\"
    size = ("--image_size", str(IMAGE_SIZE), "--batch_size", str(batch or BATCH_SIZE))
    return RunSpec(scheduler=scheduler, max_lr=max_lr, seed=seed, epochs=epochs or EPOCHS, options=size + options,
                   recipe="imagenet", holdout=holdout)


def batch_grid(batch, peak):
    \"\"\"The peaks tried at ``batch``: ``peak`` (the pick at BATCH_SIZE) scaled in proportion to the batch, half
    and twice that (Goyal et al.'s linear scaling rule as the grid's centre, not as the answer).\"\"\"
    scaled = peak * batch / BATCH_SIZE
    return tuple(float(f"{lr:.4g}") for lr in (scaled / 2, scaled, scaled * 2))


def runs(specs):
    \"\"\"The records of ``specs``: stored ones read, the others trained (experiments.ensure).\"\"\"
    return experiments.ensure(specs, IMAGENET_DIR, STORE, RUNS_DIR, reference=REFERENCE, train_missing=TRAIN_MISSING)


def tuned(scheduler, grid, batch=None):
    \"\"\"``(best peak, {peak: record})`` of ``scheduler`` (at ``batch``) on the held-out images:
    ``experiments.tune`` (a run per peak of ``grid``, one more beyond an edge where the best is there).\"\"\"
    return experiments.tune(imagenet_run(None, scheduler, holdout=HOLDOUT, batch=batch), grid, data_dir=IMAGENET_DIR,
                            store=STORE, work_dir=RUNS_DIR, reference=REFERENCE, train_missing=TRAIN_MISSING)


def planned_sweep(scheduler, grid, batch=None):
    \"\"\"The runs ``tuned`` reads or trains and its pick, from the stores alone; while a sweep is not stored,
    its grid and the grid's top as a stand-in for the pick.\"\"\"
    spec = imagenet_run(None, scheduler, holdout=HOLDOUT, batch=batch)
    picked = experiments.stored_pick(spec, grid, stores=(STORE, REFERENCE), any_machine=not TRAIN_MISSING)
    if picked is None:
        return [replace(spec, max_lr=lr) for lr in grid], grid[-1]
    return [replace(spec, max_lr=lr) for lr in picked[1]], picked[0]


def lesson_runs():
    \"\"\"Every stored run the lesson reads, in the order its cells read them.\"\"\"
    sweep, peak = planned_sweep("onecycle", GRID)
    arm_sweeps = {name: planned_sweep(name, ARM_GRID) for name in SCHEDULES}
    batch_sweeps = [planned_sweep("onecycle", batch_grid(batch, peak), batch)[0] for batch in OTHER_BATCHES]
    return (sweep + [imagenet_run(peak, holdout=HOLDOUT, options=options) for options in CHOICES.values()]
            + [spec for specs in batch_sweeps for spec in specs]
            + [imagenet_run(peak, seed=seed) for seed in range(SEEDS)]
            + [spec for specs, _ in arm_sweeps.values() for spec in specs]
            + [imagenet_run(pick, name, seed) for name, (_, pick) in arm_sweeps.items() for seed in range(ARM_SEEDS)]
            + [imagenet_run(peak, epochs=4 * EPOCHS)])


planned = list(dict.fromkeys(lesson_runs()))  # a run two sections share is read (or trained) once
print(experiments.plan_line(planned, STORE, REFERENCE, TRAIN_MISSING))
print("besides: a range test and one run by hand, trained here")"""),
md("""## The data
The lesson decodes every image once, at 1.25x the training size (160 px for 128), into a uint8 array
kept on disk and memory-mapped (`image_cache.cached_split`, rebuilt whenever the folder changes);
training crops batches of those arrays with tensor operations. On the 2-core CPU that made the
committed run, decoding a 224 px JPEG costs about 3% of the image's ResNet-50 step (README, "Speed and
benchmarks"), so there the model is the bottleneck either way; the cache pays where a fast GPU waits
on few CPU cores, and for full-size photos, which decode several times slower.

First the folder is counted: a folder with Imagenette's classes but not all its images gets a note, since
its numbers could not stand beside the leaderboard's. ImageNet's folders are WordNet ids
(`n01440764`); `imagenet_classes.readable_class_names` turns them into names (`tench`)."""),
code("""counts = folder_counts(IMAGENET_DIR)
for split, classes_ in counts.items():
    print(f"{split}: {sum(classes_.values()):,} images in {len(classes_)} classes")
problem = not_full_imagenette(counts)
print(f"note: {problem}" if problem else "the full split (or not Imagenette): nothing to note")
size = round(IMAGE_SIZE * 1.25)
train_images, train_labels, folders = image_cache.cached_split(IMAGENET_DIR, "train", size, CACHE_DIR)
val_images, val_labels, _ = image_cache.cached_split(IMAGENET_DIR, "val", size, CACHE_DIR, folders)
classes = readable_class_names(folders)
print(f"decoded at {size}x{size}: {len(train_labels):,} training and {len(val_labels):,} validation images; "
      + ", ".join(classes))"""),
code("""shown = np.sort(np.random.default_rng(SEED).choice(len(train_labels), size=min(20, len(train_labels)), replace=False))
visualize.plot_samples(train_images[shown], train_labels[shown], classes, save_path=f"{FIGURES}/imagenet_samples.png")"""),
md("""## Augmentation
The standard ImageNet recipe, for whole batches at once (`BatchedImageLoader`):
* training: a **random-resized crop** (a random share of the area at an aspect ratio between 3/4 and
  4/3, resized to `IMAGE_SIZE`; from 35% of the area below 160 pixels, where tiny crops hold too
  little, as fastai's Imagenette recipe, and from torchvision's 8% above) and a **horizontal flip**,
  then the ImageNet mean/std normalisation;
* validation: the shorter side resized to `IMAGE_SIZE / 0.875` (146 for 128), then a **centre crop**.

They draw the same crops as the Albumentations pipeline `main.py --loader albumentations` uses (a test
compares their statistics). No colour jitter, as NVIDIA's and torchvision's ResNet-50 recipes. Each
row below is one pass of the training augmentation over the same six images, the first row the
validation crop."""),
code("""few = shown[:6]
augment = BatchedImageLoader(train_images[few], train_labels[few], len(few), IMAGE_SIZE, dataset.IMAGENET_MEAN,
                             dataset.IMAGENET_STD, train=True, seed=SEED,
                             scale=dataset.crop_scale(IMAGE_SIZE, recipe.min_scale))
centre = BatchedImageLoader(train_images[few], train_labels[few], len(few), IMAGE_SIZE, dataset.IMAGENET_MEAN,
                            dataset.IMAGENET_STD, train=False)
originals = torch.from_numpy(np.asarray(train_images[few]))
views = [centre.transform(originals)] + [augment.transform(originals) for _ in range(3)]
visualize.plot_samples([view / 255 for batch in views for view in batch], np.tile(train_labels[few], len(views)),
                       classes, count=len(few) * len(views), columns=len(few),
                       save_path=f"{FIGURES}/imagenet_augmentations.png")"""),
md("""## The model
torchvision's ResNet-50 v1.5: a 7x7 stem, then 3, 4, 6 and 3 bottleneck blocks (1x1 -> 3x3 -> 1x1
convolutions) at 256, 512, 1024 and 2048 channels, global average pooling and one linear layer.
`custom_resnet.resnet50` starts the last batch-norm scale of every block at zero
(`zero_init_residual=True`, [Goyal et al. 2017, arXiv 1706.02677](https://arxiv.org/abs/1706.02677)):
each block starts as its shortcut, so the untrained net behaves like a shallow one; the check of the
range test below shows why that matters for a net trained from scratch.

The summary shows the net block by block in its ImageNet-1K configuration (1000 classes, 3x224x224
inputs); torchsummary's full table of all its layers is one call away:
`model_summary(resnet50(num_classes=1000), input_size=(3, 224, 224))`. The lesson trains the same net
with one output per class of the folder, so its last layer is smaller (the training cell prints its
size)."""),
code("""print(block_summary(resnet50(num_classes=1000), input_size=(3, 224, 224)))
print(f"trainable parameters: {count_parameters(resnet50(num_classes=1000)):,}")""", metadata=CHECK_OUTPUT),
md("""## The LR range test
The learning rate grows exponentially from `1e-5` to `10` over `LR_ITER` batches of training while
the training loss is recorded, smoothed by a moving average
([torch-lr-finder](https://github.com/davidtvs/pytorch-lr-finder)). At first the LR is too small to
change anything; then the loss falls faster and faster; past some LR the steps overshoot and the loss
climbs and blows up. The test uses the training set-up itself: the recipe's optimizer and loss at the
training batch size (the best LR depends on both), and it restores the model, the optimizer and every
random state afterwards, so the training below starts as if it had not run.

""" + RULES),
code("""train_loader = BatchedImageLoader(train_images, train_labels, BATCH_SIZE, IMAGE_SIZE, dataset.IMAGENET_MEAN,
                                  dataset.IMAGENET_STD, train=True, device=device,
                                  scale=dataset.crop_scale(IMAGE_SIZE, recipe.min_scale),
                                  seed=SEED)
val_loader = BatchedImageLoader(val_images, val_labels, BATCH_SIZE, IMAGE_SIZE, dataset.IMAGENET_MEAN,
                                dataset.IMAGENET_STD, train=False, device=device)
""" + range_test("resnet50(num_classes=len(classes))") + """
call = (f"find_lr(resnet50({len(classes)}), recipes.IMAGENET optimizer and loss, train_loader, start_lr={recipe.lr_start:g}, "
        f"end_lr={recipe.lr_end:g}, num_iter={LR_ITER}) in ImageNet_LR_Finder.ipynb")
report = write_report(lr_result, REPORT_DIR, f"{os.path.basename(os.path.normpath(IMAGENET_DIR))} ({len(classes)} classes, "
                      f"{len(train_labels)} training images at {IMAGE_SIZE}px)", BATCH_SIZE, call,
                      config={"model": "ResNet-50 v1.5", "recipe": recipe.name}, plot_file=f"{FIGURES}/imagenet_lr_finder.png")
stopped = " (stopped early: the loss diverged)" if lr_result.stopped_early else ""
print(f"range test: {len(lr_result.all_lrs)} batches of {BATCH_SIZE} in {lr_result.seconds:.0f} s{stopped}")
print(f"smoothed loss from {lr_result.losses[0]:.2f} down to {min(lr_result.losses):.2f} "
      f"(a uniform guess over {len(classes)} classes scores ln {len(classes)} = {math.log(len(classes)):.2f})")
for name, lr in lr_result.suggestions.items():
    print(f"  {name:9s} {lr:.3g}")
for warning in lr_result.warnings:
    print(f"note: {warning}")
print(f"report: {report['log']}, {report['json']}")"""),
code("""display(Image(filename=str(report["plot"])))"""),
md("""## The peak, chosen on held-out images
A rule is only as good as the training it leads to. Each run below trains a fresh ResNet-50 for the
lesson's 5 one-cycle epochs at one peak of `GRID` (seed 0, so the runs differ only in their peak) on
the training folder less 10% of each class, and is scored on that 10% (947 images, the same for
every run: `dataset.holdout_split`). The best peak becomes `MAX_LR` (`experiments.tune`, which would
train one more peak beyond the grid's edge if the best were there); the validation folder plays no
part. One run per peak on 947 images: two runs' accuracies differ by about 2 points of binomial
standard error alone (sqrt(2 p (1 - p) / 947) near p = 0.7), and the seeds add their own spread
(measured below), so only gaps of several points rank two peaks."""),
code("""MAX_LR, sweep = tuned("onecycle", GRID)
sweep = list(sweep.values())
print(f"\\n{'peak':>6s}  held-out top-1  training accuracy (last epoch)")
for record in sweep:
    mark = "  <- MAX_LR" if record["spec"]["max_lr"] == MAX_LR else ""
    trained = f"{record['train_acc'][-1]:16.2f}%" if record["train_acc"] else f"{'-':>17s}"
    print(f"{record['spec']['max_lr']:6g}  {experiments.accuracy(record):>14s}  {trained}{mark}")
tried = [record["spec"]["max_lr"] for record in sweep]
edge = " (the edge of the peaks tried: a wider grid may do better)" if MAX_LR in (tried[0], tried[-1]) else ""
print(f"MAX_LR = {MAX_LR:g}{edge}; the range test's suggestions: "
      + (", ".join(f"{name} {lr:.3g} ({MAX_LR / lr:.0f}x below MAX_LR)" for name, lr in lr_result.suggestions.items())
         or "none"))
visualize.plot_sweep([{"max_lr": r["spec"]["max_lr"], "test_acc": r["final_acc"]} for r in sweep if r["final_acc"]],
                     lr_result.suggestions, None, save_path=f"{FIGURES}/imagenet_holdout_sweep.png",
                     title=f"ResNet-50, {EPOCHS} one-cycle epochs, {IMAGE_SIZE}px, batch {BATCH_SIZE}, seed 0",
                     split="held-out")"""),
md("""## The other choices, on the same held-out images
The recipe's other settings are each tried against one alternative, at `MAX_LR`, with seed 0 and the
same held-out images as the sweep: more weight decay, no label smoothing, smaller crops (a
random-resized crop keeps a random share of the image's area, here at least 35%, fastai's choice for
Imagenette at 128 px; torchvision's ImageNet default is 8%), and **progressive resizing**
(`--start_size`: the training crops start smaller and grow linearly to `IMAGE_SIZE` in the last epoch,
as fast.ai trained on ImageNet in DAWNBench; the held-out images are scored at `IMAGE_SIZE`), which
buys time, so each line gives its run's time beside the recipe's. By the rule the sweep's text gives,
an alternative would replace the recipe's setting only if it won by clearly more than two runs'
noise, about 2 points; otherwise the recipe keeps its setting. (A time is printed only for a run timed
whole: one paused, slowed by other work or resumed says so.)"""),
code("""base = next(record for record in sweep if record["spec"]["max_lr"] == MAX_LR)


def against_base(record):
    \"\"\"``record``'s held-out accuracy minus the recipe's at MAX_LR, as text (a diverged run has none).\"\"\"
    return "diverged" if record["final_acc"] is None else f"{record['final_acc'] - base['final_acc']:+.2f} points"


print(f"the recipe at MAX_LR {MAX_LR:g}: held-out top-1 {experiments.accuracy(base)} ({experiments.run_time(base)})")
for label, options in CHOICES.items():
    record = runs([imagenet_run(MAX_LR, holdout=HOLDOUT, options=options)])[0]
    print(f"{label}: {experiments.accuracy(record)} ({against_base(record)}, {experiments.run_time(record)})")"""),
md("""## Batch size, each with its own peak
The best peak depends on the batch size, so a batch size is compared at its own best peak, not at
`MAX_LR`: for half and twice `BATCH_SIZE`, a sweep on the same held-out images (seed 0) over `MAX_LR`
scaled in proportion to the batch (the linear scaling rule of
[Goyal et al. 2017](https://arxiv.org/abs/1706.02677)), half and twice that, widened past an edge as
before (`experiments.tune`). Each batch size's best against the recipe's batch at `MAX_LR`, with the
same two-runs'-noise rule, and the time of its epochs (one cycle at a larger batch takes fewer, larger
steps: fewer updates in the same 5 epochs)."""),
code("""def epoch_time(records):
    \"\"\"The median epoch's seconds of a batch size's sweep, over its runs timed whole (a run paused or slowed
    by other work would time that, not the batch size).\"\"\"
    whole = [record for record in records if experiments.timed_whole(record)]
    seconds = [second for record in whole for second in record["epoch_seconds"]]
    return f"{np.median(seconds):.0f} s an epoch ({len(whole)} runs timed whole)" if seconds else "no run timed whole"


print(f"batch {BATCH_SIZE} (the recipe's) at {MAX_LR:g}: {experiments.accuracy(base)}, {epoch_time(sweep)}")
for batch in OTHER_BATCHES:
    peak, tried = tuned("onecycle", batch_grid(batch, MAX_LR), batch)
    swept = ", ".join(f"{lr:g}: {experiments.accuracy(r)}" for lr, r in tried.items())
    best = tried[peak]
    edge = " (the edge of the peaks tried)" if peak in (min(tried), max(tried)) else ""
    print(f"batch {batch}: held-out {swept} -> peak {peak:g}{edge}: {against_base(best)} against batch {BATCH_SIZE}, "
          f"{epoch_time(tried.values())}")"""),
md("""## One-cycle training, by hand
The recipe's schedule is PyTorch's
[`OneCycleLR`](https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html),
stepped after every batch: the LR rises from `MAX_LR / 25` to `MAX_LR` over the first 30% of the
steps (the warm-up), then follows half a cosine down to `MAX_LR / 25 / 10^4`; the cell prints the
numbers of this run before it trains. The other settings, each printed from `recipes.IMAGENET`:
* **momentum cycled** against the LR, from 0.95 down to 0.85 at the peak and back, as Smith's one-cycle
  policy does: SGD's step grows with `lr / (1 - momentum)`, so lowering the momentum while the LR
  rises keeps the largest steps in check;
* **SGD with Nesterov momentum**: the gradient is taken where the momentum is about to carry the
  weights, which damps oscillations ([PyTorch's SGD](https://pytorch.org/docs/stable/generated/torch.optim.SGD.html));
* **weight decay**: every step shrinks the weights a little towards zero; small here, because one
  cycle's large LRs already regularise (Smith 2018);
* **label smoothing** ([Szegedy et al. 2016, arXiv 1512.00567](https://arxiv.org/abs/1512.00567)):
  with smoothing ε the target is 1 - ε on the true class plus ε spread evenly over all classes, so
  the net is not pushed towards ever more confident outputs, which overfit.

This run trains on all 9,469 training images and is scored on the validation folder after each epoch:
**top-1**, the share of images whose highest-scoring class is the right one, is the number to read
(top-5 of 10 classes says little: a blind guess scores 50%). It has the settings of the store's seed 0
below, which `main.py` trains with the same pieces: on the same data (the 224 px copy), code and machine
the two agree to the digit, and the seeds' cell prints both; on another device or on the downloaded
160 px copy they are two different runs. No test-time augmentation, as on the leaderboard."""),
code(TRAINING_RECIPE + "\n" + one_cycle_training("resnet50(num_classes=len(classes))") + """
steps = EPOCHS * len(train_loader)
print(f"{count_parameters(model):,} trainable parameters, {len(train_labels):,} training images")
print(f"{recipe.optimizer.upper()}{' with Nesterov momentum' if recipe.nesterov else ''}, weight decay "
      f"{recipe.weight_decay:g}, label smoothing {recipe.label_smoothing:g}")
start_lr, final_lr = MAX_LR / recipe.div_factor, MAX_LR / recipe.div_factor / recipe.final_div_factor
print(f"one cycle over {steps} steps: LR {start_lr:.3g} -> {MAX_LR:.3g} over the first {recipe.pct_start:.0%}, "
      f"then annealing ({recipe.anneal_strategy}) to {final_lr:.3g}; "
      f"momentum {recipe.max_momentum:g} -> {recipe.base_momentum:g} -> {recipe.max_momentum:g}")
start = time.perf_counter()
history = fit(model, device, train_loader, val_loader, optimizer, build_criterion(recipe), EPOCHS, scheduler,
              precision=precision, topk=5, checkpoint_dir=CHECKPOINTS, seed=SEED, test_name="val")
minutes = (time.perf_counter() - start) / 60
print(f"after {EPOCHS} epochs: validation top-1 {history['test_acc'][-1]:.2f}% (max LR {MAX_LR:g}, batch {BATCH_SIZE}, "
      f"{IMAGE_SIZE}px, {precision} on {device}, {minutes:.1f} min)")"""),
md("""The curves (training accuracy is measured on augmented images, so it can stay below the
validation accuracy while the net is still learning), then the LR and momentum of every step."""),
code("""visualize.plot_history(history, save_path=f"{FIGURES}/imagenet_curves.png", split="validation")"""),
code("""visualize.plot_lr_schedule(history["lr"], history["momentum"], steps_per_epoch=len(train_loader),
                           save_path=f"{FIGURES}/imagenet_lr_schedule.png")"""),
md("""## Five seeds, beside the leaderboard
One run says little about the next: the seed draws the initial weights, the order of the images and
every crop. The seeds below train the same recipe at `MAX_LR` on the full training folder and are
scored on the validation folder, as the leaderboard's runs are."""),
code("""seeds = runs([imagenet_run(MAX_LR, seed=seed) for seed in range(SEEDS)])
mean, spread, n = experiments.summary(seeds)
print(f"\\n{n} seeds: " + ", ".join(f"{r['spec']['seed']}: {r['final_acc']:.2f}%" for r in seeds))
print(f"mean {mean:.2f}%, standard deviation {spread:.2f} (a single run's spread)")
print(f"the run by hand: {history['test_acc'][-1]:.2f}%; the store's seed {SEED}: {seeds[SEED]['final_acc']:.2f}%")
print(f"leaderboard ({LEADERBOARD_5}%): {mean - LEADERBOARD_5:+.2f} points; "
      f"the store's runs took {experiments.clock(experiments.seconds(seeds))} s on {seeds[0]['machine'].split(',')[0]}")"""),
md("""## One cycle against fastai's schedule
The leaderboard's recipe trains with fastai's `fit_flat_cos`: the peak from the first step for 75% of
the steps, then a cosine down to zero (`main.py --scheduler flat_cosine`). Each schedule gets the same
tuning budget: its peak swept over the same grid on the held-out images (seed 0), and one or two steps
further where its best is at the grid's edge (`experiments.tune`); then each trains at
its own pick over the same seeds, and the per-seed differences (flat-then-cosine minus one cycle) give
a mean with a 95% t-interval (`experiments.paired`). One comparison."""),
code("""sweeps = {name: tuned(name, ARM_GRID) for name in SCHEDULES}  # each run read from a store, or trained
arms = {name: runs([imagenet_run(peak, name, seed) for seed in range(ARM_SEEDS)]) for name, (peak, _) in sweeps.items()}
print()
for name, label in SCHEDULES.items():
    peak, tried = sweeps[name]
    swept = ", ".join(f"{lr:g}: {experiments.accuracy(r)}" for lr, r in tried.items())
    m, s, k = experiments.summary(arms[name])
    print(f"{label}: held-out {swept} -> peak {peak:g}; validation {m:.2f}% (sd {s:.2f}, {k} seeds)")
differences, mean_difference, low, high = experiments.paired(arms["flat_cosine"], arms["onecycle"])
print(f"flat-then-cosine minus one cycle, per seed: " + ", ".join(f"{d:+.2f}" for d in differences)
      + f"; mean {mean_difference:+.2f} points, 95% interval [{low:+.2f}, {high:+.2f}]")
if low > 0 or high < 0:
    print(f"the interval excludes 0: {'flat-then-cosine' if low > 0 else 'one cycle'} trains better here")
else:
    print("the interval holds 0: these seeds do not tell the two schedules apart")"""),
md("""## 20 epochs
The leaderboard's 20-epoch row, 91.57%, with the same recipe at the same peak (not tuned for 20
epochs): one seed."""),
code("""long_run = runs([imagenet_run(MAX_LR, epochs=4 * EPOCHS)])[0]
print(f"{4 * EPOCHS} epochs, seed 0: validation top-1 {long_run['final_acc']:.2f}% "
      f"({experiments.run_time(long_run)} on {long_run['machine'].split(',')[0]}); "
      f"leaderboard {LEADERBOARD_20}%")"""),
md("""## fastai's own recipe on the same machine
`benchmarks/fastai_imagenette.py` runs fastai's `train_imagenette.py` settings (xresnet50 with Mish,
Ranger, lr 1e-2, weight decay 1e-2, batch 64, `fit_flat_cos`, crops from 35% of the area and a flip,
label smoothing) from the package registry, and this repository's recipe, in fresh processes, one
after the other, A B B A, on the same folder at the same size: both without test-time augmentation,
both 5 epochs. The report is `Data/fastai_imagenette.json`. Its pair ran this repository's side at peak
0.4, the pick of an earlier, narrower sweep (the cell prints the options it had); at the lesson's 0.8 the
five seeds above are the figure to set beside fastai's."""),
code("""comparison = Path("Data/fastai_imagenette.json")
if comparison.exists():
    side_by_side = json.loads(comparison.read_text())
    for run in side_by_side["runs"]:
        print(f"{run['side']}, seed {run['seed']}: {run['accuracy']:.2f}% in {run['seconds']:.0f} s "
              f"({run.get('precision', side_by_side['precision'])})")
    print(f"{side_by_side['data_dir']}, {side_by_side['image_size']}px, {side_by_side['epochs']} epochs, "
          f"on {side_by_side['machine']}")
    print(f"time of this repository's run over fastai's: {side_by_side['resnet50_time_over_fastai_time']:.3f} "
          f"({side_by_side['pairs']} pair(s), A B B A); this repository's side with "
          f"{' '.join(side_by_side['resnet50_options']) or 'the recipe as it is'}")
    if side_by_side.get("note"):
        print(f"note: {side_by_side['note']}")
else:
    print("no comparison stored: python benchmarks/fastai_imagenette.py --data_dir <imagenette>")"""),
md("""## What this lesson showed"""),
code("""print(f"* The range test suggested " + (", ".join(f"{name} {lr:.3g}" for name, lr in lr_result.suggestions.items())
                                         or "nothing") + f"; the held-out sweep picked {MAX_LR:g}.")
print(f"* ResNet-50 v1.5, {EPOCHS} one-cycle epochs at {IMAGE_SIZE}px: {mean:.2f}% validation top-1, mean of {n} seeds "
      f"(sd {spread:.2f}), against the leaderboard's {LEADERBOARD_5}% ({mean - LEADERBOARD_5:+.2f}).")
print(f"* The run by hand: {history['test_acc'][-1]:.2f}% in {minutes:.1f} min on {describe_machine(device).split(',')[0]}, "
      f"{precision}.")
print(f"* Flat-then-cosine minus one cycle: {mean_difference:+.2f} points, 95% interval [{low:+.2f}, {high:+.2f}] "
      f"({len(differences)} seeds).")
print(f"* {4 * EPOCHS} epochs, one seed: {long_run['final_acc']:.2f}% (leaderboard {LEADERBOARD_20}%).")"""),
md("""## With the real ImageNet and a GPU
The same two steps from the command line, on the 1000-class ImageNet folder (`train/<wnid>/`,
`val/<wnid>/`) at 224 pixels; `main.py` uses bf16 from compute capability 8.0 and fp16 with a
GradScaler below, as this notebook does (`--precision` overrides it):
```
# 1. the range test, at the batch size you will train with (the best LR depends on it)
python main.py --data_dir ~/imagenet --find_lr --batch_size 256 --output_dir runs/r50_lr
# 2. one-cycle training at its suggestion (main.py checks the JSON's batch size), on 8 GPUs
torchrun --nproc_per_node=8 main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 \\
    --max_lr runs/r50_lr/suggested_lr.json --output_dir runs/r50
# after a crash or a preemption: the same command with --resume continues from the last epoch
```
* **Batch size and LR.** Under `torchrun` `--batch_size` is the global batch, split over the GPUs, so
  the suggestion made at batch 256 on one GPU applies unchanged. For a larger global batch, run the
  range test at that batch (with `--lr_accumulation_steps k` on one GPU: k x the batch), or scale the
  LR linearly with the batch ([Goyal et al. 2017](https://arxiv.org/abs/1706.02677): 0.1 per 256
  images, with a warm-up, which one-cycle's rising phase provides).
* **Expected time.** 16 epochs are 20.5 M images. NVIDIA reports 2,470 images/s for ResNet-50 v1.5
  training with mixed precision on one A100 80GB and 16,621 on eight (DeepLearningExamples,
  `PyTorch/Classification/ConvNets/resnet50v1.5`, with DALI, NVIDIA's library that decodes and augments
  the images on the GPU): about 2.3 hours on
  one A100 and 21 minutes on eight, if the data pipeline keeps up. `main.py` decodes each image
  once into a uint8 cache at 1.25x the size (`--cache_dir`); for all of ImageNet at 224 px that is
  about 300 GB, so there `--loader albumentations` decodes the JPEGs in CPU workers (`--workers`)
  instead: plan several CPU cores per GPU and read the first epoch's time in the log."""),
]
write_notebook(cells, "ImageNet_LR_Finder.ipynb")

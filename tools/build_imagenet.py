"""Writes ImageNet_LR_Finder.ipynb's cells (sources only; outputs come from executing it)."""
from notebook_common import (CHECK_OUTPUT, DEVICE_SETTING, FIGURES_SETTING, SMOKE_SETTING, TRAINING_RECIPE,
                             WORKERS_SETTING, badge, code, env_int, env_text, imports_cell, md, one_cycle_training,
                             range_test, recipe_setting, settings_cell, setup_cell_source, shown, smoke_folder,
                             write_notebook)

IMAGENET_CPU_NOTE = ("No GPU in this runtime: on a CPU, ResNet-50 trains at tens of images per second at best, so "
                     "Run all takes hours here. For a GPU (none has run this lesson yet): Runtime > Change runtime "
                     "type > T4 GPU, then Runtime > Run all (or set EPOCHS and MAX_SAMPLES lower in the Settings "
                     "cell).")
cells = [
md(badge("ImageNet_LR_Finder.ipynb") + """

# ResNet-50 from scratch: find the learning rate, then train in one cycle

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
([`lr_find` and `fit_one_cycle`](https://docs.fast.ai/callback.schedule.html)); David Page's
["How to train your ResNet"](https://myrtle.ai/learn/how-to-train-your-resnet/) shows how fast they
train a net on CIFAR-10.

The lesson: the data and its augmentation, the model, the range test and how to read it, a check of
its choice against short runs, then one-cycle training (20 epochs unless you change `EPOCHS`) and its
curves.

**Data.** Any folder in the ImageNet layout, `train/<class>/*.JPEG` and `val/<class>/*.JPEG`, given
as `IMAGENET_DIR`. Without one, the Settings cell downloads fast.ai's
[Imagenette](https://github.com/fastai/imagenette) (10 ImageNet classes, 160 pixels, a 94 MiB
archive) into `data/`, checks it and unpacks it: in Colab, Runtime > Run all works as it is.

**From the command line** the same two steps run headless (also on several GPUs under `torchrun`),
on the folder this notebook downloads or on your own; `main.py` chooses the precision as this notebook
does:
```
python main.py --data_dir data/imagenette2-160 --find_lr --batch_size 32 --image_size 128 --output_dir runs/imagenet_lr
python main.py --data_dir data/imagenette2-160 --epochs 20 --batch_size 32 --image_size 128 \\
    --max_lr runs/imagenet_lr/suggested_lr.json --output_dir runs/imagenet
```"""),
code(setup_cell_source(IMAGENET_CPU_NOTE)),
md("""## Settings
The next cell holds every setting a run may change. To change one, in Colab as anywhere, edit its line
(for a 5-epoch run, `EPOCHS = 5`) or set it in a new cell above before running this one:
`import os; os.environ["EPOCHS"] = "5"`. The settings: `IMAGENET_DIR` (the data folder), `IMAGE_SIZE` (pixels),
`BATCH_SIZE`, `LR_ITER` (batches in the range test), `EPOCHS`, `MAX_SAMPLES` (a class-balanced
subset of at most that many images of each split; 0 for all), `FIGURES` (where the figures go,
`runs/figures`; those in `Data/` are the committed run's, `FIGURES=Data`, which a re-run leaves as they are). `SMOKE=1` makes a tiny run on the CPU,
which the tests use. The training recipe itself (optimizer, loss, one-cycle shape) is
`recipes.IMAGENET`, the one `main.py` uses for image folders.

The outputs saved in this notebook come from one run with `IMAGENET_DIR` set to a subset of Imagenette
(300 training and 100 validation images per class, 224 pixels) and the defaults below, on the machine
printed under the imports. So its figures come from a 3,000 / 1,000-image part of Imagenette: they are
not comparable with Imagenette's leaderboard, which uses all 9,469 training and 3,925 validation
images. And they are one seed each, measured on 1,000 images: an accuracy near one half has a binomial
standard error of about 1.5 points (sqrt(p (1 - p) / 1000)), so a difference of a point or two between
two such runs is noise. Run all without `IMAGENET_DIR` trains on all of Imagenette instead: more
images, so a longer run and, with more to learn from, likely a higher accuracy."""),
code(settings_cell(
    """import dataset
import recipes
from imagenette import download_imagenette""",
    "recipe = recipes.IMAGENET",
    SMOKE_SETTING,
    env_text("IMAGENET_DIR"),
    """if SMOKE and not os.environ.get("IMAGENETTE_URL"):  # a generated folder of JPEGs instead of real data
    IMAGENET_DIR = tempfile.mkdtemp()
    for split, seed, count in (("train", 0, 128), ("val", 1, 64)):
        shapes = dataset.SyntheticImages(n=count, size=32, seed=seed)
        dataset.write_image_folder(shapes.images, shapes.labels, shapes.classes, IMAGENET_DIR, split)
if not IMAGENET_DIR:  # fast.ai's Imagenette: downloaded, checked and unpacked into data/ once
    IMAGENET_DIR = download_imagenette("data")""",
    DEVICE_SETTING,
    env_int("IMAGE_SIZE", 128, smoke=32),
    env_int("BATCH_SIZE", 32, smoke=16),
    recipe_setting("LR_ITER", smoke=40),
    env_int("EPOCHS", 20, smoke=2),
    env_int("MAX_SAMPLES", 0, then=" or None"),
    WORKERS_SETTING,
    "THREADS = 1 if SMOKE else os.cpu_count() or 1",
    "SEED = 1",
    FIGURES_SETTING,
    smoke_folder("REPORT_DIR", "runs/imagenet_lr_finder"),
    smoke_folder("CHECKPOINTS", "checkpoints/imagenet"),
    'print(f"' + shown("IMAGE_SIZE", "BATCH_SIZE", "LR_ITER", "EPOCHS", "MAX_SAMPLES") + '")')),
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

import albumentations as A
import numpy as np
import torch
from IPython.display import Image, display

import visualize
from custom_resnet import resnet50
from lr_finder import find_lr, write_report
from precision import Precision, get_device
from recipes import build_criterion, build_one_cycle, build_optimizer
from seeding import seed_everything
from training_utils import fit
from imagenet_classes import readable_class_names
from utils import block_summary, count_parameters, describe_machine""", threads=True)),
md("""## The data
`dataset.image_folder_datasets` lists both splits (the classes, and so their number, come from the
folder names under `train/`) and pairs them with the ImageNet transforms. ImageNet's folders are
WordNet ids (`n01440764`); `imagenet_classes.readable_class_names` turns them into the class names
(`tench`) from the ImageNet-1K table in the repository."""),
code("""train_set, val_set, folders = dataset.image_folder_datasets(IMAGENET_DIR, IMAGE_SIZE, MAX_SAMPLES, seed=SEED,
                                                            color_jitter=recipe.color_jitter)
classes = readable_class_names(folders)  # ImageNet wnids -> names; other folder names stay as they are
print(f"{len(classes)} classes: " + ", ".join(f"{name} ({folder})" if name != folder else name
                                             for name, folder in list(zip(classes, folders))[:10])
      + (" ..." if len(classes) > 10 else ""))
print(f"{len(train_set)} training images, {len(val_set)} validation images")"""),
code("""shown = np.random.default_rng(SEED).choice(len(train_set), size=min(20, len(train_set)), replace=False)
samples = [train_set.source[int(i)] for i in shown]
visualize.plot_samples([image for image, _ in samples], [label for _, label in samples], classes,
                       save_path=f"{FIGURES}/imagenet_samples.png")"""),
md("""## Augmentation
The standard ImageNet recipe, with Albumentations:
* training: a **random-resized crop** (a random share of the area at a random aspect ratio, resized to
  `IMAGE_SIZE`; from 8% of the area at 160 pixels and above, from 35% below, where tiny crops hold too
  little) and a **horizontal flip**, then the ImageNet mean/std normalisation;
* validation: resize the short side to `IMAGE_SIZE / 0.875` (256 for 224), then a **center crop**.

The recipe adds no colour jitter, as NVIDIA's and torchvision's ResNet-50 recipes add none. A first
20-epoch run with jitter 0.4 ended lower, but it also took crops from 25% of the area instead of 35%
and trained at another max LR: three changes at once, one seed, so it does not show what the jitter
alone costs.
Augmentation regularises, and too much of it holds a net back: a sign of that is a training accuracy
(measured on augmented images) that stays at or below the validation accuracy, which the last cell
prints for this run. `dataset.imagenet_augmentations(color_jitter=0.4)` adds the jitter; `main.py`
also offers cutout (`--cutout`) and rotation (`--rotate_degrees`).

Each row below applies one pipeline (without the normalisation) to the same images."""),
code("""augmentations = {
    "train": A.Compose(dataset.imagenet_augmentations(IMAGE_SIZE, color_jitter=recipe.color_jitter)),
    "val": A.Compose(dataset.imagenet_val_crop(IMAGE_SIZE)),
}
visualize.plot_augmentations([image for image, _ in samples[:6]], augmentations,
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

Four rules turn the curve into one LR:
* `steepest`: where the loss falls fastest (torch-lr-finder's rule), easily fooled by early noise;
* `valley`: half-way down the longest stretch of falling loss (fastai's `lr_find` rule), a safe LR for
  training at a constant rate;
* `min_loss`: the LR at the lowest loss, the largest at which the loss still fell;
* `minimum`: `min_loss / 10`, the classic advice for a constant rate.

**The one-cycle maximum LR is `min_loss`**, the same rule as in `S10.ipynb`: one-cycle visits its peak
only briefly, after a warm-up, so it can use the largest LR that still makes progress; that is Smith's
upper bound of the range. The rules only look at the curve before the loss blows up (past twice its
lowest value): a wrecked net's loss can drift down again, and that fall must not attract a suggestion.

`write_report` keeps the result beside the run, as `main.py --find_lr` does: the plot, a log (the
configuration, the call, the results, warnings, next steps) and `suggested_lr.json`, the file that
`main.py --max_lr` reads. The cell prints the suggestions and anything the log warns about."""),
code("""train_loader = dataset.make_loader(train_set, BATCH_SIZE, train=True, device=device, workers=WORKERS, seed=SEED)
val_loader = dataset.make_loader(val_set, BATCH_SIZE, train=False, device=device, workers=WORKERS)
""" + range_test("resnet50(num_classes=len(classes))") + """
call = (f"find_lr(resnet50({len(classes)}), recipes.IMAGENET optimizer and loss, train_loader, start_lr={recipe.lr_start:g}, "
        f"end_lr={recipe.lr_end:g}, num_iter={LR_ITER}) in ImageNet_LR_Finder.ipynb")
report = write_report(lr_result, REPORT_DIR, f"{os.path.basename(os.path.normpath(IMAGENET_DIR))} ({len(classes)} classes, "
                      f"{len(train_set)} training images at {IMAGE_SIZE}px)", BATCH_SIZE, call,
                      config={"model": "ResNet-50 v1.5", "recipe": recipe.name}, plot_file=f"{FIGURES}/imagenet_lr_finder.png")
MAX_LR = json.loads(report["json"].read_text())["suggested_lr"]
stopped = " (stopped early: the loss diverged)" if lr_result.stopped_early else ""
print(f"range test: {len(lr_result.all_lrs)} batches of {BATCH_SIZE} in {lr_result.seconds:.0f} s{stopped}")
print(f"smoothed loss from {lr_result.losses[0]:.2f} down to {min(lr_result.losses):.2f} "
      f"(a uniform guess over {len(classes)} classes scores ln {len(classes)} = {math.log(len(classes)):.2f})")
for name, lr in lr_result.suggestions.items():
    chosen = "  <- one-cycle max LR (suggested_lr in suggested_lr.json)" if name == "min_loss" else ""
    print(f"  {name:9s} {lr:.3g}{chosen}")
for warning in lr_result.warnings:
    print(f"note: {warning}")
print(f"report: {report['log']}, {report['json']}")"""),
md("""The curve, each suggestion marked:"""),
code("""display(Image(filename=str(report["plot"])))"""),
md("""## Does `min_loss` pick a good max LR? A check with short runs
A rule is only as good as the training it leads to. `lr_sweep.py` checks it: it runs the range test,
then trains a fresh ResNet-50 for 3 one-cycle epochs at each of several max LRs (a grid plus the
suggestions; the same seed, so the runs differ only in their max LR) and measures the validation
accuracy of each. The cell below prints three such sweeps, saved in `Data/` with the data, the
machine and the times of their runs (on the Imagenette subset of this notebook's saved run):
* `imagenet_lr_sweep.json`: this lesson's net, zero-initialised residual branches, with range tests
  of 100 and 300 batches;
* `imagenet_lr_sweep_default_init.json`: the same with torchvision's default initialisation;
* `imagenet_lr_sweep_recipe.json`: max LRs around this lesson's choice, without a range test.

The first two trained with a stronger augmentation than the recipe's (colour jitter 0.4, crops from
25% of the area); the third with the recipe's own. The commands:
```
python lr_sweep.py --dataset imagefolder --data_dir <imagenette> --image_size 128 --epochs 3 \\
    --lr_iter 100 300 --grid 0.03 0.1 0.3 --output Data/imagenet_lr_sweep
python lr_sweep.py --dataset imagefolder --data_dir <imagenette> --image_size 128 --epochs 3 --init default \\
    --lr_iter 100 300 --grid 0.03 --suggestion_runs min_loss --output Data/imagenet_lr_sweep_default_init
python lr_sweep.py --dataset imagefolder --data_dir <imagenette> --image_size 128 --epochs 3 \\
    --no_range_test --grid 0.0123 0.0248 0.05 --output Data/imagenet_lr_sweep_recipe
```

How to read them:
* **The initialisation decides whether the test can see learning.** A net that starts as a shallow
  one (zero-initialised residual branches) starts close to a uniform guess, and its loss falls below
  that level before it rises: the range test sees the net learn, and its `min_loss` lands among the
  sweep's better LRs: its run and the runs at the next two larger LRs of the grid lie within three
  points, which one seed on 1,000 images cannot tell apart, while the grid's smallest and largest LRs
  train 7 to 9 points worse. With torchvision's initialisation every block adds its
  residual branch from the first step; the untrained net's loss starts higher and its early fall is
  the net unlearning that start (learning to guess evenly), drawn out by the smoothing, whose moving
  average starts at the first batch's loss. `min_loss` then lands on that fall, far below a good max
  LR, and training there ends about 8 points below training at a larger one, beyond one seed's
  noise.
* **The length of the test moves `min_loss`, not the blow-up.** With three times as many batches the LR
  grows three times slower; the loss bottoms out lower and earlier, along a broad floor where
  `min_loss` can land anywhere, while the loss takes off at about the same LR.
* **Batch-norm statistics do not enter the test:** it records the training loss, which a net in
  training mode computes with each batch's own statistics.
* The last lines put this run's choice among the recipe's check (three LRs around it, with the
  recipe's own augmentation): one seed per LR, so differences of a point or two are noise. Its three
  runs lie within about two points of each other, and the best is its largest LR, the grid's edge: the
  check shows that this choice is not far off, not where the top of the curve lies."""),
code("""sweeps = {}
for init, name in (("zero-init residuals (this lesson)", "imagenet_lr_sweep"),
                   ("torchvision's init", "imagenet_lr_sweep_default_init"),
                   ("recipe check", "imagenet_lr_sweep_recipe")):
    with open(f"Data/{name}.json") as file:
        sweeps[init] = json.load(file)
print(f"3 one-cycle epochs per run, on {sweeps[init]['machine']}, {sweeps[init]['precision']}; "
      f"a uniform guess over 10 classes scores ln 10 = {math.log(10):.2f}")
for init, sweep in sweeps.items():
    print(f"\\n{init}: {sweep['what']}")
    for test in sweep.get("range_tests", []):
        print(f"  range test, {test['num_iter']} batches ({test['seconds']:.0f} s): loss from {test['losses'][0]:.2f} "
              f"to {min(test['losses']):.2f}; " + ", ".join(f"{k} {v:.3g}" for k, v in test["suggestions"].items()))
    for run in sweep["results"]:
        print(f"  max LR {run['max_lr']:7.4f}: validation top-1 {run['test_acc']:5.2f}%  ({run['seconds']:.0f} s)")
check = sweeps["recipe check"]["results"]
nearest = min(check, key=lambda run: abs(math.log(run["max_lr"] / MAX_LR)))
best = max(check, key=lambda run: run["test_acc"])
print(f"\\nthis run's max LR: {MAX_LR:.3g}; nearest in the recipe check: {nearest['max_lr']:.3g}, "
      f"{nearest['test_acc']:.1f}% after 3 epochs, {best['test_acc'] - nearest['test_acc']:.1f} points below the "
      f"check's best ({best['max_lr']:.3g})")
display(Image(filename="Data/imagenet_lr_sweep_range_tests.png"))
display(Image(filename="Data/imagenet_lr_sweep.png"))"""),
md("""## One-cycle training
The recipe's schedule is PyTorch's
[`OneCycleLR`](https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html),
stepped after every batch: the LR rises from `MAX_LR / 25` to `MAX_LR` over the first 30% of the
steps (the warm-up), then follows half a cosine down to `MAX_LR / 25 / 10^4`; the cell prints the
numbers of this run before it trains. The other settings, each printed from `recipes.IMAGENET`:
* **momentum cycled** against the LR, from 0.95 down to 0.85 at the peak and back, as Smith's one-cycle
  policy does: SGD's step grows with `lr / (1 - momentum)`, so lowering the momentum while the LR
  rises keeps the largest steps in check, and raising it again as the LR falls keeps the small
  steps of the annealing moving. S10 keeps its momentum fixed at 0.9, as Page's recipe, which it
  reproduces, was tuned;
* **SGD with Nesterov momentum**: the gradient is taken where the momentum is about to carry the
  weights, which damps oscillations ([PyTorch's SGD](https://pytorch.org/docs/stable/generated/torch.optim.SGD.html));
* **weight decay**: every step shrinks the weights a little towards zero, which keeps them small
  and the net's function smooth; small here, because one-cycle's large LRs already regularise
  (Smith 2018);
* **label smoothing** ([Szegedy et al. 2016, arXiv 1512.00567](https://arxiv.org/abs/1512.00567)):
  with smoothing ε the target is 1 - ε on the true class plus ε spread evenly over all classes, so
  the net is not pushed towards ever more confident outputs, which overfit.

`fit` evaluates the validation split after each epoch. Its **top-1** accuracy (the share of images
whose highest-scoring class is the right one) is the number to read; it also prints top-5 (the right
class among the five highest), ImageNet's customary second figure, which with 10 classes says little:
a blind guess already scores 50%. It keeps `last.pt` and `best.pt`; `main.py --resume` continues
such a run on the same schedule. ResNet-50 has far more parameters than this data set has images (the
cell prints both), so the augmentation carries the run: the validation accuracy, not the training
loss, is the number to watch."""),
code(TRAINING_RECIPE + "\n" + one_cycle_training("resnet50(num_classes=len(classes))") + """
steps = EPOCHS * len(train_loader)
print(f"{count_parameters(model):,} trainable parameters, {len(train_set):,} training images")
print(f"{recipe.optimizer.upper()}{' with Nesterov momentum' if recipe.nesterov else ''}, weight decay "
      f"{recipe.weight_decay:g}, label smoothing {recipe.label_smoothing:g}")
start_lr, final_lr = MAX_LR / recipe.div_factor, MAX_LR / recipe.div_factor / recipe.final_div_factor
print(f"one cycle over {steps} steps: LR {start_lr:.3g} -> {MAX_LR:.3g} over the first {recipe.pct_start:.0%}, "
      f"then annealing ({recipe.anneal_strategy}) to {final_lr:.3g}; "
      f"momentum {recipe.max_momentum:g} -> {recipe.base_momentum:g} -> {recipe.max_momentum:g}")
start = time.perf_counter()
history = fit(model, device, train_loader, val_loader, optimizer, criterion, EPOCHS, scheduler, precision=precision,
              topk=5, checkpoint_dir=CHECKPOINTS, seed=SEED, test_name="val")
minutes = (time.perf_counter() - start) / 60
print(f"after {EPOCHS} epochs: validation top-1 {history['test_acc'][-1]:.2f}%, top-5 {history['test_top5'][-1]:.2f}% "
      f"(max LR {MAX_LR:.3g}, batch {BATCH_SIZE}, {IMAGE_SIZE}px, {precision} on {device}, {minutes:.1f} min)")"""),
md("""## Loss, accuracy and the schedule
The curves (the validation top-5 line for reference only), then the LR and momentum of every step as
the run used them: the LR's single rise and long fall, the momentum's mirror image."""),
code("""visualize.plot_history(history, save_path=f"{FIGURES}/imagenet_curves.png", split="validation")"""),
code("""visualize.plot_lr_schedule(history["lr"], history["momentum"], steps_per_epoch=len(train_loader),
                           save_path=f"{FIGURES}/imagenet_lr_schedule.png")"""),
md("""## What this run showed
Validation top-1 is the result; top-5 of 10 classes is printed for reference only."""),
code("""best = max(range(EPOCHS), key=history["test_acc"].__getitem__)
seconds = sum(history["epoch_time"])  # training and evaluation
print(f"* The range test ({len(lr_result.all_lrs)} batches of {BATCH_SIZE}, {lr_result.seconds / 60:.1f} min) "
      f"suggested " + ", ".join(f"{name} {lr:.3g}" for name, lr in lr_result.suggestions.items())
      + f"; training used max LR {MAX_LR:.3g}.")
print(f"* {EPOCHS} one-cycle epochs of ResNet-50 from scratch on {len(train_set)} images at {IMAGE_SIZE}px "
      f"({minutes:.1f} min, {seconds / EPOCHS:.0f} s per epoch with its evaluation, on "
      f"{describe_machine(device).split(',')[0]}): validation top-1 {history['test_acc'][-1]:.2f}%, "
      f"top-5 {history['test_top5'][-1]:.2f}% on {len(val_set)} images (chance: {100 / len(classes):.0f}%; best epoch "
      f"{best + 1}: {history['test_acc'][best]:.2f}%); training accuracy {history['train_acc'][-1]:.2f}% on augmented "
      f"images.")"""),
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
  one A100 and 21 minutes on eight, if the data pipeline keeps up. This repository's loader decodes
  JPEGs with Albumentations on CPU workers (`--workers`), so plan several CPU cores per GPU and read the
  first epoch's time in the log."""),
]
write_notebook(cells, "ImageNet_LR_Finder.ipynb")

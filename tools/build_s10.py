"""Writes S10.ipynb's cells (sources only; outputs come from executing it)."""
from notebook_common import (CHECK_OUTPUT, DEVICE_SETTING, FIGURES_SETTING, SMOKE_SETTING, TRAINING_RECIPE,
                             WORKERS_SETTING, badge, code, env_text, imports_cell, md, one_cycle_training, range_test,
                             recipe_setting, settings_cell, setup_cell_source, shown, smoke_folder, write_notebook)

S10_CPU_NOTE = ("No GPU in this runtime: the 24 epochs take hours on a CPU. For a GPU: Runtime > Change runtime "
                "type > T4 GPU, then Runtime > Run all. For a shorter run, set EPOCHS in the Settings cell.")
SMITH_2015 = "[Smith 2015, *Cyclical Learning Rates for Training Neural Networks*](https://arxiv.org/abs/1506.01186)"
SMITH_2018 = ("[Smith 2018, *A disciplined approach to neural network hyper-parameters: Part 1*]"
              "(https://arxiv.org/abs/1803.09820)")
SUPER_CONVERGENCE = ("[Smith & Topin 2017, *Super-Convergence: Very Fast Training of Neural Networks Using Large "
                     "Learning Rates*](https://arxiv.org/abs/1708.07120)")
PAGE = "[David Page, *How to train your ResNet*](https://myrtle.ai/learn/how-to-train-your-resnet/)"
FASTAI = "[fastai](https://docs.fast.ai/callback.schedule.html)"
cells = [
md(badge("S10.ipynb") + f"""

# S10: CIFAR-10 in 24 epochs with a custom ResNet and the one-cycle policy

This lesson trains David Page's 9-layer ResNet on CIFAR-10 with Leslie Smith's **one-cycle** learning-rate
policy, and picks the policy's peak learning rate (LR) with Smith's **LR range test**:

1. look at the data (statistics, samples, augmentations);
2. build the model and read its summary;
3. run the LR range test and turn its curve into the peak LR;
4. plot the one-cycle schedule that training will follow, train with it, then study the curves and the
   mistakes.

Where the ideas come from, for more than the sentence each gets here:
* the LR range test: {SMITH_2015};
* one cycle: {SMITH_2018}, and {SUPER_CONVERGENCE};
* the network and the 24-epoch recipe: {PAGE}, a blog series that takes this net to 94% test accuracy in
  24 epochs;
* the same tools in a library: {FASTAI}'s `lr_find` (the range test) and `fit_one_cycle`.

**The reference notebook**, named below, is the course's original S10 notebook, which this lesson
rebuilds: the same network, trained for 24 epochs with Adam (weight decay 1e-4), 16x16 cutout and a
one-cycle peak of 0.0441 (the steepest-slope point of its range test); its own report gives 90.71% test
accuracy. This lesson trains Page's recipe instead (SGD, explained below).

The logic lives in small modules next to this notebook (`recipes.py`, `dataset.py`, `batched_data.py`,
`custom_resnet.py`, `precision.py`, `seeding.py`, `training_utils.py`, `lr_finder.py`, `utils.py`,
`visualize.py`); each cell is a few calls into them. The numbers in the text are printed by the cells;
numbers from elsewhere name their source."""),
code(setup_cell_source(S10_CPU_NOTE)),
md("""## Settings
The recipe (`recipes.S10`) holds every training setting. The cell below reads the few things a run may
change: `CIFAR10_DIR` (a folder with `train.npz`/`test.npz` or torchvision's `cifar-10-batches-py`;
default `./data`, where torchvision downloads CIFAR-10 when it is missing), `EPOCHS`, `BATCH_SIZE`,
`LR_ITER` (the range test's iterations) and `COMPILE=1` (train a `torch.compile`d copy of the model; its
first steps compile it, and whether that pays depends on the machine).

**To change a setting in Colab** (or any Jupyter), edit its default in the cell below, e.g.
`EPOCHS = int(os.environ.get("EPOCHS", 8))`, or run `import os; os.environ["EPOCHS"] = "8"` in a new cell
above it; then run the notebook from there. From a terminal, set them as environment variables:
`EPOCHS=8 make run`. (`SMOKE=1` is a one-minute run on generated images that tests the notebook.)

The outputs below come from running this notebook with these defaults; the cells print the machine and
the times. `FIGURES` is where the figures go (`runs/figures`); those in `Data/` are the committed
run's (`FIGURES=Data`), which a re-run leaves as they are."""),
code(settings_cell(
    "from recipes import S10 as recipe",
    SMOKE_SETTING,
    'DATASET = "synthetic" if SMOKE else "cifar10"',
    env_text("CIFAR10_DIR", "data"),
    DEVICE_SETTING,
    recipe_setting("EPOCHS", smoke=2),
    recipe_setting("BATCH_SIZE", smoke=32),
    recipe_setting("LR_ITER", smoke=15),
    "TEST_BATCH_SIZE = 256 if SMOKE else 1000",
    WORKERS_SETTING,
    "SEED = 1",
    FIGURES_SETTING,
    smoke_folder("CHECKPOINTS", "checkpoints/s10"),
    '''COMPILE = os.environ.get("COMPILE", "0")
if COMPILE not in ("0", "1"):
    raise ValueError(f"COMPILE={COMPILE!r}: use 1 to train the torch.compile'd model, 0 (the default) for the plain one")
COMPILE = COMPILE == "1"''',
    'print(f"data {DATASET}, ' + shown("EPOCHS", "BATCH_SIZE", "LR_ITER", "COMPILE", sep=", ") + ', seed {SEED}")')),
code(imports_cell("""import collections
import time
from dataclasses import replace

import albumentations as A
import torch

import dataset
import visualize
from batched_data import BatchedCifarLoader
from custom_resnet import CustomResNet
from lr_finder import find_lr
from precision import Precision, get_device
from recipes import build_criterion, build_one_cycle, build_optimizer
from seeding import seed_everything
from training_utils import compile_model, fit, get_lr, get_momentum
from utils import (count_parameters, describe_machine, get_cifar_statistics, get_predictions, misclassified,
                   model_summary)""")),
md("""Three speed settings, each chosen once here and used by every later cell:
* **bf16 autocast** ([PyTorch AMP](https://pytorch.org/docs/stable/amp.html)): inside `torch.autocast`,
  convolutions and matrix products run in bfloat16, a 16-bit float with fp32's range, which is faster
  where the hardware has bf16 units, while the weights and the optimizer stay in fp32. `Precision.resolve`
  picks it on GPUs of compute capability 8.0 and up and on CPUs with bf16 units, instructions that
  multiply bf16 numbers in hardware: AVX-512 BF16 (vector instructions of recent Intel and AMD CPUs) or
  Intel's AMX (Advanced Matrix Extensions, matrix tiles on recent Xeons); on other CPUs bf16 is emulated
  and slow, so they train in plain fp32.
* **fp16 with a GradScaler**, on older GPUs (a T4 or V100): fp16 has a far smaller range than bf16, so small
  gradients would round to zero; the
  [GradScaler](https://pytorch.org/docs/stable/amp.html#gradient-scaling) multiplies the loss by a large
  factor before the backward pass and divides the gradients by it before the optimizer step.
* **channels_last** ([tutorial](https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html)):
  the model's weights and the image batches are stored pixel by pixel (all channels of a pixel
  together), the layout the fast convolution kernels of GPUs and of oneDNN (the library of CPU kernels
  that PyTorch calls for convolutions) work in;
  `precision.prepare` converts the model, the training step the batches.

On CUDA, `cudnn.benchmark` also lets cuDNN time its convolution algorithms once per input shape and keep
the fastest.

## The data
CIFAR-10: 50,000 training and 10,000 test images, 32x32 RGB, 10 classes."""),
code("""train_data = dataset.load_cifar(DATASET, CIFAR10_DIR, train=True)
test_data = dataset.load_cifar(DATASET, CIFAR10_DIR, train=False)
classes = dataset.class_names(DATASET)
mean, std = get_cifar_statistics(train_data, "Train")
get_cifar_statistics(test_data, "Test");"""),
md("""The per-channel **mean and std of the training set** normalise every image (train and test): the net
then sees inputs centred on zero with unit spread in each channel."""),
code("""visualize.plot_samples(train_data[0], train_data[1], classes, count=20, save_path=f"{FIGURES}/samples.png")"""),
md("""## Augmentation (Albumentations)
Augmentation shows the net a slightly different version of each training image every epoch, so it
learns what stays the same (the object) rather than memorising pixels. Page's recipe uses three:
* **pad by 4 pixels (reflection) and crop back to 32x32**: small translations;
* **flip horizontally** half of the time;
* **cut out** one 8x8 square, filled with the data mean
  ([Cutout, DeVries & Taylor 2017](https://arxiv.org/abs/1708.04552)), which makes the net use the whole
  object, not one tell-tale patch. The reference notebook cut 16x16; Page's recipe cuts 8x8, which we
  follow.

A **random rotation** (here up to 15 degrees) is a common extra for small images; it is shown as an
option (`dataset.cifar_augmentations(..., rotate_degrees=15)`, `main.py --rotate_degrees 15`); Page's
recipe, which this lesson trains, does not use it.

Below, each augmentation alone on the same images, then the training pipeline (without the
normalisation, so the images stay viewable)."""),
code("""fill = tuple(int(round(m * 255)) for m in mean)
augmentations = {
    "pad 4 + crop": A.Compose(dataset.cifar_augmentations(mean, crop_padding=recipe.crop_padding, flip=False,
                                                          cutout_holes=0)),
    "flip": A.HorizontalFlip(p=1.0),
    "rotate <= 15 deg\\n(optional)": A.Rotate(limit=15, border_mode=4, p=1.0),
    f"cutout {recipe.cutout_length}x{recipe.cutout_length}": dataset.cutout(recipe.cutout_holes, recipe.cutout_length, fill),
    "training\\npipeline": A.Compose(dataset.cifar_augmentations(mean, recipe.cutout_length, recipe.cutout_holes,
                                                                recipe.crop_padding)),
}
visualize.plot_augmentations(train_data[0][:8], augmentations, save_path=f"{FIGURES}/augmentations.png")"""),
md("""The training set wraps the arrays with that pipeline plus normalisation, in a PyTorch `DataLoader`
whose worker processes augment the next batches while the model trains on the current one. Each
epoch's order and each image's augmentation derive from `(seed, epoch)`, so a run stopped after any
epoch resumes from its checkpoint exactly as if it had never stopped.

On a GPU, the Albumentations loader (one image at a time, in CPU worker processes) cannot keep up with
this small net, so there `batched_data.BatchedCifarLoader` trains instead: the uint8 images live on the
GPU and each batch is cropped, flipped and cut out at once with tensor operations (the same three
augmentations)."""),
code("""train_transforms = dataset.cifar_train_transforms(mean, std, recipe.cutout_length, recipe.cutout_holes,
                                                  recipe.crop_padding)
if device.type == "cuda":
    train_loader = BatchedCifarLoader(*train_data, BATCH_SIZE, mean, std, train=True, device=device,
                                      cutout_length=recipe.cutout_length, crop_padding=recipe.crop_padding, seed=SEED)
    test_loader = BatchedCifarLoader(*test_data, TEST_BATCH_SIZE, mean, std, train=False, device=device)
else:
    train_set = dataset.AlbumentationsDataset(dataset.ImageArrays(*train_data), train_transforms, seed=SEED)
    test_set = dataset.AlbumentationsDataset(dataset.ImageArrays(*test_data), dataset.cifar_test_transforms(mean, std))
    train_loader = dataset.make_loader(train_set, BATCH_SIZE, train=True, device=device, workers=WORKERS, seed=SEED)
    test_loader = dataset.make_loader(test_set, TEST_BATCH_SIZE, train=False, device=device, workers=WORKERS)
print(f"{type(train_loader).__name__}: {len(train_data[1])} training images, {len(train_loader)} steps per epoch "
      f"of {BATCH_SIZE}")"""),
md("""## The model
David Page's ResNet: a prep conv (64 channels), then three layers of conv -> max-pool -> batch norm ->
ReLU at 128, 256 and 512 channels, with a residual block (two conv-BN-ReLU, added to their input) after
the first and the third; a global max-pool and one linear layer. Its logits are multiplied by 0.125
(Page's trick: a softer softmax, so the first steps do not make over-confident predictions)."""),
code("""model_summary(CustomResNet(num_classes=10), input_size=(3, 32, 32), device="cpu")
print(f"trainable parameters: {count_parameters(CustomResNet(num_classes=10)):,}")""", metadata=CHECK_OUTPUT),
md(f"""## The LR range test
The learning rate is the setting that matters most, and the range test ({SMITH_2015}) measures it with
a short run instead of guessing it: it trains for `LR_ITER` batches while the LR grows exponentially
from `1e-4` to `10`, and records the loss (smoothed, as one batch's loss is noisy). At first the LR is too
small to change anything; then the loss falls; past some LR the steps overshoot and the loss shoots up.
Four suggestions come out of the curve:
* **steepest**: where the loss falls fastest (torch-lr-finder's `plot()` rule, and the reference
  notebook's choice); early noise easily fools it;
* **valley**: {FASTAI}'s default in `lr_find`, about halfway down the longest stretch of falling loss;
* **min_loss**: the LR at the lowest smoothed loss, just before it turns up;
* **minimum**: fastai's `minimum`, the `min_loss` LR divided by 10.

**The rule here: the one-cycle peak LR is the `min_loss` suggestion.** steepest, valley and minimum
answer "which *constant* LR learns fastest"; one cycle asks something else: the largest LR at which
training still makes progress. Smith (2015) takes the LR where the curve stops improving as the upper
bound of a cyclical schedule, and one cycle stays near that peak only briefly, between a warm-up and a
long decay, so it can use it. The test uses the recipe's optimizer, loss and batch size, and restores
the model, the optimizer and every random state afterwards, so the training below starts exactly as it
would without it."""),
code(range_test("CustomResNet(num_classes=len(classes))") + """
MAX_LR = lr_result.suggestions["min_loss"]
for name, lr in lr_result.suggestions.items():
    print(f"{name:9s} {lr:.3e}")
print(f"range test: {len(lr_result.all_lrs)} iterations of {BATCH_SIZE} images in {lr_result.seconds:.0f}s; "
      f"chosen max LR (min_loss) = {MAX_LR:.3g}")
for warning in lr_result.warnings:
    print("note:", warning)"""),
code("""visualize.plot_lr_finder(lr_result, chosen_lr=MAX_LR, save_path=f"{FIGURES}/lr_finder.png")"""),
md("""### Does the rule pick a good max LR? A sweep
`lr_sweep.py` checks the rule the direct way: it runs the range test on a fixed 10,000-image subset of
the training set, then trains the same recipe from scratch at each of several max LRs, and measures
the final accuracy on all 10,000 test images. Two sweeps are committed in `Data/`: 4 epochs per run
over a grid of LRs (`lr_sweep.json`, made with `python lr_sweep.py --data_dir <cifar10>`), and 8 epochs
per run at two of them (`lr_sweep_8_epochs.json`); the cell below reads both.

How to read it: peaks as low as the `valley` and `minimum` suggestions train far worse than the best
one, as those rules are meant for a constant LR. In runs this short (4 epochs of a 10,000-image subset,
fewer than 100 steps in all) the best peak lies below the `min_loss` LR; with 8 epochs per run the
gap narrows. A longer cycle tolerates a higher peak, and the lesson's cycle (24 epochs of the full
training set) is far longer; the cell's last line compares the rule's LR from the range test above with
the peak David Page tuned by hand for this recipe. So the lesson keeps `min_loss`; for very short
runs, a peak of half of it is the safer choice."""),
code("""import json

from IPython.display import Image, display

with open("Data/lr_sweep.json") as file:
    sweep = json.load(file)
with open("Data/lr_sweep_8_epochs.json") as file:
    longer = json.load(file)
print(f"{sweep['settings']['subset']} training images, {sweep['settings']['epochs']} epochs per run, {sweep['machine']}")
print("range test on the subset: " + ", ".join(f"{k} {v:.3g}" for k, v in sweep["suggestions"].items()))
for run in sweep["results"]:
    print(f"max LR {run['max_lr']:7.4f}: final test accuracy {run['test_acc']:5.2f}%")
print(f"best: max LR {sweep['best']['max_lr']:g} ({sweep['best']['test_acc']:.2f}%); grid point nearest the "
      f"{sweep['rule']} rule: {sweep['at_rule']['max_lr']:g} ({sweep['at_rule']['test_acc']:.2f}%)")
print(f"{longer['settings']['epochs']} epochs per run: " + ", ".join(
    f"max LR {run['max_lr']:g} {run['test_acc']:.2f}%" for run in longer["results"]))
PAGE_MAX_LR = recipe.max_lr  # the recipe's own peak, tuned by hand
print(f"the range test above: min_loss {MAX_LR:.3g}; "
      f"David Page's hand-tuned peak: {PAGE_MAX_LR:g}")
display(Image("Data/lr_sweep.png"))"""),
md(f"""## The one-cycle schedule
One cycle ({SMITH_2018}; PyTorch's
[`OneCycleLR`](https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html))
sets the LR of every training step along one rise and one fall:
* **warm-up**: the LR starts at `MAX_LR / 100` and rises linearly to `MAX_LR` over the first 5/24 of the
  steps (5 of Page's 24 epochs). A fresh net has large, erratic gradients and batch-norm statistics that have not settled; a
  large LR at once would throw it into a bad region or make the loss diverge.
* **large LR**: around the peak, each step is big and noisy. That noise keeps the weights out of
  narrow minima that fit the training set but generalise badly (it acts as a regulariser), and covers
  ground fast: {SUPER_CONVERGENCE} shows nets trained this way reaching their accuracy in far fewer
  epochs ("super-convergence").
* **annealing**: the LR then falls linearly to `MAX_LR / 100 / 100` at the last step, and the shrinking
  steps settle the weights into the bottom of the region they found: the test accuracy, which wobbles
  while the LR is large, climbs as it falls.

Page's shape for this recipe is `pct_start=5/24, div_factor=100, final_div_factor=100,
anneal_strategy="linear"`, stepped after every batch.

**Why SGD and not the reference's Adam.** Page's recipe, which reached a median of 94.08% over 50 runs
of 24 epochs on a V100 (his published result), trains with plain SGD and these settings:
* **Nesterov momentum 0.9**: momentum keeps a running average of past gradients as the step direction;
  Nesterov's variant takes the gradient at the point that average is about to carry the weights to, which
  damps oscillation at large LRs ([PyTorch `SGD`](https://pytorch.org/docs/stable/generated/torch.optim.SGD.html)).
* **weight decay 5e-4**: adds 5e-4 times each weight to its gradient (an L2 penalty), pulling weights
  towards zero; with batch norm it mainly keeps the weights' scale, and so the effective LR, in check.
  Adam divides that term by the same per-weight scale as the gradient, so there it regularises unevenly
  ([Loshchilov & Hutter 2017](https://arxiv.org/abs/1711.05101)).
* **label smoothing 0.2** (our addition to Page's recipe;
  [Szegedy et al. 2016](https://arxiv.org/abs/1512.00567)): the loss's target is 0.82 for the true class
  and 0.02 for each other class instead of 1 and 0, so the net is not pushed towards ever larger logits
  and over-confident predictions. It is also why the training loss below never comes near zero.
* **momentum fixed at 0.9** (`cycle_momentum=False`): Smith's one cycle also cycles the momentum, down to
  0.85 while the LR rises and back to 0.95, so that the effective step (about LR / (1 - momentum)) grows
  less during the warm-up. Page's
  recipe keeps momentum at 0.9 throughout and reached its 94% that way, so this lesson, which follows his
  recipe, does the same; the ImageNet lesson (`ImageNet_LR_Finder.ipynb`) follows Smith and cycles it.

The cell below prints the recipe's settings; the next one makes the recipe this run trains with (a copy
with this notebook's `MAX_LR` and `EPOCHS`, made by `dataclasses.replace`) and plots the schedule the
training will follow, from that recipe and the loader's steps per epoch."""),
code("""for name in ("optimizer", "momentum", "nesterov", "weight_decay", "label_smoothing", "batch_size", "epochs",
             "pct_start", "div_factor", "final_div_factor", "anneal_strategy", "cycle_momentum"):
    value = getattr(recipe, name)
    print(f"{name:17s} {value:.4g}" if isinstance(value, float) else f"{name:17s} {value}")""", metadata=CHECK_OUTPUT),
code(TRAINING_RECIPE + """
probe = build_optimizer(recipe, [torch.zeros(1, requires_grad=True)])  # a stand-in for the model
probe_schedule = build_one_cycle(recipe, probe, len(train_loader))
planned_lrs, planned_momentums = [], []
for step in range(EPOCHS * len(train_loader)):  # the LR and momentum of every training step
    planned_lrs.append(get_lr(probe))
    planned_momentums.append(get_momentum(probe))
    probe.step()
    probe_schedule.step()
visualize.plot_lr_schedule(planned_lrs, planned_momentums, steps_per_epoch=len(train_loader),
                           save_path=f"{FIGURES}/lr_schedule.png")"""),
md("""## One-cycle training
The same seed as the range test, a fresh model, the recipe's optimizer at `MAX_LR` and the schedule
above. `fit` trains one epoch at a time, evaluates the test set after each and prints one line per epoch;
it keeps `last.pt` and `best.pt` in `checkpoints/s10`, so an interrupted run can continue
(`fit(..., resume="checkpoints/s10/last.pt")`)."""),
code(one_cycle_training("CustomResNet(num_classes=len(classes))") + """
train_model = compile_model(model) if COMPILE else model  # same weights; checkpoints hold the plain model's
start = time.perf_counter()
history = fit(train_model, device, train_loader, test_loader, optimizer, criterion, EPOCHS, scheduler,
              precision=precision, checkpoint_dir=CHECKPOINTS, seed=SEED)
minutes = (time.perf_counter() - start) / 60
print(f"final test accuracy after {EPOCHS} epochs: {history['test_acc'][-1]:.2f}% on {len(test_data[1])} test images "
      f"(max LR {MAX_LR:.3g}, batch {BATCH_SIZE}, {precision} on {device}, {minutes:.1f} min)")"""),
md("""## Loss and accuracy
Early on, the test accuracy can beat the training accuracy: training images are augmented (cropped,
cut out) and so harder than the clean test images, and the training figures are a running average over
an epoch in which the net was still improving."""),
code("""visualize.plot_history(history, save_path=f"{FIGURES}/curves.png")"""),
md("""## What the model gets wrong
One prediction pass over the test set feeds both figures: misclassified test images, and the confusion
matrix (rows: the true class, columns: the prediction). The cell also names the most frequent
confusions. (If the count here differs from the training log's accuracy by an image or two, that is
ties: in bf16 a few images get exactly equal logits for their top two classes, and this pass and the
training log's evaluation break such ties differently.)"""),
code("""truth, predicted = get_predictions(model, device, test_loader, precision)
wrong = misclassified(truth, predicted)
print(f"{len(wrong)} of {len(truth)} test images misclassified")
confusions = collections.Counter(zip(truth[wrong].tolist(), predicted[wrong].tolist())).most_common(3)
print("most frequent: " + ", ".join(f"{classes[t]} taken for {classes[p]} ({n})" for (t, p), n in confusions))
visualize.plot_misclassified(test_data[0][wrong], truth[wrong], predicted[wrong], classes,
                             save_path=f"{FIGURES}/misclassified.png")"""),
code("""visualize.plot_confusion_matrix(truth, predicted, classes, save_path=f"{FIGURES}/confusion_matrix.png")"""),
md("""## What this run showed
The last line compares with reports, not with runs of this repository: this run is one seed, and it
trains with label smoothing, which Page's recipe lacks, so it cannot be ranked against the median of
his 50 runs."""),
code("""best = max(range(EPOCHS), key=history["test_acc"].__getitem__)
peak_epoch = max(range(len(history["lr"])), key=history["lr"].__getitem__) / len(train_loader)
last = min(5, EPOCHS - 1)  # epochs
annealed_from = history["lr"][-last * len(train_loader)]  # the LR at the first step of those epochs
print(f"* The range test ({len(lr_result.all_lrs)} iterations, {lr_result.seconds / 60:.1f} min) put the lowest loss at "
      f"LR {MAX_LR:.3g} ({MAX_LR / PAGE_MAX_LR:.2f} x David Page's hand-tuned {PAGE_MAX_LR:g}); one-cycle "
      f"training used it as its peak, at epoch {peak_epoch:.1f}.")
print(f"* After {EPOCHS} epochs ({minutes:.1f} min, {sum(history['epoch_time']) / EPOCHS:.0f} s per epoch on "
      f"{describe_machine(device).split(',')[0]}) the net classifies {history['test_acc'][-1]:.2f}% of the "
      f"{len(test_data[1])} test images correctly (best epoch: {best + 1}, {history['test_acc'][best]:.2f}%).")
if last:
    print(f"* The last {last} epoch{'s' if last > 1 else ''}, as the LR annealed from {annealed_from:.3g} to "
          f"{history['lr'][-1]:.3g}, took the test accuracy from {history['test_acc'][-last - 1]:.2f}% to "
          f"{history['test_acc'][-1]:.2f}%.")
print("* For comparison (their reports, not this run): the reference notebook (Adam, 24 epochs) 90.71%; "
      "David Page (this net, SGD, 24 epochs, V100) 94.08%, the median of 50 runs.")"""),
md("""## What to try next
* Run `python lr_sweep.py --data_dir <cifar10>` (the LR sweep): short one-cycle runs at several max LRs,
  to see where the range test's suggestions sit against what actually trains best.
* Train with the optional rotation (`python main.py --dataset cifar10 --rotate_degrees 15`) or without
  label smoothing (`--label_smoothing 0`) and compare the final accuracy.
* Another length: `EPOCHS=8` or `EPOCHS=12` squeezes the same one cycle into fewer steps; compare the
  final accuracy and the time per point gained.
* Cycle the momentum as Smith does (`main.py --cycle_momentum`) and compare with Page's fixed 0.9."""),
]
write_notebook(cells, "S10.ipynb")

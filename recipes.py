"""The training recipes of the course, as data, and the few functions that turn one into objects.

A ``Recipe`` holds everything that decides how a net is trained: optimizer and its settings, label
smoothing, batch size, epochs, augmentation, and every one-cycle setting. The S10 notebook, the
ImageNet notebook and ``main.py`` read the same objects, so the lesson and the command line cannot
drift apart. Change a field for one run with ``dataclasses.replace(S10, epochs=30)``. (torch is imported
inside the builders, so ``main.py --help`` answers at once.)

* ``S10``: David Page's 24-epoch recipe for ``CustomResNet`` on CIFAR-10 ("How to train your ResNet"),
  plus label smoothing 0.2;
* ``IMAGENET``: ResNet-50 v1.5 on ImageNet-style folders (Goyal et al.'s SGD settings with a
  one-cycle schedule and momentum cycling, as in Smith's one-cycle policy);
* ``RESNET50_CIFAR``: the ImageNet recipe's counterpart for ResNet-50 on 32x32 CIFAR images;
* ``SPEEDRUN``: the third lesson's recipe for ``SpeedrunNet`` (airbench94's settings), 10 epochs.
"""
from dataclasses import MISSING, asdict, dataclass, field, replace

ONE_CYCLE_FIELDS = ("pct_start", "div_factor", "final_div_factor", "anneal_strategy", "three_phase",
                    "cycle_momentum", "base_momentum", "max_momentum")
# the LR range test's defaults (lr_finder.find_lr, LRFinder.range_test, main.py): the specification's start
START_LR = 1e-7
END_LR = 10.0
NUM_ITER = 100
STEP_MODE = "exp"             # the LR grows exponentially ("exp") or linearly ("linear") from start to end
SMOOTH_F = 0.05               # each smoothed loss: SMOOTH_F x the step's loss + (1 - SMOOTH_F) x the previous one
DIVERGE_TH = 5.0              # the test stops once the smoothed loss exceeds this many times its lowest value
# the LR schedules build_schedule makes; the first is the course's, the others are what it is compared with
SCHEDULES = ("onecycle", "constant", "step", "warmup_cosine", "cosine", "warmup_step", "flat_cosine")


def setting(default=MISSING, help="", **option):
    """A recipe field with the help of its command-line option (main.py makes one ``--<field>`` option
    per field; ``option`` holds argparse extras such as ``choices``; ``cli=False``: no option)."""
    return field(default=default, metadata={"help": help, **option})


@dataclass(frozen=True)
class Recipe:
    """One way to train a net, every setting in one place: main.py's options, the lessons' cells and
    the builders below read these fields and nothing beside them."""
    name: str = setting(cli=False)
    model: str = setting(cli=False)  # "custom_resnet", "resnet50" or "speedrun" (main.py: --model)
    epochs: int = setting(help="number of epochs")
    batch_size: int = setting(help="images per step, over all processes")
    max_lr: float = setting(help="peak LR of the one-cycle schedule (the LR of the others), or a range test's "
                                 "suggested_lr.json")
    optimizer: str = setting("sgd", cli=False)  # "sgd" or "adam"
    momentum: float = setting(0.9, "SGD Nesterov momentum (Adam: beta1) when it does not cycle, in [0, 1)")
    nesterov: bool = setting(True, cli=False)
    weight_decay: float = setting(5e-4, "SGD weight decay (L2 on every parameter, with a mean loss)")
    bias_lr_scale: float = setting(1.0, "batch-norm biases train at this many times the LR (their weight "
                                        "decay divided by it)")
    label_smoothing: float = setting(0.0, "cross-entropy label smoothing in [0, 1)")
    grad_clip: float = setting(0.0, "clip the gradient norm to this value (0: off)")
    # augmentation
    crop_padding: int = setting(4, "CIFAR: pixels of reflect padding before the random crop (the translation)")
    flip: bool = setting(True, cli=False)
    alternating_flip: bool = setting(False, "CIFAR, batched loader: each image mirrored on every other epoch "
                                            "instead of at random")
    cutout_holes: int = setting(0, "number of cutout holes")
    cutout_length: int = setting(0, "side of each cutout hole, pixels (filled with the data mean)")
    rotate_degrees: float = setting(0.0, "random rotation by at most this angle (0: off)")
    color_jitter: float = setting(0.0, "image folders: brightness/contrast/saturation jitter of this strength "
                                       "(0: off, 0.4: the classic ImageNet value)")
    image_size: int = setting(32, "training crop size of image folders (random-resized crop)")
    min_scale: float = setting(0.0, "image folders: the random-resized crop keeps at least this share of the "
                                    "image's area, as fastai's min_scale (0: 0.35 below 160 px, torchvision's 0.08 "
                                    "from 160 px)")
    start_size: int = setting(0, "image folders, progressive resizing: the first epoch's training crop size, growing "
                                 "linearly to image_size in the last epoch (0: off); evaluation stays at image_size")
    # the LR schedule (SCHEDULES; build_schedule)
    scheduler: str = setting("onecycle", "onecycle: OneCycleLR per batch; constant: max_lr throughout; step: LR x "
                             "gamma every step_size epochs; warmup_cosine: one cycle's linear warm-up, then cosine "
                             "to 0, per batch; cosine: cosine to 0 per epoch; warmup_step: the same warm-up, then LR "
                             "x gamma half-way and at three quarters of the steps; flat_cosine: fastai's "
                             "fit_flat_cos, max_lr for 75%% of the steps, then cosine to 0", choices=SCHEDULES)
    step_size: int = setting(0, "step scheduler: epochs between LR drops (0: a third of the epochs)")
    gamma: float = setting(0.1, "step and warmup_step schedulers: LR factor at each drop")
    pct_start: float = setting(0.25, "one-cycle: share of the steps spent rising to max_lr")
    div_factor: float = setting(25.0, "one-cycle: first LR = max_lr / this")
    final_div_factor: float = setting(1e4, "one-cycle: last LR = first LR / this")
    anneal_strategy: str = setting("linear", "one-cycle: shape of the rise and fall", choices=("linear", "cos"))
    three_phase: bool = setting(False, "one-cycle: a third phase that annihilates the LR")
    cycle_momentum: bool = setting(True, "one-cycle: momentum falls from max_momentum to base_momentum while "
                                         "the LR rises, and back")
    base_momentum: float = setting(0.85, "one-cycle: lowest momentum")
    max_momentum: float = setting(0.95, "one-cycle: highest momentum")
    # the speedrun's extras
    weight_average: bool = setting(False, "evaluate and keep lookahead-averaged weights "
                                          "(training_utils.LookaheadAverage)")
    tta_views: int = setting(1, "views of the final test-time augmentation: 1 (none), 2 (+ mirror), 6 (+ 1-pixel "
                                "shifts)", choices=(1, 2, 6))
    whiten_bias_epochs: int = setting(0, "SpeedrunNet: epochs during which the whitening layer's bias trains")
    # the LR range test
    lr_start: float = setting(START_LR, "range test: first LR")
    lr_end: float = setting(END_LR, "range test: last LR")
    lr_iter: int = setting(NUM_ITER, "range test: iterations (batches), at least 2, or 'epoch' for one pass over the "
                                "training data")
    notes: str = field(default="", compare=False, metadata={"cli": False})

    def one_cycle_settings(self):
        """The OneCycleLR keyword arguments of this recipe (all but max_lr, epochs, steps)."""
        return {name: getattr(self, name) for name in ONE_CYCLE_FIELDS}

    def as_dict(self):
        """Every field, for logs and checkpoints."""
        return asdict(self)

    def describe(self):
        """Every setting on one line (the notes aside), as a run's log prints it."""
        return f"recipe {self.name}: " + ", ".join(
            f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
            for name, value in self.as_dict().items() if name not in ("name", "notes"))

    def problems(self):
        """What makes these settings impossible, as messages naming the option (empty when none)."""
        ranges = [("pct_start", 0 < self.pct_start < 1, "in (0, 1)"), ("weight_decay", self.weight_decay >= 0, ">= 0"),
                  ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
                  ("base_momentum", 0 <= self.base_momentum < 1, "in [0, 1)"),
                  ("max_momentum", 0 <= self.max_momentum < 1, "in [0, 1)"),
                  ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
                  ("grad_clip", self.grad_clip >= 0, ">= 0"), ("step_size", self.step_size >= 0, ">= 0"),
                  ("cutout_holes", self.cutout_holes >= 0, ">= 0"), ("cutout_length", self.cutout_length >= 0, ">= 0"),
                  ("rotate_degrees", 0 <= self.rotate_degrees <= 180, "in [0, 180]"),
                  ("color_jitter", 0 <= self.color_jitter <= 1, "in [0, 1]"),
                  ("image_size", self.image_size >= 32, "at least 32"),
                  ("min_scale", 0 <= self.min_scale <= 1, "in [0, 1]"),
                  ("start_size", self.start_size == 0 or 16 <= self.start_size <= self.image_size,
                   f"0 (off) or in [16, image_size {self.image_size}]")]
        found = [f"--{name} must be {rule}, got {getattr(self, name):g}" for name, ok, rule in ranges if not ok]
        if self.base_momentum > self.max_momentum:
            found.append(f"--base_momentum {self.base_momentum} must not exceed --max_momentum {self.max_momentum}")
        if not self.lr_start < self.lr_end:
            found.append(f"--lr_start {self.lr_start:g} must be below --lr_end {self.lr_end:g}")
        if self.scheduler not in SCHEDULES:
            found.append(f"--scheduler must be one of {', '.join(SCHEDULES)}, got {self.scheduler!r}")
        return found


S10 = Recipe(
    name="s10", model="custom_resnet", epochs=24, batch_size=512, max_lr=0.4,
    optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=5e-4, label_smoothing=0.2,
    crop_padding=4, flip=True, cutout_holes=1, cutout_length=8, image_size=32,
    pct_start=5 / 24, div_factor=100, final_div_factor=100, anneal_strategy="linear", three_phase=False,
    cycle_momentum=False, lr_start=1e-4, lr_end=10.0, lr_iter=100,
    notes="David Page's 24-epoch recipe (LR 0 -> 0.4 over 5 epochs, then linearly to 0; SGD Nesterov 0.9, "
          "weight decay 5e-4, batch 512, crop + flip + 8x8 cutout, logits x 0.125; 94.08% median of 50 runs "
          "on a V100), with label smoothing 0.2. Momentum stays at 0.9, as in Page's runs.",
)

IMAGENET = Recipe(
    name="imagenet", model="resnet50", epochs=16, batch_size=256, max_lr=0.1,
    optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=5e-5, label_smoothing=0.1,
    crop_padding=0, flip=True, color_jitter=0.0, image_size=224,
    pct_start=0.3, div_factor=25, final_div_factor=1e4, anneal_strategy="cos", three_phase=False,
    cycle_momentum=True, base_momentum=0.85, max_momentum=0.95, lr_start=1e-5, lr_end=10.0, lr_iter=100,
    notes="ResNet-50 v1.5 from scratch: SGD Nesterov, one cycle with cosine annealing and momentum cycling "
          "0.95 -> 0.85 -> 0.95 (Smith 2018), label smoothing 0.1, weight decay 5e-5 (Smith's value for "
          "short one-cycle runs). max_lr 0.1 is Goyal et al.'s 0.1 per 256 images; the range test refines it. "
          "Random-resized crop and flip, no colour jitter (as NVIDIA's and torchvision's ResNet-50 recipes): "
          "with jitter, 20 epochs on Imagenette ended with the training accuracy below the validation "
          "accuracy (53.2% vs 54.8%), a net held back by its augmentation.",
)

RESNET50_CIFAR = replace(
    IMAGENET, name="resnet50_cifar", epochs=30, batch_size=128, weight_decay=5e-4, label_smoothing=0.0,
    crop_padding=4, cutout_holes=1, cutout_length=8, color_jitter=0.0, image_size=32,
    notes="ResNet-50 v1.5 with the CIFAR stem (3x3 stride-1 first conv, no max-pool) on 32x32 images: "
          "the ImageNet recipe's one cycle (SGD Nesterov, max LR 0.1, cosine, momentum cycling) with CIFAR's "
          "augmentation and weight decay 5e-4.",
)

SPEEDRUN = Recipe(
    name="speedrun", model="speedrun", epochs=10, batch_size=1024, max_lr=1.5,
    optimizer="sgd", momentum=0.85, nesterov=True, weight_decay=1.33e-3, bias_lr_scale=64, label_smoothing=0.2,
    crop_padding=2, flip=True, alternating_flip=True, cutout_holes=0, cutout_length=0, image_size=32,
    pct_start=0.23, div_factor=5, final_div_factor=0.2 / 0.07, anneal_strategy="linear", three_phase=False,
    cycle_momentum=False, weight_average=True, tta_views=6, whiten_bias_epochs=3,
    lr_start=1e-3, lr_end=30.0, lr_iter=100,
    notes="Keller Jordan's airbench94 settings (MIT; 94.01% mean of 1000 runs in 9.9 epochs on an A100) in "
          "this repository's units: a mean loss, so its lr 11.5 and decoupled weight decay 0.0153 per 1024 "
          "images become max_lr 1.5 and PyTorch weight decay 1.33e-3 at batch 1024 (momentum 0.85); the "
          "one cycle rises linearly from 0.2x to 1x over 23% of the steps, then falls to 0.07x; batch-norm "
          "biases at 64x the LR; label smoothing 0.2; 2-pixel translation and alternating flips; lookahead "
          "weight averaging; 6-view test-time augmentation; 10 whole epochs instead of 9.9.",
)

RECIPES = {recipe.name: recipe for recipe in (S10, IMAGENET, RESNET50_CIFAR, SPEEDRUN)}


def recipe_for(dataset, model=None):
    """The recipe for a data set (``"cifar10"``, ``"cifar100"`` or an image folder) and model name.

    CIFAR with the custom net (the default there) gets ``S10``; CIFAR with ResNet-50 gets
    ``RESNET50_CIFAR``; image folders get ``IMAGENET``."""
    cifar = str(dataset).lower().startswith("cifar")
    if not cifar:
        return IMAGENET
    return RESNET50_CIFAR if model == "resnet50" else S10


def training_sizes(recipe):
    """Each epoch's training crop size: ``image_size`` throughout, or with ``start_size`` (progressive
    resizing) growing linearly from it in the first epoch to ``image_size`` in the last, in whole pixels
    (one epoch: ``image_size``)."""
    if not recipe.start_size or recipe.epochs == 1:
        return (recipe.image_size,) * recipe.epochs
    growth = (recipe.image_size - recipe.start_size) / (recipe.epochs - 1)
    return tuple(round(recipe.start_size + growth * epoch) for epoch in range(recipe.epochs))


def build_criterion(recipe):
    """Cross-entropy with the recipe's label smoothing."""
    from torch import nn

    return nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)


def parameter_groups(recipe, model, lr, weight_decay=None):
    """The trainable parameters of ``model`` in the recipe's groups: batch-norm biases at
    ``bias_lr_scale`` times ``lr`` with the weight decay divided by it (the same decay per step), the
    rest at ``lr`` (the first group). Each group carries its ``lr_scale``, which ``build_one_cycle`` reads."""
    from torch import nn

    weight_decay = recipe.weight_decay if weight_decay is None else weight_decay
    norms = [module.bias for module in model.modules()
             if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.bias is not None]
    norm_ids = {id(p) for p in norms}
    others = [p for p in model.parameters() if id(p) not in norm_ids]
    scale = recipe.bias_lr_scale
    groups = [{"params": [p for p in others if p.requires_grad], "lr": lr, "weight_decay": weight_decay,
               "lr_scale": 1.0},  # first: get_lr and the logs read the first group's LR
              {"params": [p for p in norms if p.requires_grad], "lr": lr * scale,
               "weight_decay": weight_decay / scale, "lr_scale": scale}]
    return [group for group in groups if group["params"]]


def build_optimizer(recipe, params, lr=None):
    """The recipe's optimizer over ``params`` at ``lr`` (default: the recipe's ``max_lr``; a schedule sets
    the LR of every step anyway, and the range test starts at ``lr_start``). ``params``: a model (its
    parameters, in the recipe's ``parameter_groups`` where batch-norm biases have their own LR scale), or
    an iterable of tensors or of param groups."""
    import torch

    lr = recipe.max_lr if lr is None else lr
    if isinstance(params, torch.nn.Module):
        params = parameter_groups(recipe, params, lr) if recipe.bias_lr_scale != 1 else params.parameters()
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                               weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(recipe.momentum, 0.999), weight_decay=recipe.weight_decay)
    raise ValueError(f"recipe {recipe.name!r}: unknown optimizer {recipe.optimizer!r}; use 'sgd' or 'adam'")


def build_one_cycle(recipe, optimizer, steps_per_epoch):
    """``OneCycleLR`` with every one-cycle setting of the recipe, stepped once per batch
    (``build_schedule`` with ``scheduler="onecycle"``, whatever the recipe's scheduler).

    The LR rises from ``max_lr / div_factor`` to ``max_lr`` over ``pct_start`` of the
    ``epochs * steps_per_epoch`` steps and falls to ``max_lr / div_factor / final_div_factor``; with
    ``cycle_momentum`` the momentum moves the other way between ``max_momentum`` and ``base_momentum``.
    A param group with an ``lr_scale`` (``parameter_groups``) peaks at ``max_lr`` times it.
    """
    return build_schedule(replace(recipe, scheduler="onecycle"), optimizer, steps_per_epoch)[0]


class WarmupCosine:
    """The factor of a linear warm-up then cosine decay, per step: from ``1 / div_factor`` up to 1 over the
    first ``warmup_steps``, then down to 0 at ``total_steps`` along half a cosine. A class, not a lambda,
    so ``LambdaLR`` saves it in checkpoints."""

    def __init__(self, total_steps, warmup_steps, div_factor):
        self.total_steps, self.warmup_steps, self.div_factor = total_steps, warmup_steps, div_factor

    def __call__(self, step):
        import math

        if step < self.warmup_steps:
            start = 1.0 / self.div_factor
            return start + (1.0 - start) * step / self.warmup_steps
        done = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * done))


class WarmupStep:
    """The factor of a linear warm-up then step decay, per step: from ``1 / div_factor`` up to 1 over the
    first ``warmup_steps`` (one cycle's warm-up), then 1, times ``gamma`` at each of ``drops`` (shares of
    ``total_steps``: by default half-way and three quarters of the way, as in the classic ResNet schedules)."""

    def __init__(self, total_steps, warmup_steps, div_factor, gamma=0.1, drops=(0.5, 0.75)):
        self.total_steps, self.warmup_steps, self.div_factor = total_steps, warmup_steps, div_factor
        self.gamma, self.drops = gamma, tuple(drops)

    def __call__(self, step):
        if step < self.warmup_steps:
            start = 1.0 / self.div_factor
            return start + (1.0 - start) * step / self.warmup_steps
        return self.gamma ** sum(step >= share * self.total_steps for share in self.drops)


class FlatCosine:
    """The factor of fastai's ``fit_flat_cos``, per step: 1 for the first ``flat_steps``, then half a
    cosine down to 0 at ``total_steps`` (no warm-up)."""

    def __init__(self, total_steps, flat_steps):
        self.total_steps, self.flat_steps = total_steps, flat_steps

    def __call__(self, step):
        import math

        done = min(1.0, max(0, step - self.flat_steps) / max(1, self.total_steps - self.flat_steps))
        return 0.5 * (1.0 + math.cos(math.pi * done))


def build_schedule(recipe, optimizer, steps_per_epoch):
    """The recipe's ``scheduler`` (one of ``SCHEDULES``) for ``optimizer``, whose param groups start at
    ``max_lr`` times their ``lr_scale``, as ``build_optimizer(recipe, model)`` makes them. Returns the
    scheduler and whether it steps once per batch (else once per epoch):

    * ``onecycle``: ``OneCycleLR`` with the recipe's one-cycle settings (per batch; ``build_one_cycle``);
    * ``constant``: ``max_lr`` throughout (no warm-up, no decay);
    * ``step``: ``max_lr``, times ``gamma`` every ``step_size`` epochs (0: a third of the epochs);
    * ``warmup_cosine``: linear warm-up from ``max_lr / div_factor`` over ``pct_start`` of the steps, then a
      cosine down to 0 (per batch, ``WarmupCosine``);
    * ``cosine``: cosine from ``max_lr`` down to 0 over the epochs, no warm-up (per epoch);
    * ``warmup_step``: one cycle's linear warm-up, then ``max_lr``, times ``gamma`` half-way and again
      three quarters of the way through the steps (per batch, ``WarmupStep``);
    * ``flat_cosine``: fastai's ``fit_flat_cos``: ``max_lr`` for 75% of the steps, then a cosine down to 0
      (per batch, ``FlatCosine``).
    """
    import torch
    from torch.optim import lr_scheduler as schedulers

    kind, max_lr, epochs = recipe.scheduler, recipe.max_lr, recipe.epochs
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; use one of {', '.join(SCHEDULES)}")
    if max_lr is None or not max_lr > 0:
        raise ValueError(f"max_lr must be a positive number, got {max_lr!r} (did the range test give no "
                         "suggestion? read its reason)")
    if kind == "onecycle":  # each param group peaks at max_lr times its lr_scale
        return schedulers.OneCycleLR(optimizer, max_lr=[max_lr * group.get("lr_scale", 1.0) for group in
                                                        optimizer.param_groups], epochs=epochs,
                                     steps_per_epoch=steps_per_epoch, **recipe.one_cycle_settings()), True
    expected = [max_lr * group.get("lr_scale", 1.0) for group in optimizer.param_groups]
    if not all(torch.isclose(torch.tensor(group["lr"]), torch.tensor(lr)) for group, lr in
               zip(optimizer.param_groups, expected)):
        raise ValueError(f"the optimizer's LRs {[group['lr'] for group in optimizer.param_groups]} are not max_lr "
                         f"{max_lr:g} times each group's lr_scale: build it with lr=max_lr")
    if kind == "constant":
        return schedulers.LambdaLR(optimizer, lambda step: 1.0), False
    if kind == "step":
        return schedulers.StepLR(optimizer, step_size=recipe.step_size or max(1, epochs // 3), gamma=recipe.gamma), False
    if kind == "cosine":
        return schedulers.CosineAnnealingLR(optimizer, T_max=epochs), False
    total = epochs * steps_per_epoch
    warmup = max(1, round(recipe.pct_start * total))
    factor = {"warmup_cosine": lambda: WarmupCosine(total, warmup, recipe.div_factor),
              # OneCycleLR's own warm-up: it reaches max_lr at step pct_start * total - 1
              "warmup_step": lambda: WarmupStep(total, max(1.0, recipe.pct_start * total - 1), recipe.div_factor,
                                                recipe.gamma),
              "flat_cosine": lambda: FlatCosine(total, round(0.75 * total))}[kind]()
    return schedulers.LambdaLR(optimizer, factor), True


def schedule_lrs(recipe, steps_per_epoch):
    """Every training step's LR (the first param group's) of ``build_schedule(recipe, ...)``, stepped as
    ``fit`` steps it (per batch or per epoch): the schedule's shape, to plot it before or beside a run."""
    import torch

    probe = torch.nn.Linear(1, 1)
    optimizer = build_optimizer(recipe, probe.parameters())
    scheduler, per_batch = build_schedule(recipe, optimizer, steps_per_epoch)
    lrs = []
    for step in range(recipe.epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if per_batch or (step + 1) % steps_per_epoch == 0:
            scheduler.step()
    return lrs

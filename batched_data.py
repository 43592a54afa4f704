"""The fast data path: a batched CIFAR loader whose augmentations are tensor operations, and test-time
augmentation.

``BatchedCifarLoader`` keeps the whole uint8 data set as one tensor on the training device (a GPU, or
the CPU) and augments each batch at once: reflect-pad + random crop (a translation by up to ``pad``
pixels), a horizontal flip (random, or alternating: each image flipped on every other epoch, as in
Keller Jordan's airbench), and a cutout hole. It iterates like a DataLoader over ``(x, y)`` batches and,
like ``make_loader``'s DataLoader, derives every random choice of an epoch from ``(seed, epoch)``, so a
resumed run is exact.

``TestTimeAugmentation`` wraps a model so that its prediction averages several views of each image
(the mirror image, one-pixel translations); ``training_utils.test`` evaluates it like any model.
"""
import torch
from torch import nn

from dataset import derive_seed

FLIPS = ("random", "alternating", "none")


class BatchedCifarLoader:
    """A device-resident, batched CIFAR loader that iterates like a DataLoader over ``(x, y)`` batches.

    The uint8 images live as one tensor on ``device``. Each epoch reshuffles (when ``train``) and each
    batch gets, as tensor operations: pad ``pad`` (reflect) + random crop, a horizontal flip (``flip``:
    ``"random"`` with p=0.5, ``"alternating"``: each image flipped on every other epoch, the first
    epoch's choice random, or ``"none"``), one ``cutout_size`` square hole filled with the data mean
    (inside the image, as Albumentations places it; 0: none); then normalisation. Batches come out in
    ``dtype`` and channels_last memory layout. ``augment=False`` gives the test-time path (normalise only,
    fixed order).
    """

    def __init__(self, images, labels, batch_size, mean, std, train=True, device="cpu", augment=None,
                 cutout_size=16, pad=4, drop_last=None, seed=0, dtype=torch.float32, flip="random"):
        if flip not in FLIPS:
            raise ValueError(f"flip must be one of {FLIPS}, got {flip!r}")
        self.device = torch.device(device)
        self.images = torch.as_tensor(images).to(self.device)  # N x H x W x 3 uint8
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        self.batch_size, self.train = batch_size, train
        self.augment = train if augment is None else augment
        self.drop_last = train if drop_last is None else drop_last
        self.cutout_size, self.pad, self.dtype, self.flip = cutout_size, pad, dtype, flip
        self.mean = torch.tensor(mean, device=self.device, dtype=torch.float32) * 255
        self.std = torch.tensor(std, device=self.device, dtype=torch.float32) * 255
        self.seed, self.epoch = seed, 0
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.dataset = self.images  # for code that asks len(loader.dataset)
        if self.augment:  # reflect-pad once; crops are then plain gathers
            nchw = self.images.permute(0, 3, 1, 2).float()
            self.padded = torch.nn.functional.pad(nchw, [pad] * 4, mode="reflect").to(torch.uint8).permute(0, 2, 3, 1)
        if flip == "alternating":  # each image's first-epoch flip, fixed by the seed alone
            first = torch.Generator(device=self.device).manual_seed(derive_seed(seed, 2 ** 31))
            self.first_flip = torch.randint(0, 2, (len(self.labels),), device=self.device, generator=first).bool()

    def __len__(self):
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        """Derive this epoch's shuffling and augmentations from ``(seed, epoch)`` (``fit`` calls it), so a
        resumed run replays the remaining epochs exactly; alternating flips follow the epoch's parity."""
        self.epoch = int(epoch)
        self.generator.manual_seed(derive_seed(self.seed, epoch))

    def _randint(self, high, size):
        return torch.randint(0, high, size, device=self.device, generator=self.generator)

    def augment_batch(self, index):
        """Crop, flip and cut out the images at ``index``; returns uint8 B x H x W x 3."""
        n, (h, w) = len(index), self.images.shape[1:3]
        rows = torch.arange(h, device=self.device)
        cols = torch.arange(w, device=self.device)
        top, left = self._randint(2 * self.pad + 1, (n,)), self._randint(2 * self.pad + 1, (n,))
        if self.flip == "random":
            flip = self._randint(2, (n,)).bool()
        elif self.flip == "alternating":
            flip = self.first_flip[index] ^ bool(self.epoch % 2)
        else:
            flip = torch.zeros(n, dtype=torch.bool, device=self.device)
        col_index = left[:, None] + torch.where(flip[:, None], cols.flip(0)[None], cols[None])
        x = self.padded[index[:, None, None], (top[:, None] + rows)[:, :, None], col_index[:, None, :]]
        size = self.cutout_size
        if size > 0:
            y0, x0 = self._randint(h - size + 1, (n,)), self._randint(w - size + 1, (n,))
            inside_rows = (rows[None] >= y0[:, None]) & (rows[None] < y0[:, None] + size)
            inside_cols = (cols[None] >= x0[:, None]) & (cols[None] < x0[:, None] + size)
            hole = inside_rows[:, :, None] & inside_cols[:, None, :]
            x = torch.where(hole[..., None], self.mean.round().to(torch.uint8), x)
        return x

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, device=self.device, generator=self.generator) if self.train \
            else torch.arange(n, device=self.device)
        for batch in range(len(self)):
            index = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            yield self.normalize(self.augment_batch(index) if self.augment else self.images[index]), self.labels[index]

    def normalize(self, images):
        """uint8 B x H x W x 3 images as the model sees them: normalised, in ``dtype``, B x 3 x H x W
        channels_last (the NHWC storage as it is)."""
        return ((images.float() - self.mean) / self.std).to(self.dtype).permute(0, 3, 1, 2)


class TestTimeAugmentation(nn.Module):
    """``model``'s logits averaged over views of each input batch (N x C x H x W):

    * ``views=1``: the image alone (the plain model);
    * ``views=2``: the image and its mirror image, half each;
    * ``views=6``: those two (half the weight) and, for a quarter each, the same pair translated by one
      pixel up-left and by one pixel down-right (reflect padding): airbench94's test-time augmentation.

    Evaluate it like any model (``training_utils.test(TestTimeAugmentation(model, 6), ...)``); it has no
    weights of its own, and ``views`` times the cost of one forward pass."""
    __test__ = False  # not a pytest class

    VIEWS = (1, 2, 6)

    def __init__(self, model, views=6):
        super().__init__()
        if views not in self.VIEWS:
            raise ValueError(f"views must be one of {self.VIEWS}, got {views!r}")
        self.model, self.views = model, views

    def _mirrored(self, x):
        return 0.5 * self.model(x) + 0.5 * self.model(x.flip(-1))

    def forward(self, x):
        if self.views == 1:
            return self.model(x)
        logits = self._mirrored(x)
        if self.views == 2:
            return logits
        h, w = x.shape[-2:]
        padded = nn.functional.pad(x, [1] * 4, mode="reflect")
        shifted = [padded[..., :h, :w], padded[..., 2:h + 2, 2:w + 2]]
        return 0.5 * logits + 0.25 * sum(self._mirrored(view) for view in shifted)

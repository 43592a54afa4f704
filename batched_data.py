"""The fast data path: a batched CIFAR loader whose augmentations are tensor operations, and test-time
augmentation.

``BatchedCifarLoader`` keeps the whole uint8 data set as one tensor on the training device (a GPU, or
the CPU) and augments each batch at once: reflect-pad + random crop (a translation by up to
``crop_padding`` pixels), a horizontal flip (random, or alternating: each image flipped on every other
epoch, as in Keller Jordan's airbench), and a cutout hole. It iterates like a DataLoader over ``(x, y)``
batches and, like ``make_loader``'s DataLoader, derives every random choice of an epoch from ``(seed,
epoch)``, so a resumed run is exact.

``TestTimeAugmentation`` wraps a model so that its prediction averages several views of each image
(the mirror image, one-pixel translations); ``training_utils.test`` evaluates it like any model.
"""
import torch
from torch import nn

from seeding import derive_seed

FLIPS = ("random", "alternating", "none")


class SeededBatches:
    """What the batched loaders share: their length in batches (the last partial batch dropped when
    ``drop_last``), and every random choice of an epoch derived from ``(seed, epoch)`` (``fit`` calls
    ``set_epoch``), so a resumed run replays the remaining epochs exactly."""

    def __len__(self):
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        """Derive this epoch's shuffling and augmentations from ``(seed, epoch)`` (alternating flips follow
        the epoch's parity)."""
        self.epoch = int(epoch)
        self.generator.manual_seed(derive_seed(self.seed, epoch))

    def order(self):
        """The epoch's order of the images: shuffled when training, as stored otherwise."""
        n = len(self.labels)
        return torch.randperm(n, device=self.device, generator=self.generator) if self.train \
            else torch.arange(n, device=self.device)


class BatchedCifarLoader(SeededBatches):
    """A device-resident, batched CIFAR loader that iterates like a DataLoader over ``(x, y)`` batches.

    The uint8 images live as one tensor on ``device``. Each epoch reshuffles (when ``train``) and each
    batch gets, as tensor operations: pad ``crop_padding`` (reflect) + random crop, a horizontal flip
    (``flip``: ``"random"`` with p=0.5, ``"alternating"``: each image flipped on every other epoch, the
    first epoch's choice random, or ``"none"``), one ``cutout_length`` square hole filled with the data
    mean (inside the image, as Albumentations places it; 0: none); then normalisation. Batches come out
    in ``dtype`` and channels_last memory layout. ``augment=False`` gives the test-time path (normalise only,
    fixed order).
    """

    def __init__(self, images, labels, batch_size, mean, std, train=True, device="cpu", augment=None,
                 cutout_length=16, crop_padding=4, drop_last=None, seed=0, dtype=torch.float32, flip="random"):
        if flip not in FLIPS:
            raise ValueError(f"flip must be one of {FLIPS}, got {flip!r}")
        self.device = torch.device(device)
        self.images = torch.as_tensor(images).to(self.device)  # N x H x W x 3 uint8
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        self.batch_size, self.train = batch_size, train
        self.augment = train if augment is None else augment
        self.drop_last = train if drop_last is None else drop_last
        self.cutout_length, self.crop_padding, self.dtype, self.flip = cutout_length, crop_padding, dtype, flip
        self.mean = torch.tensor(mean, device=self.device, dtype=torch.float32) * 255
        self.std = torch.tensor(std, device=self.device, dtype=torch.float32) * 255
        self.seed, self.epoch = seed, 0
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.dataset = self.images  # for code that asks len(loader.dataset)
        if self.augment:  # reflect-pad once; crops are then plain gathers
            nchw = self.images.permute(0, 3, 1, 2).float()
            padded = torch.nn.functional.pad(nchw, [crop_padding] * 4, mode="reflect")
            self.padded = padded.to(torch.uint8).permute(0, 2, 3, 1)
        if flip == "alternating":  # each image's first-epoch flip, fixed by the seed alone
            first = torch.Generator(device=self.device).manual_seed(derive_seed(seed, 2 ** 31))
            self.first_flip = torch.randint(0, 2, (len(self.labels),), device=self.device, generator=first).bool()

    def _randint(self, high, size):
        return torch.randint(0, high, size, device=self.device, generator=self.generator)

    def augment_batch(self, index):
        """Crop, flip and cut out the images at ``index``; returns uint8 B x H x W x 3."""
        n, (h, w) = len(index), self.images.shape[1:3]
        rows = torch.arange(h, device=self.device)
        cols = torch.arange(w, device=self.device)
        top, left = self._randint(2 * self.crop_padding + 1, (n,)), self._randint(2 * self.crop_padding + 1, (n,))
        if self.flip == "random":
            flip = self._randint(2, (n,)).bool()
        elif self.flip == "alternating":
            flip = self.first_flip[index] ^ bool(self.epoch % 2)
        else:
            flip = torch.zeros(n, dtype=torch.bool, device=self.device)
        col_index = left[:, None] + torch.where(flip[:, None], cols.flip(0)[None], cols[None])
        x = self.padded[index[:, None, None], (top[:, None] + rows)[:, :, None], col_index[:, None, :]]
        size = self.cutout_length
        if size > 0:
            y0, x0 = self._randint(h - size + 1, (n,)), self._randint(w - size + 1, (n,))
            inside_rows = (rows[None] >= y0[:, None]) & (rows[None] < y0[:, None] + size)
            inside_cols = (cols[None] >= x0[:, None]) & (cols[None] < x0[:, None] + size)
            hole = inside_rows[:, :, None] & inside_cols[:, None, :]
            x = torch.where(hole[..., None], self.mean.round().to(torch.uint8), x)
        return x

    def __iter__(self):
        order = self.order()
        for batch in range(len(self)):
            index = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            yield self.normalize(self.augment_batch(index) if self.augment else self.images[index]), self.labels[index]

    def normalize(self, images):
        """uint8 B x H x W x 3 images as the model sees them: normalised, in ``dtype``, B x 3 x H x W
        channels_last (the NHWC storage as it is)."""
        return ((images.float() - self.mean) / self.std).to(self.dtype).permute(0, 3, 1, 2)


def random_resized_boxes(n, height, width, scale, ratio, generator, device, tries=10):
    """``(top, left, crop_height, crop_width)``, each a length-``n`` integer tensor: the crops of
    Albumentations' (and torchvision's) ``RandomResizedCrop`` drawn for ``n`` images at once. An area share
    uniform in ``scale`` and a log-uniform aspect ratio in ``ratio`` give a box; the first of ``tries``
    draws that fits the image is kept, at a uniform position; an image none fits gets the centre crop of
    the largest box within ``ratio`` (the whole image when its own ratio is inside)."""
    import math

    def uniform(low, high):
        return low + (high - low) * torch.rand((n, tries), generator=generator, device=device)

    area = uniform(scale[0], scale[1]) * (height * width)
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))
    w, h = torch.round(torch.sqrt(area * aspect)), torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(fits.int(), dim=1)  # the first draw that fits (0 when none does)
    found = fits.any(dim=1)
    pick = torch.arange(n, device=device)
    w, h = w[pick, first].long(), h[pick, first].long()
    fallback_w = min(width, round(height * ratio[1])) if width / height > ratio[1] else width
    fallback_h = min(height, round(width / ratio[0])) if width / height < ratio[0] else height
    w, h = torch.where(found, w, fallback_w), torch.where(found, h, fallback_h)
    start = torch.rand((n, 2), generator=generator, device=device)
    top = torch.where(found, ((height - h + 1) * start[:, 0]).long(), (height - h) // 2)
    left = torch.where(found, ((width - w + 1) * start[:, 1]).long(), (width - w) // 2)
    return top, left, h, w


def crop_resize(images, top, left, height, width, size, flip=None):
    """Each uint8 N x H x W x 3 image's box (``top``, ``left``, ``height``, ``width``) resized to ``size`` x
    ``size`` with bilinear interpolation at half-pixel centres (as OpenCV's and PIL's resize), mirrored
    where ``flip`` is true, in one ``grid_sample`` for the batch: float N x 3 x size x size, 0-255."""
    n, full_h, full_w = images.shape[:3]
    x = images.permute(0, 3, 1, 2).float()
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = width / full_w * (1 - 2 * flip.float() if flip is not None else 1)
    theta[:, 0, 2] = (2 * left + width) / full_w - 1
    theta[:, 1, 1] = height / full_h
    theta[:, 1, 2] = (2 * top + height) / full_h - 1
    grid = nn.functional.affine_grid(theta, [n, 3, size, size], align_corners=False)
    return nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class BatchedImageLoader(SeededBatches):
    """A batched loader over decoded images (``image_cache.cached_split``): uint8 N x S x S x 3, on the CPU
    (a memory map is fine) or moved to ``device``. Training batches get a random-resized crop to ``size``
    (area share in ``scale``, aspect ratio in 3/4..4/3, as ``dataset.imagenet_augmentations``) and a
    horizontal flip (p=0.5), drawn for the whole batch with tensor operations; evaluation batches get the
    folder path's centre crop (shorter side to ``size / 0.875``, centre ``size`` x ``size``). Then
    normalisation, ``dtype``, channels_last. As ``BatchedCifarLoader``, every random choice of an epoch
    comes from ``(seed, epoch)`` (``fit`` calls ``set_epoch``), so a resumed run is exact. Progressive
    resizing: ``sizes`` gives each epoch's training crop size (``recipes.training_sizes``; epoch 1 is
    ``sizes[0]``, and so is a range test before training), ``size`` stays the evaluation size."""

    def __init__(self, images, labels, batch_size, size, mean, std, train=True, device="cpu", scale=(0.35, 1.0),
                 ratio=(3 / 4, 4 / 3), seed=0, dtype=torch.float32, sizes=None):
        self.device = torch.device(device)
        self.images = images if self.device.type == "cpu" else torch.as_tensor(images).to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        self.batch_size, self.size, self.train, self.scale, self.ratio = batch_size, size, train, scale, ratio
        self.sizes = tuple(sizes) if sizes else None
        self.drop_last = train
        self.dtype, self.seed, self.epoch = dtype, seed, 0
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.dataset = self.labels  # for code that asks len(loader.dataset)

    def batch(self, index):
        """The uint8 images at ``index`` (a sorted index reads a memory map in order) on the device."""
        if isinstance(self.images, torch.Tensor):
            return self.images[index]
        return torch.from_numpy(self.images[index.cpu().numpy()]).to(self.device)

    def crop_size(self):
        """The side of this epoch's crops: ``sizes[epoch - 1]`` when training with ``sizes``, else ``size``."""
        if not (self.train and self.sizes):
            return self.size
        return self.sizes[min(max(self.epoch, 1), len(self.sizes)) - 1]

    def transform(self, images):
        """Crop (random-resized when training, centre otherwise), flip when training, resize: float 0-255."""
        n, height, width = images.shape[:3]
        if self.train:
            top, left, h, w = random_resized_boxes(n, height, width, self.scale, self.ratio, self.generator,
                                                   self.device)
            flip = torch.rand(n, generator=self.generator, device=self.device) < 0.5
            return crop_resize(images, top, left, h, w, self.crop_size(), flip)
        # dataset.imagenet_val_crop: shorter side to `resized`, then its centre size x size at whole pixels
        resized = round(self.size / 0.875)
        pixel = min(height, width) / resized  # one pixel of the resized image, in this image's pixels
        crop = torch.full((n,), self.size * pixel, device=self.device)
        top = (round(height / pixel) - self.size) // 2 * pixel
        left = (round(width / pixel) - self.size) // 2 * pixel
        return crop_resize(images, torch.full_like(crop, top), torch.full_like(crop, left), crop, crop, self.size)

    def __iter__(self):
        order = self.order()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size].sort().values
            x = (self.transform(self.batch(index)) - self.mean) / self.std
            yield x.to(self.dtype).contiguous(memory_format=torch.channels_last), self.labels[index]


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

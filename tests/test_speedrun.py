"""The speedrun pieces (issue: the third lesson): patch whitening, test-time augmentation, lookahead
weight averaging, alternating flips, batch-norm biases at a larger LR, and exact resume with all of them."""
import json

from dataclasses import replace

import pytest
import torch
from torch import nn

import recipes
from batched_data import BatchedCifarLoader, TestTimeAugmentation
from checkpoints import load_checkpoint
from custom_resnet import PatchWhitening, SpeedrunNet, patch_covariance, whitened_covariance
from dataset import SyntheticImages
from tests.helpers import MEAN, STD, resumed_run_equals_straight_run
from tests.test_main import tiny_cifar  # noqa: F401 (a fixture)
from training_utils import LookaheadAverage, fit


def correlated_images(n=256, seed=0):
    """Images whose neighbouring pixels and channels are strongly correlated, as natural images are."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 16, 16, generator=generator)
    smooth = nn.functional.interpolate(base, size=32, mode="bilinear", align_corners=False)
    colour = torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    return smooth * colour + 0.1 * torch.randn(n, 3, 32, 32, generator=generator)


def test_whitening_makes_the_patch_covariance_of_its_inputs_the_identity():
    images = correlated_images()
    layer = PatchWhitening(eps=1e-6).initialize(images)
    outputs = nn.functional.conv2d(images, layer.conv.weight)[:, :12]  # before the activation; + half
    flat = outputs.permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = flat.T @ flat / len(flat)
    assert torch.allclose(covariance, torch.eye(12), atol=2e-3)
    before = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    assert (before.T @ before / len(before) - torch.eye(12)).abs().max() > 0.5  # it had much to do
    assert torch.allclose(patch_covariance(images), before.T @ before / len(before))  # the lesson's helpers
    assert torch.allclose(whitened_covariance(layer, images), covariance, atol=1e-5)
    assert torch.equal(layer.conv.weight[12:], -layer.conv.weight[:12]) and not layer.conv.weight.requires_grad


def test_the_whitening_bias_trains_for_its_steps_then_stops():
    layer = PatchWhitening(bias_train_steps=2).initialize(correlated_images(16))
    grads = []
    for _ in range(4):
        layer.conv.bias.grad = None
        layer(correlated_images(4).requires_grad_()).sum().backward()
        grads.append(layer.conv.bias.grad)
    assert grads[0] is not None and grads[1] is not None and grads[2] is None and grads[3] is None
    assert int(layer.steps) == 2 and "steps" in layer.state_dict()  # the count resumes with a checkpoint
    restored = PatchWhitening(bias_train_steps=3)
    restored.load_state_dict(layer.state_dict())
    assert restored.trained_steps == 2 and restored.bias_trains  # one step left
    restored(correlated_images(4).requires_grad_()).sum().backward()
    assert restored.trained_steps == 3 and not restored.bias_trains


def test_a_speedrun_training_step_has_no_graph_break_and_compiles_once_per_phase_of_the_bias():
    """The whitening layer counts its steps on the host: a training step reads no device tensor back (on a
    GPU, a sync per step; under torch.compile, a graph break), and the compiled net is compiled twice in
    all, before and after the bias freezes, not once per step."""
    images = correlated_images(8)
    model = SpeedrunNet(widths=(8, 8, 8), whiten_bias_train_steps=2).train()
    model.whiten.initialize(images)
    torch._dynamo.reset()
    assert torch._dynamo.explain(model)(images).graph_break_count == 0
    graphs = []

    def counting_backend(graph_module, example_inputs):  # with AOTAutograd's backward, as the default backend
        graphs.append(graph_module)
        return torch._dynamo.lookup_backend("aot_eager")(graph_module, example_inputs)

    compiled = torch.compile(model, backend=counting_backend, dynamic=False)
    trained = []
    for _ in range(5):
        model.zero_grad(set_to_none=True)
        compiled(images).sum().backward()
        trained.append(model.whiten.conv.bias.grad is not None)
    assert trained == [True, True, False, False, False] and len(graphs) == 2
    assert model.whiten.trained_steps == int(model.whiten.steps) == 2  # as without torch.compile


class FlipSymmetric(nn.Module):
    """Logits from each channel's mean over rows and over the mirrored column pairs: flip-invariant."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32, 10)

    def forward(self, x):
        columns = x.mean(2)
        return self.fc((columns + columns.flip(-1)).flatten(1))


def test_test_time_augmentation_of_a_flip_symmetric_model_equals_its_plain_output():
    torch.manual_seed(0)
    model, x = FlipSymmetric(), torch.randn(8, 3, 32, 32)
    assert torch.allclose(TestTimeAugmentation(model, views=2)(x), model(x), atol=1e-6)
    flat = torch.randn(8, 3, 1, 1).expand(8, 3, 32, 32).contiguous()  # translations cannot change it either
    assert torch.allclose(TestTimeAugmentation(model, views=6)(flat), model(flat), atol=1e-6)
    assert not torch.allclose(TestTimeAugmentation(model, views=6)(x), model(x), atol=1e-4)  # but they do act
    with pytest.raises(ValueError, match="views must be one of"):
        TestTimeAugmentation(model, views=4)


class Recorder(nn.Module):
    """Remembers each input; its k-th call answers the k-th unit vector, so the output of a weighted
    average of its calls is the vector of the weights."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return nn.functional.one_hot(torch.full((len(x),), len(self.inputs) - 1), 6).float()


def test_six_views_are_the_image_its_mirror_and_both_shifted_one_pixel_each_way_weighted_as_airbench():
    x = torch.randn(2, 3, 32, 32)
    recorder = Recorder()
    weights = TestTimeAugmentation(recorder, views=6)(x)
    assert torch.allclose(weights, torch.tensor([0.25, 0.25, 0.125, 0.125, 0.125, 0.125]).expand(2, 6))
    plain, mirror, down_right, down_right_mirror, up_left, up_left_mirror = recorder.inputs
    assert torch.equal(plain, x) and torch.equal(mirror, x.flip(-1))
    assert torch.equal(down_right[..., 1:, 1:], x[..., :-1, :-1]) and torch.equal(up_left[..., :-1, :-1], x[..., 1:, 1:])
    assert torch.equal(down_right_mirror, down_right.flip(-1)) and torch.equal(up_left_mirror, up_left.flip(-1))


def test_weight_averaging_of_identical_weights_changes_nothing_and_averages_what_moves():
    torch.manual_seed(0)
    model = SpeedrunNet(widths=(8, 16, 16))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    average = LookaheadAverage(model, total_steps=20)
    for _ in range(20):
        average.after_step()
    average.finish()
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    with torch.no_grad():
        model.fc.weight.add_(1.0)
    average.finish()  # decay 1: the average wins, the move is undone
    assert torch.equal(model.fc.weight, before["fc.weight"])
    average.step = 14
    with torch.no_grad():
        model.fc.weight.add_(1.0)
    average.after_step()  # step 15 of 20: decay 0.95**5 * 0.75**3
    decay = 0.95 ** 5 * (15 / 20) ** 3
    assert torch.allclose(model.fc.weight, before["fc.weight"] + (1 - decay))


def test_alternating_flip_shows_each_image_both_ways_over_two_epochs():
    data = SyntheticImages(n=64, seed=0)
    labels = torch.arange(64)  # the label names the image
    loader = BatchedCifarLoader(data.images, labels, 16, MEAN, STD, train=True, crop_padding=0, cutout_length=0,
                                flip="alternating", seed=3)
    seen = []
    for epoch in (1, 2, 3):
        loader.set_epoch(epoch)
        batches = list(loader)
        x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
        seen.append(x[y.argsort()])
    assert torch.equal(seen[1], seen[0].flip(-1)) and torch.equal(seen[2], seen[0])
    plain = BatchedCifarLoader(data.images, labels, 64, MEAN, STD, train=False)
    original = next(iter(plain))[0]
    flipped = [bool(torch.equal(seen[0][i], original[i].flip(-1))) for i in range(64)]
    assert 16 < sum(flipped) < 48  # the first epoch's choice is random per image


def test_batch_norm_biases_follow_the_one_cycle_at_their_scale():
    model = SpeedrunNet(widths=(8, 16, 16))
    optimizer = recipes.build_optimizer(recipes.SPEEDRUN, model)
    scheduler = recipes.build_one_cycle(replace(recipes.SPEEDRUN, max_lr=1.5, epochs=2), optimizer, steps_per_epoch=5)
    other_group, norm_group = optimizer.param_groups
    assert norm_group["lr_scale"] == 64 and norm_group["weight_decay"] * 64 == pytest.approx(other_group["weight_decay"])
    for _ in range(10):
        assert norm_group["lr"] == pytest.approx(64 * other_group["lr"])
        optimizer.step()
        scheduler.step()
    assert not any(p is model.whiten.conv.weight for group in optimizer.param_groups for p in group["params"])


def speedrun_run(checkpoint_dir, resume=None):
    """Three epochs of the speedrun recipe's pieces on a small SpeedrunNet and 256 generated images."""
    train, test = SyntheticImages(256, seed=0), SyntheticImages(128, seed=1)
    train_loader = BatchedCifarLoader(train.images, train.labels, 64, MEAN, STD, train=True, crop_padding=2,
                                      cutout_length=0, flip="alternating", seed=5)
    test_loader = BatchedCifarLoader(test.images, test.labels, 128, MEAN, STD, train=False)
    torch.manual_seed(0)
    model = SpeedrunNet(widths=(8, 16, 16), whiten_bias_train_steps=len(train_loader))
    model.whiten.initialize(next(iter(BatchedCifarLoader(train.images, train.labels, 256, MEAN, STD,
                                                         train=False)))[0])
    optimizer = recipes.build_optimizer(recipes.SPEEDRUN, model, lr=0.5)
    scheduler = recipes.build_one_cycle(replace(recipes.SPEEDRUN, max_lr=0.5, epochs=3), optimizer, len(train_loader))
    average = LookaheadAverage(model, 3 * len(train_loader))
    history = fit(model, "cpu", train_loader, test_loader, optimizer, nn.CrossEntropyLoss(label_smoothing=0.2), 3,
                  scheduler, precision="fp32", checkpoint_dir=checkpoint_dir, save_every=1, resume=resume,
                  log=lambda *_: None, weight_average=average)
    return model, history


def test_a_resumed_speedrun_repeats_the_straight_run_bit_for_bit(tmp_path):
    straight, history = speedrun_run(tmp_path / "straight")
    assert history["test_acc"][-1] > 30  # it learns
    resumed, _ = speedrun_run(tmp_path / "resumed", resume=tmp_path / "straight" / "epoch_1.pt")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert load_checkpoint(tmp_path / "straight" / "epoch_1.pt")["weight_average"]["step"] == 4


def test_main_trains_the_speedrun_recipe_and_resumes_it_exactly(tiny_cifar, tmp_path, main_here):  # noqa: F811
    """main.py --recipe speedrun: SpeedrunNet from the batched loader (alternating flips, on the CPU too),
    lookahead averaging and the 6-view evaluation; stopped after epoch 1 and resumed, it ends as the
    straight run does."""
    common = ["--recipe", "speedrun", "--data_dir", tiny_cifar, "--epochs", 3, "--batch_size", 32, "--max_lr", 0.2,
              "--save_every", 1, "--no_plots"]
    straight, _ = resumed_run_equals_straight_run(main_here, common, tmp_path)
    assert "SpeedrunNet (1,971,352 parameters)" in straight.stdout and "batched loader" in straight.stdout
    for setting in ("alternating_flip=True", "bias_lr_scale=64", "weight_average=True", "tta_views=6"):
        assert f" {setting}," in straight.stdout, setting  # the recipe line prints every field
    assert "test accuracy with 6-view test-time augmentation: " in straight.stdout
    history = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert 0 <= history["test_acc_tta"] <= 100 and len(history["test_acc"]) == 3
    assert json.loads((tmp_path / "resumed" / "history.json").read_text())["test_acc_tta"] == history["test_acc_tta"]


def test_main_switches_each_speedrun_trick_off_on_request(tiny_cifar, tmp_path, main_here):  # noqa: F811
    """The options that measure what each trick adds reach the run: the recipe line, no lookahead average in
    the checkpoint, no test-time augmentation, random flips and no translation in the loader."""
    result = main_here("--recipe", "speedrun", "--data_dir", tiny_cifar, "--epochs", 1, "--batch_size", 32,
                       "--max_lr", 0.2, "--no-alternating_flip", "--crop_padding", 0, "--bias_lr_scale", 1,
                       "--no-weight_average", "--tta_views", 1, "--whiten_bias_epochs", 0, "--no_plots",
                       "--output_dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for setting in ("crop_padding=0,", "alternating_flip=False,", "bias_lr_scale=1,", "weight_average=False,",
                    "tta_views=1,", "whiten_bias_epochs=0,"):
        assert f" {setting}" in result.stdout, setting
    assert "test-time augmentation" not in result.stdout.split("recipe speedrun")[1]
    assert "test_acc_tta" not in json.loads((tmp_path / "history.json").read_text())
    assert load_checkpoint(tmp_path / "last.pt").get("weight_average") is None


@pytest.mark.parametrize("args, message", [
    (["--recipe", "speedrun", "--loader", "albumentations"], "alternating flips come from the batched loader"),
    (["--alternating_flip", "--loader", "albumentations"], "--alternating_flip: alternating flips come from"),
    (["--recipe", "speedrun", "--model", "resnet50"], "--recipe speedrun trains --model speedrun, not resnet50"),
])
def test_main_refuses_what_the_speedrun_recipe_cannot_do(tmp_path, args, message, main_here):
    result = main_here(*args, "--output_dir", tmp_path)
    assert result.returncode == 2 and message in result.stderr

import contextlib
import io

import torch

from custom_resnet import CustomResNet, resnet50
from utils import count_parameters, model_summary


def test_custom_resnet_has_the_reference_parameter_count_and_output():
    model = CustomResNet(num_classes=10)
    assert count_parameters(model) == 6_573_130
    output = model(torch.randn(2, 3, 32, 32))
    assert output.shape == (2, 10)


def test_torchsummary_reports_the_parameter_count_on_cpu():
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        model_summary(CustomResNet(), input_size=(3, 32, 32), device="cpu")
    text = buffer.getvalue()
    assert "Total params: 6,573,130" in text
    assert "[-1, 512, 4, 4]" in text  # layer3 after its max-pool


def test_logit_scale_multiplies_the_logits():
    torch.manual_seed(0)
    scaled = CustomResNet(logit_scale=0.125).eval()
    plain = CustomResNet(logit_scale=1.0).eval()
    plain.load_state_dict(scaled.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(scaled(x) * 8, plain(x))


def test_resnet50_is_torchvisions_v1_5():
    model = resnet50(num_classes=1000)
    assert count_parameters(model) == 25_557_032
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)
    assert resnet50(num_classes=10).fc.out_features == 10


def test_resnet50_starts_each_bottleneck_as_its_shortcut():
    """zero_init_residual (the default here): every block's last batch-norm scale is 0, so an untrained
    block outputs relu(shortcut(x)); torchvision's initialisation does not."""
    torch.manual_seed(0)
    model = resnet50(num_classes=10).eval()
    assert all(float(block.bn3.weight.detach().abs().max()) == 0
               for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for block in layer)
    x = torch.randn(2, 256, 16, 16)
    block = model.layer1[1]
    torch.testing.assert_close(block(x), torch.relu(x))
    default = resnet50(num_classes=10, zero_init_residual=False).eval()
    assert float(default.layer1[1].bn3.weight.detach().min()) == 1.0
    assert not torch.allclose(default.layer1[1](x), torch.relu(x))
    assert count_parameters(model) == count_parameters(default)

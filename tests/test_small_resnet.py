"""SmallResNet: the ResNet18 layout with a width setting."""

import pytest
import torch
from torchvision.models import resnet18

from ctxfusion.scenes.small_resnet import SmallResNet


def test_width_64_equals_torchvision_resnet18():
    ours = SmallResNet(width=64, num_classes=1000).state_dict()
    theirs = resnet18(weights=None).state_dict()
    assert list(ours) == list(theirs)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in theirs.items()}
    model = SmallResNet(width=64)
    model.load_state_dict(theirs)  # loads torchvision's state dict unchanged


def test_torchvision_weights_give_torchvision_outputs():
    torch.manual_seed(0)
    reference = resnet18(weights=None).eval()
    model = SmallResNet(width=64).eval()
    model.load_state_dict(reference.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


@pytest.mark.parametrize("width", [4, 16, 24])
def test_narrow_widths(width):
    model = SmallResNet(width=width, num_classes=7).eval()
    x = torch.rand(3, 3, 64, 64)
    assert model.features(x).shape == (3, 8 * width)
    assert model(x).shape == (3, 7)
    assert model.feature_dim == 8 * width
    assert model.layer4[0].conv1.out_channels == 8 * width


def test_bad_width_rejected():
    with pytest.raises(ValueError, match="width=0"):
        SmallResNet(width=0)

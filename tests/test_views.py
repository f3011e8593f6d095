"""Stream views: context ignores the inside of boxes, object crops them, both differentiable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ctxfusion.errors import ConfigError
from ctxfusion.models import FusionClassifier, LinearHead
from ctxfusion.perturb.blur import boxes_mask
from ctxfusion.perturb.views import CONTEXT_FALLBACK_FILL, VIEWS, make_view


def batch(seed: int = 0, size: int = 24) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


BOXES = [torch.tensor([[3.0, 4.0, 12.0, 15.0], [10.0, 10.0, 20.0, 22.0]]),
         torch.tensor([[0.0, 0.0, 8.0, 24.0]])]


def test_full_is_identity():
    x = batch()
    assert make_view("full")(x, BOXES) is x
    assert make_view("full")(x, None) is x


def test_context_output_does_not_depend_on_inside_pixels():
    x = batch()
    inside = boxes_mask(BOXES, 24, 24).expand_as(x)
    other = x.clone()
    other[inside] = torch.rand(int(inside.sum()), generator=torch.Generator().manual_seed(9)) * 5
    a, b = make_view("context")(x, BOXES), make_view("context")(other, BOXES)
    assert torch.equal(a, b)
    assert torch.equal(a[~inside], x[~inside])
    # the fill is the mean colour of the outside pixels, per image and channel
    outside_mean = (x * (~inside)).sum(dim=(2, 3)) / (~inside).sum(dim=(2, 3))
    torch.testing.assert_close(a[0, :, 5, 5], outside_mean[0])


def test_context_fallback_when_boxes_cover_everything():
    x = batch()
    out = make_view("context")(x, [torch.tensor([[0.0, 0.0, 24.0, 24.0]]), torch.zeros(0, 4)])
    assert torch.all(out[0] == CONTEXT_FALLBACK_FILL)
    assert torch.equal(out[1], x[1])


def test_object_view_crops_enclosing_rectangle():
    x = torch.zeros(1, 3, 20, 20)
    x[..., 5:15, 5:15] = 1.0  # a bright square, exactly the box
    out = make_view("object")(x, [torch.tensor([[5.0, 5.0, 10.0, 10.0],
                                                [8.0, 8.0, 15.0, 15.0]])])
    assert out.shape == x.shape
    # the crop is all object; bilinear upsampling (2x) blends the outermost ring of samples
    # with the pixels just outside the rectangle, as any resize would
    assert out[..., 1:-1, 1:-1].min() > 0.99 and out.min() >= 0.5
    same = make_view("object")(x, [torch.zeros(0, 4)])  # no boxes: the whole image
    torch.testing.assert_close(same, x)


@pytest.mark.parametrize("view", ["context", "object"])
def test_views_are_differentiable(view):
    x = batch().requires_grad_(True)
    make_view(view)(x, BOXES).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_view_and_missing_boxes():
    with pytest.raises(ConfigError) as err:
        make_view("scene")
    for name in VIEWS:
        assert name in str(err.value)
    with pytest.raises(ConfigError, match="with_boxes"):
        make_view("context")(batch(), None)


class MeanStream(nn.Module):
    feature_dim = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_fusion_classifier_with_context_view_is_blind_inside_boxes():
    model = FusionClassifier([MeanStream(), MeanStream()], LinearHead([3, 3], 2),
                             views=[make_view("full"), make_view("context")])
    x = batch().requires_grad_(True)
    model.with_boxes(BOXES)
    feats = model.features(x)
    grad = torch.autograd.grad(feats[1].sum(), x)[0]
    inside = boxes_mask(BOXES, 24, 24).expand_as(x)
    assert torch.all(grad[inside] == 0) and grad[~inside].abs().sum() > 0

"""Blur inside boxes: exactness outside, agreement with scipy.ndimage, extreme sigmas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools.coco import COCO
from scipy import ndimage

from ctxfusion.errors import ConfigError, DataError
from ctxfusion.perturb.blur import (
    blur_inside_boxes,
    boxes_mask,
    gaussian_blur_separable,
    gaussian_kernel1d,
    padding_indices,
)


def textured(n: int = 2, size: int = 32, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g, dtype=dtype)


def scipy_radius(sigma: float) -> int:
    return int(3 * sigma + 0.5)  # scipy's truncate=3 rule


def test_kernel_default_size_and_normalisation():
    k = gaussian_kernel1d(2.0)
    assert k.numel() == 2 * 6 + 1
    assert torch.isclose(k.sum(), torch.tensor(1.0))
    assert torch.equal(k, k.flip(0))
    with pytest.raises(ConfigError, match="sigma"):
        gaussian_kernel1d(-1.0)
    with pytest.raises(ConfigError, match="odd"):
        gaussian_kernel1d(1.0, kernel_size=4)


@pytest.mark.parametrize("padding", ["reflect", "mirror"])
@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.5, 20.0])  # 20: kernel 121 on a 12 x 9 image
def test_matches_scipy_gaussian_filter(padding, sigma):
    image = textured(1, 12, seed=1, dtype=torch.float64)[..., :9]
    ours = gaussian_blur_separable(image, sigma, kernel_size=2 * scipy_radius(sigma) + 1,
                                   padding=padding)
    ref = ndimage.gaussian_filter(image[0].numpy(), sigma=(0, sigma, sigma), mode=padding,
                                  truncate=3.0)
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=1e-12)


def test_matches_scipy_gaussian_filter1d_wide_kernel_on_one_pixel_row():
    row = torch.arange(5, dtype=torch.float64).view(1, 1, 1, 5)
    ours = gaussian_blur_separable(row, 7.0, kernel_size=2 * scipy_radius(7.0) + 1)
    ref = ndimage.gaussian_filter1d(row[0, 0, 0].numpy(), 7.0, mode="reflect", truncate=3.0)
    np.testing.assert_allclose(ours[0, 0, 0].numpy(), ref, atol=1e-12)


def test_box_mask_pixel_centre_rule():
    mask = boxes_mask([torch.tensor([[1.5, 0.0, 3.49, 2.0]])], 4, 5)[0, 0]
    # columns whose centre j + 0.5 lies in [1.5, 3.49): j = 1, 2; rows 0, 1
    expected = torch.zeros(4, 5, dtype=torch.bool)
    expected[0:2, 1:3] = True
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("mode", ["image", "crop"])
def test_only_pixels_inside_boxes_change(mode):
    images = textured()
    boxes = [torch.tensor([[4.0, 5.0, 20.0, 18.0], [15.0, 10.0, 30.0, 28.0]]),
             torch.tensor([[0.0, 0.0, 10.0, 32.0]])]
    out = blur_inside_boxes(images, boxes, sigma=2.0, mode=mode)
    inside = boxes_mask(boxes, 32, 32).expand_as(images)
    assert torch.equal(out[~inside], images[~inside])  # exactly
    changed = (out - images).abs() > 1e-3
    assert changed[inside].float().mean() > 0.9


@pytest.mark.parametrize("mode", ["image", "crop"])
def test_tiny_sigma_is_identity_and_no_boxes_unchanged(mode):
    images = textured()
    boxes = [torch.tensor([[2.0, 2.0, 30.0, 30.0]]), torch.zeros(0, 4)]
    out = blur_inside_boxes(images, boxes, sigma=0.001, mode=mode)
    assert (out - images).abs().max() < 1e-4
    blurred = blur_inside_boxes(images, boxes, sigma=3.0, mode=mode)
    assert torch.equal(blurred[1], images[1])
    assert not torch.equal(blurred[0], images[0])


@pytest.mark.parametrize("mode", ["image", "crop"])
def test_sigma_45_on_224_and_kernel_wider_than_box(mode):
    images = textured(1, 224)
    boxes = [torch.tensor([[50.0, 60.0, 70.0, 90.0]])]  # 20 x 30 box, kernel 271 wide
    out = blur_inside_boxes(images, boxes, sigma=45.0, mode=mode)
    assert torch.isfinite(out).all()
    crop = out[0, :, 60:90, 50:70]
    # At sigma = 45 the box is close to flat: its spread shrinks far below the input's.
    assert crop.std() < 0.2 * images[0, :, 60:90, 50:70].std()


def test_crop_mode_sees_no_context_image_mode_does():
    images = torch.zeros(1, 3, 32, 32)
    images[..., :, 20:] = 1.0  # bright context right of the box
    boxes = [torch.tensor([[4.0, 4.0, 20.0, 28.0]])]  # the box itself is black
    crop = blur_inside_boxes(images, boxes, 3.0, mode="crop")
    image = blur_inside_boxes(images, boxes, 3.0, mode="image")
    assert crop[..., 4:28, 4:20].max() == 0  # a constant crop stays constant: nothing leaked
    assert image[0, :, 10, 19].min() > 0.1  # the bright context entered near the edge


def test_crop_mode_overlap_is_average_of_crops():
    images = textured(1, 24)
    a, b = torch.tensor([2.0, 2.0, 14.0, 14.0]), torch.tensor([8.0, 8.0, 22.0, 20.0])
    both = blur_inside_boxes(images, [torch.stack([a, b])], 2.0, mode="crop")
    only_a = blur_inside_boxes(images, [a[None]], 2.0, mode="crop")
    only_b = blur_inside_boxes(images, [b[None]], 2.0, mode="crop")
    torch.testing.assert_close(both[..., 8:14, 8:14],
                               (only_a[..., 8:14, 8:14] + only_b[..., 8:14, 8:14]) / 2)
    swapped = blur_inside_boxes(images, [torch.stack([b, a])], 2.0, mode="crop")
    torch.testing.assert_close(both, swapped)


@pytest.mark.parametrize("mode", ["image", "crop"])
def test_differentiable(mode):
    images = textured(1, 16).requires_grad_(True)
    out = blur_inside_boxes(images, [torch.tensor([[2.0, 2.0, 10.0, 12.0]])], 1.5, mode=mode)
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_real_coco_image_blurred_inside_its_box(coco_mini):
    coco = COCO(str(coco_mini / "annotations" / "instances_train2017.json"))
    ann = next(a for a in coco.dataset["annotations"] if not a["iscrowd"] and a["area"] > 2000)
    info = coco.imgs[ann["image_id"]]
    pil = Image.open(coco_mini / "train2017" / info["file_name"]).convert("RGB")
    image = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)[None].float() / 255
    x, y, w, h = ann["bbox"]
    boxes = [torch.tensor([[x, y, x + w, y + h]])]
    out = blur_inside_boxes(image, boxes, sigma=10.0)
    inside = boxes_mask(boxes, *image.shape[-2:]).expand_as(image)
    assert torch.equal(out[~inside], image[~inside])
    assert (out[inside] - image[inside]).abs().mean() > 0.01


def test_bad_inputs_raise_clear_errors():
    images = textured(2, 8)
    with pytest.raises(DataError, match="box tensors"):
        blur_inside_boxes(images, [torch.zeros(0, 4)], 1.0)
    with pytest.raises(DataError, match=r"\(K,4\)"):
        blur_inside_boxes(images, [torch.zeros(1, 3), torch.zeros(0, 4)], 1.0)
    with pytest.raises(ConfigError, match="valid: image, crop"):
        blur_inside_boxes(images, [torch.zeros(0, 4)] * 2, 1.0, mode="box")
    with pytest.raises(ConfigError, match="sigma"):
        blur_inside_boxes(images, [torch.zeros(0, 4)] * 2, -2.0)
    with pytest.raises(ConfigError, match="valid: reflect, mirror"):
        gaussian_blur_separable(images, 1.0, padding="wrap")


def _previous_blur_separable(images, sigma, *, kernel_size=None, padding="reflect"):
    """Frozen copy of gaussian_blur_separable before the batch was folded into the channels
    (the committed example results were computed with it)."""
    kernel = gaussian_kernel1d(sigma, kernel_size, dtype=images.dtype, device=images.device)
    channels, height, width = images.shape[1:]
    radius = kernel.numel() // 2
    rows = padding_indices(height, radius, padding, images.device)
    cols = padding_indices(width, radius, padding, images.device)
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(images.index_select(3, cols), horizontal, groups=channels)
    return F.conv2d(out.index_select(2, rows), vertical, groups=channels)


@pytest.mark.parametrize("threads", [1, 2])
def test_bit_identical_to_the_previous_algorithm(threads):
    """Every sigma, padding, batch and shape gives the very bits of the previous code on CPU
    float32 (torch.equal), with one and two threads (oneDNN may choose other kernels)."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(threads)
        # a single image and a batch at 224 px, a batch at 64 px, odd and degenerate shapes
        shapes = [(1, 3, 224, 224), (2, 3, 224, 224), (16, 3, 64, 64), (5, 1, 13, 40),
                  (3, 4, 1, 9), (2, 3, 70, 3)]
        for i, shape in enumerate(shapes):
            images = torch.rand(*shape, generator=g) * (255 if i % 2 else 1)
            for sigma in (0.3, 1.0, 1.43, 2.0, 5.0, 12.9, 20.0, 45.0):
                for padding in ("reflect", "mirror"):
                    ours = gaussian_blur_separable(images, sigma, padding=padding)
                    assert torch.equal(ours, _previous_blur_separable(images, sigma,
                                                                      padding=padding))
            boxes = [torch.tensor([[1.0, 2.0, shape[3] * 0.8, shape[2] * 0.9]])] * shape[0]
            ref = torch.where(boxes_mask(boxes, *shape[2:]),
                              _previous_blur_separable(images, 5.0), images)
            assert torch.equal(blur_inside_boxes(images, boxes, 5.0, "image"), ref)
        odd = torch.rand(3, 3, 20, 17, generator=g)
        assert torch.equal(gaussian_blur_separable(odd, 2.0, kernel_size=5),
                           _previous_blur_separable(odd, 2.0, kernel_size=5))
    finally:
        torch.set_num_threads(previous_threads)

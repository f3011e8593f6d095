"""Head training (alpha loss, determinism), fine-tuning, FGSM adversarial retraining."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ctxfusion.errors import ConfigError, DataError
from ctxfusion.models import LinearHead, alpha_regularised_loss
from ctxfusion.perturb.attacks import fgsm_sweep
from ctxfusion.train import accuracy, adversarial_retrain, finetune_classifier, train_linear_head


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: on a shared 2-core machine a second intra-op thread only
    adds contention (measured 50x slower under load), so run this module single-threaded."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def two_stream_features(n: int = 300, seed: int = 0):
    """fg (6-d) and bg (4-d) features that both carry the label (bg noisier)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    fg_means, bg_means = torch.randn(3, 6, generator=g) * 2, torch.randn(3, 4, generator=g) * 2
    fg = fg_means[labels] + torch.randn(n, 6, generator=g)
    bg = bg_means[labels] + 1.5 * torch.randn(n, 4, generator=g)
    return [fg, bg], labels


def test_alpha_gradient_only_on_penalised_slice():
    head = LinearHead([6, 4], 3)
    feats, labels = two_stream_features(20)
    logits = head(torch.cat(feats, 1))
    plain = torch.autograd.grad(alpha_regularised_loss(logits, labels, head, 0.0),
                                [head.weight, head.bias], retain_graph=True)
    reg = torch.autograd.grad(alpha_regularised_loss(logits, labels, head, 5.0),
                              [head.weight, head.bias])
    diff_w, diff_b = reg[0] - plain[0], reg[1] - plain[1]
    assert torch.all(diff_w[:, 6:] == 0) and torch.all(diff_b == 0)
    torch.testing.assert_close(diff_w[:, :6], 2 * 5.0 * head.weight[:, :6])


def test_huge_alpha_zeroes_fg_weights_but_not_bg():
    feats, labels = two_stream_features()
    head = train_linear_head(feats, labels, 3, alpha=1e3, epochs=300, lr=0.05)
    fg_mean, bg_mean = head.stream_weight_means()
    assert fg_mean < 1e-2 and bg_mean > 0.1
    assert accuracy(head, feats, labels) > 0.6  # bg alone still classifies


def test_higher_alpha_shrinks_the_penalised_slice():
    feats, labels = two_stream_features()
    means = [train_linear_head(feats, labels, 3, alpha=a, epochs=150, lr=0.05)
             .stream_weight_means()[0] for a in (0.0, 0.1, 10.0)]
    assert means[0] > means[1] > means[2]
    bg_pen = train_linear_head(feats, labels, 3, alpha=10.0, penalised_stream=1, epochs=150,
                               lr=0.05)
    assert bg_pen.stream_weight_means()[1] < means[0] / 5


def test_deterministic_for_a_seed():
    feats, labels = two_stream_features()
    kwargs = dict(alpha=0.1, epochs=5, lr=0.01, batch_size=32, seed=7)
    a = train_linear_head(feats, labels, 3, **kwargs)
    b = train_linear_head(feats, labels, 3, **kwargs)
    c = train_linear_head(feats, labels, 3, **{**kwargs, "seed": 8})
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)


def test_bad_inputs():
    feats, labels = two_stream_features(10)
    with pytest.raises(DataError, match=r"features\[1\]"):
        train_linear_head([feats[0], feats[1][:5]], labels, 3)
    with pytest.raises(DataError, match=r"\[0, 2\)"):
        train_linear_head(feats, labels, 2)
    with pytest.raises(ConfigError, match="alpha"):
        train_linear_head(feats, labels, 3, alpha=-1.0)
    with pytest.raises(ConfigError, match="penalised_stream"):
        train_linear_head(feats, labels, 3, penalised_stream=2)


class SignalStream(nn.Module):
    """Two features of an 8 x 8 image: its mean brightness (robust: an eps attack moves it by
    eps against a margin of 0.15) and its checkerboard contrast (perfectly predictive, but its
    0.03 amplitude is flipped by any eps > 0.03)."""

    feature_dim = 2

    def __init__(self) -> None:
        super().__init__()
        yy, xx = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
        self.register_buffer("pattern", ((yy + xx) % 2 * 2 - 1).float())
        self.scale = nn.Parameter(torch.tensor([10.0, 100.0]))  # a (frozen) backbone weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - 0.5
        feats = torch.stack([centred.mean(dim=(1, 2, 3)),
                             (centred * self.pattern).mean(dim=(1, 2, 3))], dim=1)
        return feats * self.scale


def signal_images(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    s = (labels * 2 - 1).float().view(-1, 1, 1, 1)
    offset = 0.15 * s + 0.1 * torch.randn(n, 1, 1, 1, generator=g)
    pattern = SignalStream().pattern
    images = 0.5 + offset + 0.03 * s * pattern + 0.01 * torch.randn(n, 3, 8, 8, generator=g)
    return images.clamp(0, 1), labels


def test_adversarial_retraining_is_more_robust_to_fgsm():
    stream = SignalStream()
    x, y = signal_images(512, seed=0)
    x_test, y_test = signal_images(256, seed=1)
    with torch.no_grad():
        feats = stream(x)
    plain = train_linear_head([feats], y, 2, epochs=300, lr=0.05)
    loader = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 512, 64)]
    before = stream.scale.detach().clone()
    robust = adversarial_retrain(stream, plain, loader, eps=0.05, epochs=15, lr=0.05,
                                 progress=False)
    assert torch.equal(stream.scale, before) and stream.scale.grad is None  # backbone frozen

    def fgsm_accuracy(head: LinearHead) -> tuple[float, float]:
        from ctxfusion.models import FusionClassifier

        model = FusionClassifier([stream], head)
        clean, adv = fgsm_sweep(model, x_test, y_test, [0.0, 0.05])
        with torch.no_grad():
            return tuple(float((model(i).argmax(1) == y_test).float().mean())
                         for i in (clean, adv))

    plain_clean, plain_adv = fgsm_accuracy(plain)
    robust_clean, robust_adv = fgsm_accuracy(robust.head)
    assert plain_clean > 0.95 and robust_clean > 0.75
    assert robust_adv > plain_adv + 0.3, (plain_adv, robust_adv)
    assert not torch.equal(plain.weight, robust.head.weight)  # the input head was copied


def test_finetune_trains_all_layers_and_learns():
    torch.manual_seed(0)
    stream = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                           nn.Flatten())
    stream.feature_dim = 4
    x, y = signal_images(256, seed=2)
    before = stream[0].weight.detach().clone()
    loader = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    model = finetune_classifier(stream, 2, loader, epochs=8, lr=0.02, progress=False)
    assert not torch.equal(before, model.streams[0][0].weight)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.8

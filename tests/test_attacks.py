"""FGSM sweep = per-eps torchattacks.FGSM; PGD at least as strong; eps conversions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

from ctxfusion.errors import ConfigError
from ctxfusion.models import Normalize
from ctxfusion.perturb.attacks import (
    eps_to_normalized,
    eps_to_pixel,
    fgsm_direction,
    fgsm_sweep,
    make_attack,
)

STD = (0.247, 0.243, 0.261)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: on a shared 2-core machine a second intra-op thread only adds contention."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def colour_problem(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8 x 8 images whose label is the brightest channel (learnable by a tiny conv net)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    images = torch.rand(n, 3, 8, 8, generator=g) * 0.6
    images[torch.arange(n), labels] += 0.25
    return images.clamp(0, 1), labels


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(Normalize((0.49, 0.48, 0.45), STD), nn.Conv2d(3, 8, 3, padding=1),
                          nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 3))
    x, y = colour_problem(512, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    x_test, y_test = colour_problem(128, seed=2)
    with torch.no_grad():
        assert (model(x_test).argmax(1) == y_test).float().mean() > 0.9
    return model, x_test, y_test


def test_sweep_equals_torchattacks_fgsm_per_eps(trained):
    model, x, y = trained
    epsilons = [0.0, 0.01, 0.03, 8 / 255, 0.1, 0.3]
    sweep = fgsm_sweep(model, x, y, epsilons)
    for eps, adv in zip(epsilons, sweep, strict=True):
        assert torch.equal(adv, torchattacks.FGSM(model, eps=eps)(x, y)), eps
    assert torch.equal(sweep[0], x)


def test_direction_leaves_model_state_alone(trained):
    model, x, y = trained
    model.zero_grad(set_to_none=True)
    model.train()
    direction = fgsm_direction(model, x, y)
    assert model.training
    model.eval()
    assert all(p.grad is None for p in model.parameters())
    assert set(direction.unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_per_channel_eps_bounds_each_channel(trained):
    model, x, y = trained
    eps = eps_to_pixel(0.3, "normalized", STD)
    (adv,) = fgsm_sweep(model, x, y, [eps])
    moved = (adv - x).abs().amax(dim=(0, 2, 3))
    assert torch.all(moved <= eps.float() + 1e-7)
    assert torch.all(moved > eps.float() * 0.99)
    with pytest.raises(ConfigError, match="shape"):
        fgsm_sweep(model, x, y, [torch.tensor([0.1, 0.2])])
    with pytest.raises(ConfigError, match=">= 0"):
        fgsm_sweep(model, x, y, [-0.1])


def test_eps_conversion_round_trips():
    eps = eps_to_pixel(0.3, "normalized", STD)
    torch.testing.assert_close(eps, torch.tensor(STD, dtype=torch.float64) * 0.3)
    torch.testing.assert_close(eps_to_normalized(eps, STD), torch.full((3,), 0.3,
                                                                       dtype=torch.float64))
    assert eps_to_pixel(0.05) == 0.05
    with pytest.raises(ConfigError, match="valid: pixel, normalized"):
        eps_to_pixel(0.1, "logit", STD)
    with pytest.raises(ConfigError, match="std"):
        eps_to_pixel(0.1, "normalized")


def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def test_pgd_at_least_as_strong_as_fgsm(trained):
    model, x, y = trained
    eps = 0.05
    fgsm = make_attack("fgsm", model, eps)(x, y)
    pgd = make_attack("pgd", model, eps, steps=10, restarts=2)(x, y)
    assert (pgd - x).abs().max() <= eps + 1e-6 and pgd.min() >= 0 and pgd.max() <= 1
    assert mean_loss(model, pgd, y).mean() >= mean_loss(model, fgsm, y).mean()
    with torch.no_grad():
        acc_fgsm = (model(fgsm).argmax(1) == y).float().mean()
        acc_pgd = (model(pgd).argmax(1) == y).float().mean()
    assert acc_pgd <= acc_fgsm


def test_pgd_restarts_keep_the_worst_case_per_example(trained):
    model, x, y = trained
    one = make_attack("pgd", model, 0.03, steps=3, restarts=1, seed=5)(x, y)
    three = make_attack("pgd", model, 0.03, steps=3, restarts=3, seed=5)(x, y)
    assert torch.all(mean_loss(model, three, y) >= mean_loss(model, one, y))
    state = torch.random.get_rng_state()
    make_attack("pgd", model, 0.03, steps=1)(x, y)
    assert torch.equal(state, torch.random.get_rng_state())  # caller's RNG untouched


def test_bim_and_autoattack_run(trained):
    model, x, y = trained
    bim = make_attack("bim", model, 0.05, steps=5)(x, y)
    assert (bim - x).abs().max() <= 0.05 + 1e-6
    # AutoAttack is slow on a CPU: 8 images, an eps that APGD-CE alone breaks.
    auto = make_attack("autoattack", model, 0.3, num_classes=3)(x[:8], y[:8])
    assert (auto - x[:8]).abs().max() <= 0.3 + 1e-6
    with torch.no_grad():
        assert (model(auto).argmax(1) == y[:8]).float().mean() <= 0.25


def test_make_attack_validates_settings(trained):
    model = trained[0]
    with pytest.raises(ConfigError, match="valid attacks: fgsm, bim, pgd, apgd, eotpgd, "
                       "autoattack"):
        make_attack("cw", model, 0.1)
    with pytest.raises(ConfigError, match="'stepz'.*valid settings: steps"):
        make_attack("pgd", model, 0.1, stepz=3)
    with pytest.raises(ConfigError, match="setting .steps. = 0: must be >= 1"):
        make_attack("bim", model, 0.1, steps=0)
    with pytest.raises(ConfigError, match="wrong type"):
        make_attack("pgd", model, 0.1, random_start="yes")
    with pytest.raises(ConfigError, match="num_classes"):
        make_attack("autoattack", model, 0.1)
    with pytest.raises(ConfigError, match="per-channel"):
        make_attack("pgd", model, torch.tensor(STD))


class BatchSizes(nn.Module):
    """Wraps a model and records the batch size of every forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        return self.model(x)


def test_gradient_chunks_bound_the_graph_and_keep_the_direction(trained):
    """max_batch bounds how many images one backward graph holds (a run's peak memory) and
    leaves each image's attack as it is."""
    model, x, y = trained
    whole = fgsm_direction(model, x, y)
    recorded = BatchSizes(model)
    chunked = fgsm_direction(recorded, x, y, max_batch=48)
    assert recorded.sizes == [48, 48, 32]
    assert torch.equal(chunked, whole)
    sweep = fgsm_sweep(recorded, x, y, [0.03], max_batch=7)
    assert max(recorded.sizes[3:]) == 7
    assert torch.equal(sweep[0], fgsm_sweep(model, x, y, [0.03])[0])
    with pytest.raises(ConfigError, match="max_batch = 0"):
        fgsm_direction(model, x, y, max_batch=0)


def test_gradient_chunks_bind_each_chunks_boxes():
    """A classifier whose view needs boxes sees, per chunk, the boxes of that chunk's images."""
    from ctxfusion.models import FusionClassifier, LinearHead
    from ctxfusion.perturb.views import make_view

    torch.manual_seed(0)
    stream = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                           nn.Flatten())
    stream.feature_dim = 4
    model = FusionClassifier([stream], LinearHead([4], 3), views=[make_view("context")]).eval()
    x, y = colour_problem(10, seed=3)
    boxes = [torch.tensor([[i % 4, 1.0, 4 + i % 4, 6.0]]) for i in range(10)]
    whole = fgsm_direction(model.with_boxes(boxes), x, y, boxes=boxes)
    chunked = fgsm_direction(model, x, y, max_batch=3, boxes=boxes)
    assert torch.equal(chunked, whole)
    assert len(model._boxes) == 10  # the whole batch's boxes are bound again afterwards

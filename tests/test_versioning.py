"""Computation versions key the cache: a bump recomputes exactly what depends on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from ctxfusion import versioning
from ctxfusion.features import FEATURES, FeatureCache
from ctxfusion.versioning import Computation, computation, registered_versions, versioned

REPO = Path(__file__).resolve().parents[1]


def _bump(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    known = versioning.REGISTRY[name]
    monkeypatch.setitem(versioning.REGISTRY, name,
                        Computation(name, known.version + 1, known.covers))


def test_a_description_without_versions_is_refused(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    with pytest.raises(ValueError, match="versions of the computations"):
        cache.path({"what": "features"})
    with pytest.raises(ValueError, match="at least one"):
        versioned({"what": "features"})


def test_the_key_follows_the_version_and_nothing_else(tmp_path: Path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path)
    before = cache.path(versioned({"what": "features"}, FEATURES))
    assert cache.path(versioned({"what": "features"}, FEATURES)) == before  # stable
    _bump(monkeypatch, "features")
    assert cache.path(versioned({"what": "features"}, FEATURES)) != before


def test_a_computation_is_declared_once_with_a_positive_integer_version() -> None:
    assert computation("features", FEATURES.version, FEATURES.covers) == FEATURES
    with pytest.raises(ValueError, match="declared twice"):
        computation("features", FEATURES.version + 1, "another")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            computation("test-only", bad, "bad")


def _cached_versions(root: Path) -> dict[str, dict[str, int]]:
    """Per cache file, the versions recorded in its description."""
    found = {}
    for path in sorted(root.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            description = json.loads(handle.metadata()["description"])
        found[path.name] = description["what"]["versions"]
    return found


@pytest.mark.slow
def test_bumping_one_version_recomputes_exactly_what_depends_on_it(tmp_path: Path,
                                                                   monkeypatch) -> None:
    """A small real run (blur, FGSM, a white-box attack, a corruption), then the same run
    after each bump: the new cache files are exactly the old ones that named the bumped
    computation, and the run records the versions it used."""
    from ctxfusion.config import load_config
    from ctxfusion.experiments import run_experiment

    monkeypatch.setenv("CTXFUSION_HOME", str(tmp_path / "home"))
    config = load_config(REPO / "configs" / "demo-full.yaml", [
        "datasets=[{name: scenes-cs0.8, kind: scenes, context_strength: 0.8, num_train: 48, "
        "num_test: 24, seed: 7, subsets: [all]}]",
        "batch_size=24", "heads.epochs=2", "heads.alphas=[10]", "whitebox.adaptive=[]",
        "steps=[blur, fgsm, whitebox, corruptions]", "blur.sigmas=[2.86]",
        "fgsm.epsilons=[0, 0.01]", "fgsm.sources=[fg]", "fgsm.regions=[image, box]",
        "whitebox.attacks=[pgd]", "whitebox.epsilons=[0.01]", "whitebox.steps=2",
        "whitebox.targets=[fg]", "whitebox.regions=[image]", "whitebox.max_images=8",
        "whitebox.sanity=false", "corruptions={names: [gaussian_noise], max_images: 8, "
        "regions: [image], severities: [1]}", "repeats=1",
    ])
    root = tmp_path / "home" / "features"
    run = 0

    def rerun() -> dict[str, dict[str, int]]:
        nonlocal run
        before = _cached_versions(root) if root.exists() else {}
        run += 1
        run_experiment(config, tmp_path / f"run{run}", report=False)  # caches only
        return {k: v for k, v in _cached_versions(root).items() if k not in before}

    first = rerun()
    recorded = json.loads((tmp_path / "run1" / "run.json").read_text())["computations"]
    assert recorded == registered_versions()
    assert rerun() == {}  # nothing recomputed without a bump
    # computations whose dependents are disjoint are bumped together (one run for three)
    for together in (("blur", "attack.pgd", "corruptions"), ("fgsm",), ("regions",)):
        dependent = [name for name, v in first.items() if set(together) & set(v)]
        for bumped in together:
            assert any(bumped in v for v in first.values()), f"nothing made with {bumped}"
            _bump(monkeypatch, bumped)
        new = rerun()
        assert len(new) == len(dependent), (together, sorted(new), dependent)
        assert all(v[b] == versioning.REGISTRY[b].version
                   for v in new.values() for b in together if b in v)
        assert all(set(together) & set(v) for v in new.values())
    # a bumped preparation prepares the dataset again, in a folder of its own; every cached
    # tensor depends on the dataset (its manifest's digest), so every one is made again
    _bump(monkeypatch, "datasets")
    assert len(rerun()) == len(first)
    assert len(list((tmp_path / "home" / "datasets").iterdir())) == 2

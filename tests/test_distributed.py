"""Sharded runs: ``torchrun`` on 2 CPU processes (gloo) gives the rows of one process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, TensorDataset

from ctxfusion.distributed import SINGLE, Group, merge_shards, sharded_get_or_compute
from ctxfusion.features import FeatureCache

REPO = Path(__file__).resolve().parents[1]
#: the demo config cut to a minute: two streams, every step that runs on batches (features,
#: blur, FGSM, PGD with random starts, adversarial retraining on rank 0)
SMALL = [
    "datasets=[{name: scenes-cs0.8, kind: scenes, context_strength: 0.8, num_train: 160, "
    "num_test: 72, seed: 5}]",
    "streams={fg: {name: scenes-object-resnet18}, bg: {name: scenes-scene-resnet18}}",
    "classifiers=null",
    "blur.sigmas=[2.86]",
    "fgsm.epsilons=[0, 0.01]",
    "fgsm.whitebox=false",
    "whitebox.epsilons=[0.01]",
    "whitebox.steps=2",
    "whitebox.max_images=40",  # 3 batches of 16: per-batch random starts on both ranks
    "advtrain.epochs=1",
    "advtrain.max_train_images=32",
    "heads.epochs=30",
    "heads.alphas=[10]",
    "whitebox.adaptive=[]",
    "pca.max_points_per_class=10",
    "batch_size=32",  # 5 train and 3 test batches: an uneven split across 2 ranks
    # the steps of the paper: corruptions, the threat regions and the fusion step's perturbed
    # training images are sharded by the same perturbed_row_features as FGSM
    "steps=[blur, fgsm, advtrain, whitebox, pca]",
    "fgsm.regions=[image]",
    "whitebox.regions=[image]",
]


def _run(command: list[str], out: Path, cache: Path, home: Path) -> subprocess.CompletedProcess:
    sets = [arg for item in SMALL for arg in ("--set", item)]
    env = {**os.environ, "CTXFUSION_HOME": str(home)}
    return subprocess.run(
        [*command, "run", str(REPO / "configs" / "demo-full.yaml"), *sets,
         "--set", f"cache_dir={cache}", "--out", str(out), "--no-report"],
        env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.slow
@pytest.mark.torchrun
def test_torchrun_on_two_processes_gives_the_rows_of_one_process(tmp_path) -> None:
    home = tmp_path / "home"
    single = _run([sys.executable, "-m", "ctxfusion"], tmp_path / "single",
                  tmp_path / "cache-single", home)
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "-m", "ctxfusion"]
    sharded = _run(torchrun, tmp_path / "sharded", tmp_path / "cache-sharded", home)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    for name in ("results.csv", "differences.csv", "weights.csv", "pca.csv"):
        assert (tmp_path / "sharded" / name).read_bytes() == \
            (tmp_path / "single" / name).read_bytes(), name
    info = json.loads((tmp_path / "sharded" / "run.json").read_text())
    assert info["status"] == "complete"
    assert (info["execution"]["world_size"], info["execution"]["backend"]) == (2, "gloo")
    # the shards were merged and removed: both caches hold the same entries
    assert sorted(p.name for p in (tmp_path / "cache-sharded").iterdir()) == \
        sorted(p.name for p in (tmp_path / "cache-single").iterdir())
    assert sharded.stdout.count("report:") == 1  # rank 0 speaks for the run
    # --no-report: the tables and claims are written, the figures and the page are not
    assert "report:     not built (`ctxfusion report" in sharded.stdout
    assert not (tmp_path / "sharded" / "report.html").exists()
    assert _claims(tmp_path / "sharded") == _claims(tmp_path / "single")


def _claims(run: Path) -> list[dict]:
    """claims.csv's rows without the run's name (its folder)."""
    with open(run / "claims.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "run"} for row in csv.DictReader(handle)]


def test_merge_puts_uneven_shards_back_in_batch_order() -> None:
    batches = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]  # 4 batches, the last one short
    shards = {0: {"x": torch.tensor([0, 1, 2, 6, 7, 8])},  # batches 0 and 2
              1: {"x": torch.tensor([3, 4, 5, 9, 10])}}  # batches 1 and 3
    assert merge_shards(shards, batches, 2)["x"].tolist() == list(range(11))
    with pytest.raises(Exception, match="rows"):
        merge_shards({0: {"x": torch.arange(5)}, 1: shards[1]}, batches, 2)


def _square_rows(loader, positions, calls: Path) -> dict:
    """The computation under test: squares each row; records which batches it ran on."""
    with calls.open("a") as handle:
        handle.write(json.dumps(positions) + "\n")
    rows = torch.cat([batch[0] for batch in loader])
    return {"squares": {"value": rows**2}}


#: a cache description (every one names the versions of the computations behind it)
SQUARES = {"what": "squares", "versions": {"squares": 1}}


def _rank_main(rank: int, world: int, init_file: str, cache_root: str, calls: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        loader = DataLoader(TensorDataset(torch.arange(10.0)), batch_size=3)
        sharded_get_or_compute(
            FeatureCache(cache_root), {"squares": SQUARES}, loader,
            lambda part, positions: _square_rows(part, positions, Path(calls)),
            Group(rank, world))
    finally:
        dist.destroy_process_group()


@pytest.mark.torchrun
def test_a_restart_recomputes_only_the_missing_shards(tmp_path) -> None:
    """Rank 1 finished its shard before the run died; the restart computes rank 0's only,
    and the merged tensor equals the single-process one."""
    cache = FeatureCache(tmp_path / "cache")
    loader = DataLoader(TensorDataset(torch.arange(10.0)), batch_size=3)
    shard_of_rank_1 = {"shard_of": SQUARES, "rank": 1, "world_size": 2,
                       "batch_size": 3, "versions": SQUARES["versions"]}
    cache.save(shard_of_rank_1, {"value": torch.tensor([9.0, 16, 25, 81])})  # batches 1, 3
    calls = tmp_path / "calls.jsonl"
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path / "cache"), str(calls)),
             nprocs=2, join=True)
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [[0, 2]]
    single = sharded_get_or_compute(
        FeatureCache(tmp_path / "single"), {"squares": SQUARES}, loader,
        lambda part, positions: _square_rows(part, positions, tmp_path / "single.jsonl"),
        SINGLE)
    merged = cache.load(SQUARES)
    assert torch.equal(merged["value"], single["squares"]["value"])
    assert not cache.path(shard_of_rank_1).exists()  # merged shards are removed


class _TinyStream(torch.nn.Sequential):
    """A small convolutional stream without batch norm (whose statistics are per rank)."""

    feature_dim = 8

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
                         torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def _finetune_loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.rand(24, 3, 16, 16, generator=generator), torch.arange(24) % 3
    return DataLoader(TensorDataset(images, labels), batch_size=8, shuffle=True,
                      generator=torch.Generator().manual_seed(1))


def _finetune_rank(rank: int, world: int, init_file: str, out: str) -> None:
    from ctxfusion.distributed import slice_each_batch
    from ctxfusion.train import finetune_classifier

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        group = Group(rank, world)
        model = finetune_classifier(_TinyStream(), 3, slice_each_batch(_finetune_loader(), group),
                                    epochs=2, lr=1e-2, progress=False, group=group)
        torch.save(model.state_dict(), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.torchrun
def test_data_parallel_finetuning_matches_one_process(tmp_path) -> None:
    """Two ranks, each on half of every batch, with DistributedDataParallel: the replicas end
    equal, and equal to one process on whole batches (within float error)."""
    from ctxfusion.train import finetune_classifier

    mp.spawn(_finetune_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2,
             join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    single = finetune_classifier(_TinyStream(), 3, _finetune_loader(), epochs=2, lr=1e-2,
                                 progress=False).state_dict()
    before = _TinyStream().state_dict()
    for key, value in single.items():
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        assert torch.allclose(ranks[0][key], value, atol=1e-5), key
    assert not torch.allclose(single["streams.0.0.weight"], before["0.weight"])

"""Sharded runs under ``torchrun``: the process group, batch shards and their merge.

``torchrun --nproc_per_node=N -m ctxfusion run CONFIG`` starts N copies of the same run. Every
rank walks the same steps in the same order; the costly ones (feature extraction, the
perturbation sweeps, the white-box attacks) are computations over the batches of an
unshuffled loader, and :func:`sharded_get_or_compute` splits those batches across ranks:
rank r takes batches r, r + N, r + 2N, ... of the very loader a single process would use, so
every batch holds the same images as in a single-process run and gives the same tensors.
Each rank stores its shard in the feature cache (atomically, keyed by the description, the
rank and the world size); rank 0 merges the shards back into batch order, stores the whole
result under the single-process description and removes the shards. A rank that dies leaves
its finished shards on disk, and a restart computes only what is missing; a finished step is
found in the cache by any world size, a single process included.

Torch's ``DistributedSampler`` is not used: it deals out single images (and pads the last
round with repeats), which changes the composition of every batch, and with it the floating-
point results of batch-dependent kernels; dealing out whole batches keeps them bit-identical.

Training steps run whole: the heads on cached features on every rank (seconds; checked
identical across ranks), adversarial retraining on rank 0 while the other ranks wait and then
read it from the cache (:func:`main_get_or_compute`). Fine-tuning a backbone is data-parallel
(``DistributedDataParallel``, :func:`slice_each_batch`, :func:`collective_get_or_compute`)
unless ``finetune.distributed`` is false.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler, SequentialSampler

from .errors import ConfigError, DataError

Tensors = dict[str, torch.Tensor]

#: how long a rank waits for the others at a barrier: long enough for rank 0 to fine-tune or
#: adversarially retrain alone on a CPU; a rank that dies is noticed by torchrun, which stops
#: the others at once
BARRIER_TIMEOUT = datetime.timedelta(hours=12)


@dataclass(frozen=True)
class Group:
    """This process's place in the run: its rank among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run directory and merges shards."""
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every rank has arrived (no-op in a single process)."""
        if self.sharded:
            dist.barrier()

    def broadcast(self, value: object) -> object:
        """Rank 0's ``value`` on every rank (values made by this program, not by files)."""
        if not self.sharded:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: object) -> list:
        """Every rank's ``value``, in rank order."""
        if not self.sharded:
            return [value]
        values: list = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first, the others after it (downloads, dataset preparation
        and pretraining happen once; the other ranks then find them cached)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


SINGLE = Group()


def is_main_process() -> bool:
    """Whether this process is rank 0 of a torchrun run (or not under torchrun at all)."""
    return int(os.environ.get("RANK", "0")) == 0


def init_from_environment(device: str) -> tuple[Group, bool]:
    """The group of this process: from torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
    (starting the process group: NCCL on GPUs, gloo on CPUs) or a single process.
    Returns the group and whether this call started the process group (then stop it with
    :func:`shutdown`)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE, False
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"rank {rank} has LOCAL_RANK {local_rank} but this node has "
                f"{torch.cuda.device_count()} GPUs: start at most that many processes per node "
                "(torchrun --nproc_per_node)")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if use_cuda else "gloo"
    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT)
    return Group(dist.get_rank(), dist.get_world_size(), local_rank, backend), started


def shutdown() -> None:
    """Stop the process group started by :func:`init_from_environment`."""
    if dist.is_initialized():
        dist.destroy_process_group()


def batch_shard(loader: DataLoader, group: Group) -> tuple[list[list[int]], list[int]]:
    """Every batch of ``loader`` (dataset indices) and the positions of this rank's batches."""
    if not isinstance(loader.sampler, SequentialSampler) or loader.batch_sampler is None:
        raise DataError("only an unshuffled, batched loader can be split across ranks")
    batches = [list(batch) for batch in loader.batch_sampler]
    return batches, list(range(group.rank, len(batches), group.world_size))


def subset_loader(loader: DataLoader, batches: Sequence[Sequence[int]]) -> DataLoader:
    """A loader over the given batches of ``loader``'s dataset, with its collate function,
    workers and memory pinning."""
    return DataLoader(loader.dataset, batch_sampler=[list(b) for b in batches],
                      collate_fn=loader.collate_fn, num_workers=loader.num_workers,
                      pin_memory=loader.pin_memory)


class BatchSlices(Sampler[list[int]]):
    """This rank's slice (every ``world_size``-th image) of each batch of a batch sampler; a
    shuffled sampler draws the same order on every rank (same seeded generator). Batches with
    fewer images than ranks are skipped on every rank, so all ranks step together."""

    def __init__(self, batch_sampler: Sampler, group: Group) -> None:
        self.batch_sampler, self.group = batch_sampler, group

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batch_sampler:
            if len(batch) >= self.group.world_size:
                yield list(batch)[self.group.rank::self.group.world_size]

    def __len__(self) -> int:
        return len(self.batch_sampler)


def slice_each_batch(loader: DataLoader, group: Group) -> DataLoader:
    """For data-parallel training: a loader yielding this rank's slice of each batch."""
    if not group.sharded:
        return loader
    # the same generator: starting an epoch draws the workers' base seed from it before the
    # sampler draws its order, so the order equals the whole loader's
    return DataLoader(loader.dataset, batch_sampler=BatchSlices(loader.batch_sampler, group),
                      collate_fn=loader.collate_fn, num_workers=loader.num_workers,
                      pin_memory=loader.pin_memory, generator=loader.generator)


def merge_shards(shards: Mapping[int, Tensors], batches: Sequence[Sequence[int]],
                 world_size: int) -> Tensors:
    """The tensors of a single-process run from each rank's shard: rank r's rows are its
    batches r, r + world_size, ... one after another; put back in batch order."""
    pieces: dict[int, Tensors] = {}
    for rank, tensors in shards.items():
        positions = list(range(rank, len(batches), world_size))
        sizes = [len(batches[p]) for p in positions]
        for name, tensor in tensors.items():
            if tensor.shape[0] != sum(sizes):
                raise DataError(f"shard of rank {rank}: tensor {name!r} has "
                                f"{tensor.shape[0]} rows, its batches hold {sum(sizes)}")
            for position, piece in zip(positions, tensor.split(sizes), strict=True):
                pieces.setdefault(position, {})[name] = piece
    if sorted(pieces) != list(range(len(batches))):
        raise DataError(f"shards cover batches {sorted(pieces)}, need 0..{len(batches) - 1}")
    names = pieces[0].keys()
    return {name: torch.cat([pieces[p][name] for p in range(len(batches))]) for name in names}


def _shard_description(description: Mapping, rank: int, world_size: int,
                       batch_size: int | None) -> dict:
    return {"shard_of": dict(description), "rank": rank, "world_size": world_size,
            "batch_size": batch_size, "versions": dict(description.get("versions", {}))}


def sharded_get_or_compute(
    cache, descriptions: Mapping[str, Mapping], loader: DataLoader,
    compute: Callable[[DataLoader, list[int] | None], Mapping[str, Tensors]], group: Group,
) -> dict[str, Tensors]:
    """Per key, the tensors of ``compute`` over every batch of ``loader``, cached under
    ``descriptions[key]``; across the ranks of ``group``, each rank computes its batches.

    ``compute(loader, positions)`` returns {key: {name: tensor with one row per image}} for
    the batches of ``loader``, which are the batches at ``positions`` of the whole loader
    (None: all of them, batch i at position i). A computation that draws random numbers
    seeds them per position, so a batch gives the same result on any rank. Keys already
    cached are left out by the caller, which loads them.
    """
    if not group.sharded:
        results = {k: dict(v) for k, v in compute(loader, None).items()}
        for key, tensors in results.items():
            cache.save(descriptions[key], tensors)
        return results
    batches, mine = batch_shard(loader, group)
    if not batches:
        raise DataError("the loader yielded no batches: nothing to compute")

    def shard(key: str, rank: int) -> dict:
        return _shard_description(descriptions[key], rank, group.world_size, loader.batch_size)

    if mine and any(cache.load(shard(key, group.rank)) is None for key in descriptions):
        results = compute(subset_loader(loader, [batches[p] for p in mine]), mine)
        for key in descriptions:
            cache.save(shard(key, group.rank), results[key])
    group.barrier()
    if group.is_main:
        ranks = range(min(group.world_size, len(batches)))  # ranks that hold a batch
        for key in descriptions:
            shards = {rank: cache.load(shard(key, rank)) for rank in ranks}
            lost = [rank for rank, tensors in shards.items() if tensors is None]
            if lost:
                raise DataError(f"the cache holds no shard of ranks {lost} for a sharded "
                                "step: their files were removed while the run went on")
            cache.save(descriptions[key], merge_shards(shards, batches, group.world_size))
        for key in descriptions:
            for rank in ranks:
                cache.path(shard(key, rank)).unlink(missing_ok=True)
    group.barrier()
    return {key: must_load(cache, descriptions[key]) for key in descriptions}


def main_get_or_compute(cache, description: Mapping, compute: Callable[[], Mapping],
                        group: Group) -> Tensors:
    """``cache.get_or_compute`` run by rank 0 alone; the other ranks wait, then read it."""
    if not group.sharded:
        return cache.get_or_compute(description, compute)
    tensors = cache.get_or_compute(description, compute) if group.is_main else None
    group.barrier()
    return tensors if tensors is not None else must_load(cache, description)


def collective_get_or_compute(cache, description: Mapping, compute: Callable[[], Mapping],
                              group: Group) -> Tensors:
    """``cache.get_or_compute`` where every rank takes part in ``compute`` (data-parallel
    training, whose replicas end equal); rank 0 stores the result, the others read it."""
    cached = cache.load(description)
    if not group.broadcast(cached is None):
        return cached if cached is not None else must_load(cache, description)
    tensors = {k: v.detach().cpu() for k, v in compute().items()}
    if group.is_main:
        cache.save(description, tensors)
    group.barrier()
    return tensors if group.is_main else must_load(cache, description)


def must_load(cache, description: Mapping) -> Tensors:
    """The cached tensors of ``description``, which another rank stored."""
    tensors = cache.load(description)
    if tensors is None:
        raise DataError(f"rank 0 stored no tensors at {cache.path(description)}: the cache "
                        "folder must be one folder shared by every rank (on several nodes: a "
                        "shared file system; set cache_dir and CTXFUSION_HOME to it)")
    return tensors


def check_same_on_every_rank(group: Group, what: str, value: str) -> None:
    """Raise when ranks disagree on ``value`` (e.g. the digest of heads they each trained)."""
    values = group.gather(value)
    if len(set(values)) > 1:
        raise DataError(f"the ranks computed different {what} ({values}): a sharded run needs "
                        "every rank on the same kind of device with the same software")

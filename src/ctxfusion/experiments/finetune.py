"""All-layer fine-tuning of one stream (``finetune.stream``; the paper's fg on CIFAR-10,
SPEC §1), cached by content.

The fine-tuned backbone replaces the stream for the dataset; its digest then keys every
feature computed from it. Its classifiers are linear heads trained on the fine-tuned
backbone's features, like every other head.
"""

from __future__ import annotations

import copy
import sys

from ctxfusion.distributed import (
    SINGLE,
    collective_get_or_compute,
    main_get_or_compute,
    slice_each_batch,
)
from ctxfusion.experiments.context import RunContext
from ctxfusion.experiments.sweeps import SplitData
from ctxfusion.features import FEATURES
from ctxfusion.streams import Stream
from ctxfusion.train import FINETUNING, finetune_classifier
from ctxfusion.versioning import versioned


def finetuned_stream(ctx: RunContext, train: SplitData, num_classes: int) -> Stream:
    """A copy of stream ``finetune.stream`` with all layers fine-tuned on ``train`` (cached)."""
    cfg = ctx.config.finetune
    base = ctx.streams[cfg.stream]
    description = {
        "kind": "finetune", "stream": ctx.identity(base), "train": train.digest,
        "epochs": cfg.epochs, "lr": cfg.lr, "seed": ctx.config.seed,
        "num_classes": num_classes, "execution": ctx.execution.describe(),
    }

    data_parallel = ctx.group.sharded and cfg.distributed
    if data_parallel:  # DDP weights differ from one process's within float error
        description["data_parallel_ranks"] = ctx.group.world_size
    description = versioned(description, FEATURES, FINETUNING)

    def compute() -> dict:
        if ctx.group.is_main:
            print(f"fine-tuning every layer of the {cfg.stream} stream: this step trains the "
                  "backbone, so its features cannot come from the feature cache until it is "
                  "done", file=sys.stderr)
        stream = copy.deepcopy(base)
        for parameter in stream.parameters():
            parameter.requires_grad_(True)
        loader = train.training_loader(ctx.config.seed)  # shuffled
        model = finetune_classifier(
            stream, num_classes,
            slice_each_batch(loader, ctx.group) if data_parallel else loader,
            epochs=cfg.epochs, lr=cfg.lr, device=ctx.device, seed=ctx.config.seed,
            group=ctx.group if data_parallel else SINGLE,
        )
        return {k: v.detach().cpu() for k, v in model.streams[0].state_dict().items()}

    get_or_compute = collective_get_or_compute if data_parallel else main_get_or_compute
    return ctx.copy_stream(base, get_or_compute(ctx.cache, description, compute, ctx.group))

"""Forward passes per device: precision, memory layout and loader workers."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from ctxfusion.execution import Execution, default_num_workers
from ctxfusion.features import extract_features
from ctxfusion.streams import create_stream


def test_auto_is_bfloat16_on_a_gpu_only_and_channels_last_on_both() -> None:
    gpu = Execution.resolve(torch.device("cuda", 0))
    assert (gpu.precision, gpu.memory_format) == ("bfloat16", "channels_last")
    cpu = Execution.resolve(torch.device("cpu"))
    assert (cpu.precision, cpu.memory_format) == ("float32", "channels_last")
    assert default_num_workers(torch.device("cpu")) == 0
    assert Execution.resolve(torch.device("cpu"), "bfloat16").precision == "bfloat16"


def _features(execution: Execution, num_workers: int = 0) -> torch.Tensor:
    torch.manual_seed(0)
    images, labels = torch.rand(12, 3, 64, 64), torch.arange(12)
    loader = DataLoader(TensorDataset(images, labels), batch_size=5, num_workers=num_workers)
    stream = create_stream("scenes-object-resnet18")
    features, out_labels, _ = extract_features({"fg": stream}, loader, execution=execution)
    assert torch.equal(out_labels, labels)  # the order is kept
    return features["fg"]


def test_bfloat16_and_channels_last_features_are_close_to_float32() -> None:
    reference = _features(Execution(torch.device("cpu")))
    bfloat16 = _features(Execution(torch.device("cpu"), "bfloat16"))
    assert not torch.equal(bfloat16, reference)  # autocast did run in bfloat16
    for execution in (Execution(torch.device("cpu"), "bfloat16"),
                      Execution(torch.device("cpu"), "float32", "channels_last")):
        features = _features(execution)
        assert features.dtype == torch.float32 and not features.is_inference()
        cosine = torch.nn.functional.cosine_similarity(features, reference)
        assert cosine.min() > 0.99, (execution, cosine.min())


def test_loader_workers_give_the_same_features_in_the_same_order() -> None:
    reference = _features(Execution(torch.device("cpu")))
    assert torch.equal(_features(Execution(torch.device("cpu")), num_workers=2), reference)

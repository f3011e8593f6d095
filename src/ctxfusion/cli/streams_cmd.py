"""``ctxfusion streams``: list the registered streams and where their weights are."""

from __future__ import annotations

import argparse
import json

from ctxfusion.streams.registry import list_streams, stream_info
from ctxfusion.streams.weights import cache_dir, locate_weights


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of the ``streams`` subcommand."""
    parser.add_argument("--json", action="store_true", help="print one JSON object per stream")


def stream_rows() -> list[dict]:
    """One row per registered stream: facts from the registry and the weights' location."""
    rows = []
    for name in list_streams():
        entry = stream_info(name)
        record = entry.weights
        found = locate_weights(record) if record else None
        rows.append({
            "name": name,
            "domain": entry.domain,
            "feature_dim": entry.feature_dim,
            "input_size": entry.input_size,
            "preprocessing": entry.preprocessing.to_dict(),
            "weights_file": record.file_name if record else None,
            "url": record.url if record else None,
            "sha256": record.sha256 if record else None,
            "present": str(found) if found else None,
            "description": entry.description,
        })
    return rows


def main(args: argparse.Namespace) -> int:
    """Print the table (or JSON lines); no weights are downloaded."""
    rows = stream_rows()
    if getattr(args, "json", False):
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"weights cache: {cache_dir()}")
    for row in rows:
        where = row["present"] or (
            "missing (downloaded on first use unless CTXFUSION_OFFLINE=1)" if row["url"]
            else "missing"
        )
        pre = row["preprocessing"]
        normalise = (f"mean {pre['mean']}, std {pre['std']}" if pre["mean"] is not None
                     else pre["description"] or "its own preprocessing")
        print(
            f"{row['name']}\n  domain {row['domain']}, {row['feature_dim']}-d features, "
            f"input {row['input_size']} px, {normalise}\n  weights: {row['weights_file']}  "
            f"url: {row['url'] or '-'}\n  present: {where}"
        )
    print("also: torchvision:<model> (torchvision.models.list_models()) and timm:<model> "
          "(timm.list_models()), any classification model, features at the global pool")
    return 0

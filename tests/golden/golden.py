"""Golden references: small stored outputs of each computation, tied to its version.

Every golden test computes a small deterministic case and calls :func:`check` with the
computation's version constant (the one written next to its code and part of its cache key).

* Output equal to the reference (within the stated tolerance): the test passes.
* Output changed, version unchanged: the test fails and names the version constant to bump.
  A change that alters results must bump the version, so that no cache made by the old code
  is reused and the examples in ``docs/examples/`` are rerun (CONTRIBUTING.md).
* Version changed: the test fails until the reference is regenerated with ``make golden``.

``make golden`` (``CTXFUSION_GOLDEN=regenerate``) writes the references whose version differs
from the stored one, or that are missing. It never rewrites a reference whose version is
unchanged: a changed output under an unchanged version still fails, so regeneration cannot
hide a forgotten bump. ``CTXFUSION_GOLDEN=force`` rewrites all of them (after a change to a
golden test's own inputs).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

REFERENCES = Path(__file__).resolve().parent / "references"
MODE = os.environ.get("CTXFUSION_GOLDEN", "check").strip().lower()


def summarise(tensor: torch.Tensor, samples: int = 24) -> dict[str, Any]:
    """A small, stable picture of a tensor: shape, dtype, sum, sum of absolute values and
    ``samples`` entries at evenly spaced flat positions (enough to see any change)."""
    flat = tensor.detach().cpu().reshape(-1)
    values = flat.double()
    n = flat.numel()
    positions = sorted({round(i * (n - 1) / max(samples - 1, 1)) for i in range(samples)}) \
        if n else []
    return {
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype).replace("torch.", ""),
        "sum": float(values.sum()) if n else 0.0,
        "abs_sum": float(values.abs().sum()) if n else 0.0,
        "samples": [float(flat[i]) if flat.is_floating_point() else int(flat[i])
                    for i in positions],
    }


def _differences(path: str, expected: Any, found: Any, atol: float, rtol: float) -> list[str]:
    if isinstance(expected, Mapping) and isinstance(found, Mapping):
        out = []
        for key in sorted(set(expected) | set(found)):
            if key not in found or key not in expected:
                where = "reference" if key in expected else "output"
                out.append(f"{path}.{key}: only in the {where}")
            else:
                out += _differences(f"{path}.{key}", expected[key], found[key], atol, rtol)
        return out
    if isinstance(expected, Sequence) and not isinstance(expected, str) \
            and isinstance(found, Sequence) and not isinstance(found, str):
        if len(expected) != len(found):
            return [f"{path}: length {len(expected)} in the reference, {len(found)} now"]
        out = []
        for i, (e, f) in enumerate(zip(expected, found, strict=True)):
            out += _differences(f"{path}[{i}]", e, f, atol, rtol)
        return out
    if isinstance(expected, float) or isinstance(found, float):
        if isinstance(expected, (int, float)) and isinstance(found, (int, float)) and (
                (math.isnan(expected) and math.isnan(found))
                or math.isclose(expected, found, rel_tol=rtol, abs_tol=atol)):
            return []
        return [f"{path}: {expected!r} in the reference, {found!r} now"]
    return [] if expected == found else [f"{path}: {expected!r} in the reference, {found!r} now"]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=True))


def check(name: str, version_name: str, version: int, output: Mapping[str, Any], *,
          atol: float = 0.0, rtol: float = 0.0) -> None:
    """Compare ``output`` with ``references/<name>.json`` (see the module docstring).

    ``version_name``: the dotted name of the version constant (named in failure messages);
    ``atol``/``rtol``: the tolerance for floats (0: exact, for computations that are
    deterministic on a CPU).
    """
    path = REFERENCES / f"{name}.json"
    output = _jsonable(output)
    stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    stale = stored is None or stored.get("version") != version
    if MODE == "force" or (MODE == "regenerate" and stale):
        REFERENCES.mkdir(parents=True, exist_ok=True)
        record = {"computation": name, "version_name": version_name, "version": version,
                  "tolerance": {"atol": atol, "rtol": rtol}, "output": output}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)
        return
    if stored is None:
        raise AssertionError(f"golden reference {path} is missing: run `make golden` to "
                             f"write it from the current code ({version_name} = {version})")
    if stale:
        raise AssertionError(
            f"{version_name} is {version} but the golden reference {path.name} was made with "
            f"version {stored.get('version')}: regenerate it with `make golden` and rerun the "
            f"examples in docs/examples/ (CONTRIBUTING.md)")
    problems = _differences(name, stored["output"], output, atol, rtol)
    if problems:
        shown = "\n  ".join(problems[:12]) + (f"\n  ... {len(problems) - 12} more"
                                              if len(problems) > 12 else "")
        raise AssertionError(
            f"the output of {name!r} changed but {version_name} is still {version}: bump "
            f"{version_name} (then `make golden` and rerun docs/examples/, see CONTRIBUTING.md),"
            f" or undo the change.\n  {shown}")

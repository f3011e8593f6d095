"""Finding, downloading, verifying and safely loading pretrained weights.

Resolution order of :func:`resolve_weights` (first hit wins):

1. an explicit path given by the user (``create_stream(name, weights=PATH)``);
2. the cache ``$CTXFUSION_HOME/weights`` (default ``~/.cache/ctxfusion/weights``);
3. read-only places: ``$CTXFUSION_SHARED/weights`` and its sub-folders (default: the folder
   ``shared`` beside the repository root), files shipped inside installed packages, and the
   caller's ``extra_locations`` (e.g. torch hub's own cache);
4. a download of the record's URL into the cache, unless ``CTXFUSION_OFFLINE=1``; when the
   URL's host does not answer within seconds (:mod:`ctxfusion.network`) the error names the
   file to place and where, without waiting for timeouts or retries.

Verification rule: a file found by name (steps 2-4) is always checked against the record: the
full sha256 when the record has one, else the hash prefix in the file name (torch hub's
``name-<prefix>.ext`` convention, the check ``torch.hub`` itself does). An explicit path is
checked the same way **only when its file name is the registered one** (it claims to be that
file); a file with any other name is the user's own checkpoint: it is loaded without a hash
check, its structure is still validated by the stream, and its sha256 is recorded.
"""

from __future__ import annotations

import functools
import os
import pickle
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ctxfusion.errors import UnsafeCheckpointError, WeightsError
from ctxfusion.io import sha256_file
from ctxfusion.network import unreachable_reason
from ctxfusion.paths import home_dir, shared_dir
from ctxfusion.streams.base import WeightRecord

OFFLINE_ENV = "CTXFUSION_OFFLINE"

#: file name -> function returning where that file already is (inside an installed package,
#: another library's cache), or None.
_PACKAGED: dict[str, Callable[[], Path | None]] = {}


def cache_dir() -> Path:
    """``$CTXFUSION_HOME/weights`` (default ``~/.cache/ctxfusion/weights``); not created here."""
    return home_dir() / "weights"


def is_offline() -> bool:
    """True when ``CTXFUSION_OFFLINE`` is set to 1/true/yes: no download is ever attempted."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def register_packaged_weights(file_name: str, locate: Callable[[], Path | None]) -> None:
    """Declare a read-only place of ``file_name`` (an installed package, torch hub's cache)."""
    _PACKAGED[file_name] = locate


def hash_prefix(record: WeightRecord) -> str | None:
    """The sha256 prefix embedded in the file name (torch hub convention), or None."""
    match = torch.hub.HASH_REGEX.search(record.file_name)
    return match.group(1) if match and len(match.group(1)) >= 8 else None


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, memoised on (path, mtime, size) so a stream hashes its weights once."""
    stat = os.stat(path)
    return _sha256_cached(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


def verify_weights(path: Path, record: WeightRecord, stream_name: str) -> str:
    """Check ``path`` against the record's sha256 (or file-name prefix); return its sha256."""
    actual = file_sha256(path)
    if record.sha256:
        if actual != record.sha256.lower():
            raise WeightsError(
                f"weights file {path} for stream {stream_name!r} has sha256 {actual}, expected "
                f"{record.sha256}: the file is corrupt or not {record.file_name!r}; delete it "
                "(it will be fetched again) or pass the right file"
            )
    elif (prefix := hash_prefix(record)) and not actual.startswith(prefix):
        raise WeightsError(
            f"weights file {path} for stream {stream_name!r} has sha256 {actual}, which does not "
            f"start with {prefix!r} (the hash prefix in the registered name {record.file_name!r}): "
            "the file is corrupt or a different checkpoint; delete it or rename it if it is your "
            "own checkpoint (files under other names are loaded without a hash check)"
        )
    return actual


def _candidates(record: WeightRecord, extra_locations: Iterable[Path]) -> list[Path]:
    name = record.file_name
    places = [cache_dir() / name]
    shared = shared_dir() / "weights"
    places += [shared / name, *sorted(shared.glob(f"*/{name}"))] if shared.is_dir() else []
    locate = _PACKAGED.get(name)
    packaged = locate() if locate else None
    places += [packaged] if packaged else []
    places += [Path(p) for p in extra_locations]
    return places


def locate_weights(record: WeightRecord, extra_locations: Iterable[Path] = ()) -> Path | None:
    """Where the registered file already is (cache, shared, package, extras), or None."""
    for place in _candidates(record, extra_locations):
        if place.is_file():
            return place
    return None


def _download(record: WeightRecord, stream_name: str, target: Path) -> Path:
    reason = unreachable_reason(record.url or "")
    if reason is not None:  # offline: say so in seconds instead of waiting on the socket
        raise WeightsError(
            f"weights for stream {stream_name!r} are not cached and cannot be downloaded "
            f"({reason}): download {record.url} and place it at {target}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        torch.hub.download_url_to_file(record.url, str(tmp), progress=True)
        verify_weights(tmp, record, stream_name)
        os.replace(tmp, target)
    except WeightsError:
        raise
    except (OSError, ValueError) as exc:  # urllib's URLError/HTTPError derive from OSError
        raise WeightsError(
            f"could not download weights for stream {stream_name!r} from {record.url}: {exc}. "
            f"Download {record.file_name!r} by hand and place it at {target}"
        ) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def resolve_weights(
    record: WeightRecord,
    path: str | os.PathLike | None = None,
    stream_name: str = "",
    extra_locations: Iterable[Path] = (),
) -> Path:
    """The verified local path of a stream's weights (see the module docstring for the order)."""
    stream_name = stream_name or record.file_name
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise WeightsError(
                f"weights file {explicit} for stream {stream_name!r} does not exist"
            )
        if explicit.name == record.file_name:
            verify_weights(explicit, record, stream_name)
        return explicit
    found = locate_weights(record, extra_locations)
    if found is not None:
        verify_weights(found, record, stream_name)
        return found
    target = cache_dir() / record.file_name
    if record.url and not is_offline():
        return _download(record, stream_name, target)
    why = (
        f"downloads are disabled ({OFFLINE_ENV}=1 is set; unset it to download from {record.url})"
        if record.url
        else "the file has no download URL"
    )
    source = f" ({record.source})" if record.source else ""
    raise WeightsError(
        f"weights for stream {stream_name!r} not found: expected file {record.file_name!r}"
        f"{source}, URL: {record.url or 'none'}; {why}. Place the file at {target} "
        f"(or under {shared_dir() / 'weights'}), or pass its path with "
        f"create_stream({stream_name!r}, weights=PATH)"
    )


def load_torch_checkpoint(path: str | os.PathLike, *, encoding: str | None = None) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, refusals made clear errors.

    ``encoding="latin1"`` reads checkpoints saved under Python 2 (CSAIL's Places365 models);
    torch passes it to its weights-only unpickler, which never falls back to full unpickling.
    """
    kwargs: dict[str, Any] = {"map_location": "cpu", "weights_only": True}
    try:
        with warnings.catch_warnings():
            if encoding is not None:
                kwargs["encoding"] = encoding
                # torch warns that pickle_load_args "only work" without weights_only, yet it
                # hands `encoding` to the weights-only unpickler too (tested in test_streams).
                warnings.filterwarnings("ignore", message="pickle_load_args only works")
            return torch.load(path, **kwargs)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        # torch's message is long; keep the line naming the refused global when there is one.
        detail = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line),
                      lines[0] if lines else "no detail")
        raise UnsafeCheckpointError(
            f"refused to load checkpoint {path}: it is not a plain tensor/state-dict checkpoint "
            f"and loading it would run code or build arbitrary objects ({detail}). Re-save it "
            "as a state dict with torch.save(model.state_dict(), ...) from a trusted source"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise WeightsError(f"cannot read checkpoint {path}: {exc}") from exc


def load_state_dict_checked(
    module: torch.nn.Module,
    state_dict: Any,
    source: str | os.PathLike,
    stream_name: str,
    head_key: str,
) -> None:
    """``module.load_state_dict(state_dict)`` with errors a user can act on.

    ``head_key`` names the classifier weight (e.g. ``fc.weight``) whose row count is the number
    of pretrained classes: a checkpoint fine-tuned to another class count is named as such.
    """
    if not isinstance(state_dict, dict) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise WeightsError(
            f"checkpoint {source} for stream {stream_name!r} is a {type(state_dict).__name__}, "
            "expected a state dict (parameter name -> tensor)"
        )
    expected = module.state_dict()
    if head_key in state_dict and head_key in expected:
        got, want = state_dict[head_key].shape[0], expected[head_key].shape[0]
        if got != want:
            raise WeightsError(
                f"checkpoint {source} has a {got}-way classifier ({head_key} has shape "
                f"{tuple(state_dict[head_key].shape)}), but stream {stream_name!r} is pretrained "
                f"on {want} classes: pass the original {want}-class checkpoint"
            )
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        details = []
        for label, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                details.append(f"{label} keys: {', '.join(keys[:5])}{more}")
        raise WeightsError(
            f"checkpoint {source} does not fit stream {stream_name!r}: {'; '.join(details)}"
        )
    check_state_tensors(state_dict, expected, source, stream_name)
    module.load_state_dict(state_dict)


def check_state_tensors(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                        source: str | os.PathLike, stream_name: str) -> None:
    """WeightsError naming the file and each tensor whose shape differs from the model's
    (expected and found) or that holds a NaN or an infinity; tensors absent on either side
    are left to the caller."""
    wrong = [f"{k}: expected {tuple(expected[k].shape)}, found {tuple(state[k].shape)}"
             for k in sorted(set(expected) & set(state)) if expected[k].shape != state[k].shape]
    if wrong:
        more = f" (+{len(wrong) - 5} more)" if len(wrong) > 5 else ""
        raise WeightsError(f"{source}: tensor shapes do not fit stream {stream_name!r}: "
                           f"{'; '.join(wrong[:5])}{more}")
    bad = [k for k, v in state.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        raise WeightsError(f"{source}: tensor {', '.join(bad[:5])}{more} holds NaN or infinite "
                           f"values: the weights of stream {stream_name!r} are damaged; "
                           "replace the file")


def load_state_file(path: str | os.PathLike, stream_name: str) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a torch checkpoint (``weights_only``).

    A checkpoint wrapping its state dict under ``state_dict`` or ``model`` (training scripts)
    is unwrapped, and DataParallel's ``module.`` prefix is dropped.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} for stream {stream_name!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises several types for a damaged header
            raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from None
    state = load_torch_checkpoint(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise WeightsError(f"checkpoint {path} for stream {stream_name!r} holds "
                           f"{type(state).__name__}, expected a state dict")
    return {str(k).removeprefix("module."): v for k, v in state.items()}

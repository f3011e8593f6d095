"""Errors a user can act on.

Every error the project raises on bad input derives from :class:`CtxfusionError`; the CLI
prints its message as ``error: <message>`` and exits with status 2, without a traceback.
Messages name the file, the key or value at fault, and what would be valid.
"""


class CtxfusionError(Exception):
    """Base class: a problem with the user's input, files or environment."""


class ConfigError(CtxfusionError):
    """An experiment config or command-line setting is invalid."""


class DataError(CtxfusionError):
    """A dataset, annotation file, manifest or image cannot be used."""


class WeightsError(CtxfusionError):
    """Pretrained weights are missing, corrupt, mismatched or unsafe."""


class UnsafeCheckpointError(WeightsError):
    """A checkpoint would run code or build arbitrary objects when loaded."""


class ResourceError(CtxfusionError):
    """The machine ran short of something the settings can lower (e.g. device memory)."""

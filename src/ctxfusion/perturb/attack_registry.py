"""The registry of named attacks (the torchattacks pattern: one class per attack).

An attack is a subclass of :class:`Attack` registered with ``@register_attack("name")``. It
declares its settings (:class:`Setting`: type, default, lower bound, choices), which
:meth:`Attack.check` validates with errors naming the attack and the setting, says which of
the experiment's settings it takes (:meth:`Attack.settings_from`) and builds the
``attack(images, labels) -> adversarial`` callable (:meth:`Attack.build`). ``ATTACKS`` and
``ITERATIVE_ATTACKS`` are live views of the registered names, so the config accepts an attack
as soon as its module has been imported.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError
from ..versioning import REGISTRY, Computation, computation

AttackFn = Callable[[Any, Any], Any]

_ATTACKS: dict[str, type[Attack]] = {}


@dataclass(frozen=True)
class Setting:
    """One setting an attack takes: its type, default and allowed values.

    ``default=None`` means "computed by ``build``" (e.g. a step size of eps / 4) unless
    ``required``; ``minimum`` is a lower bound (``>= minimum``, or ``> minimum`` when
    ``exclusive``); ``choices`` lists the valid values of a string setting.
    """

    type: type | tuple[type, ...]
    default: Any = None
    minimum: float | None = None
    exclusive: bool = False
    choices: tuple[str, ...] | None = None
    required: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid for this setting, or None when it is."""
        kinds = self.type if isinstance(self.type, tuple) else (self.type,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            return f"has the wrong type: expected {names}"
        if self.minimum is not None:
            if self.exclusive and not value > self.minimum:
                return f"must be > {self.minimum:g}"
            if not self.exclusive and not value >= self.minimum:
                return f"must be >= {self.minimum:g}"
        if self.choices is not None and value not in self.choices:
            return f"valid values are {', '.join(self.choices)}"
        return None


class Attack:
    """Base class of a registered attack; subclasses override the class attributes and build.

    ``iterative``: an iterative white-box attack, valid in ``whitebox.attacks`` (``fgsm`` is
    run by the one-gradient FGSM sweep instead). ``maskable``: it can be restricted to a
    threat region (:func:`ctxfusion.perturb.regions.attack_in_region`): every call of the
    model sees the whole batch it was given. ``version``: the version of what the attack
    computes (bump it when a change alters its adversarial images); registering declares the
    computation ``attack.<name>`` (:mod:`ctxfusion.versioning`), which keys its cached outcomes.
    """

    name: ClassVar[str] = ""
    iterative: ClassVar[bool] = False
    maskable: ClassVar[bool] = True
    settings: ClassVar[dict[str, Setting]] = {}
    version: ClassVar[int] = 1
    computation: ClassVar[Computation]

    @classmethod
    def check(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """Validate ``settings``; returns them with the declared defaults filled in."""
        for key, value in settings.items():
            if key not in cls.settings:
                valid = ", ".join(cls.settings) or "none"
                raise ConfigError(f"attack {cls.name!r}: unknown setting {key!r}; "
                                  f"valid settings: {valid}")
            problem = cls.settings[key].problem(value)
            if problem:
                raise ConfigError(f"attack {cls.name!r}: setting {key!r} = {value!r}: {problem}")
        for key, spec in cls.settings.items():
            if spec.required and key not in settings:
                raise ConfigError(f"attack {cls.name!r} needs the setting {key!r}")
        return {**{k: s.default for k, s in cls.settings.items()}, **settings}

    @classmethod
    def settings_from(cls, whitebox: Any, num_classes: int) -> dict[str, Any]:
        """The settings this attack takes from the config's ``whitebox`` section and the
        number of classes of the attacked model (none by default)."""
        return {}

    @classmethod
    def build(cls, model: Any, eps: float, **settings: Any) -> AttackFn:
        """The callable ``attack(images, labels) -> adversarial images`` (settings checked)."""
        raise NotImplementedError


def register_attack(name: str) -> Callable[[type[Attack]], type[Attack]]:
    """Class decorator: register an :class:`Attack` subclass under ``name``."""

    def decorate(cls: type[Attack]) -> type[Attack]:
        if not (isinstance(cls, type) and issubclass(cls, Attack)):
            raise TypeError(f"@register_attack({name!r}) decorates an Attack subclass")
        if name in _ATTACKS:
            raise ValueError(f"attack {name!r} is already registered")
        cls.name = name
        summary = (cls.__doc__ or name).strip().splitlines()[0]
        cls.computation = computation(f"attack.{name}", cls.version, summary)
        _ATTACKS[name] = cls
        return cls

    return decorate


def unregister_attack(name: str) -> None:
    """Remove a registered attack (tests register toy ones)."""
    _ATTACKS.pop(name, None)
    REGISTRY.pop(f"attack.{name}", None)


def attack_class(name: str) -> type[Attack]:
    """The attack registered as ``name``; ConfigError listing the registered ones if none."""
    if name not in _ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; valid attacks: {', '.join(_ATTACKS)}")
    return _ATTACKS[name]


class _Names(Collection[str]):
    """A live, read-only view of the registered names that satisfy ``keep``."""

    def __init__(self, keep: Callable[[type[Attack]], bool]) -> None:
        self._keep = keep

    def _names(self) -> list[str]:
        return [name for name, cls in _ATTACKS.items() if self._keep(cls)]

    def __contains__(self, name: object) -> bool:
        return name in _ATTACKS and self._keep(_ATTACKS[name])  # type: ignore[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(tuple(self._names()))


ATTACKS: Collection[str] = _ATTACKS.keys()
ITERATIVE_ATTACKS: Collection[str] = _Names(lambda cls: cls.iterative)

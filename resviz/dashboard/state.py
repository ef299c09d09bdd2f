"""The dashboard's view state: sidebar values, per-preset defaults and shareable query parameters.

Every widget has a fixed session-state key (the names below). The URL carries only the values
that differ from the chosen preset's defaults, so ``?model=resnet56&shortcut=none`` is a complete,
readable link to the plain twin of ResNet-56. Models the user brings (``pkg.mod:factory``) are
declared when the server is launched (:func:`launch_models`), never by a URL: a factory runs the
user's code, so a link may only select one already declared. Parsing never raises: a bad parameter falls back to
its default and is reported (quoted clipped, :func:`resviz.errors.quote`), because a pasted link
should always open something. The widgets' ranges (:data:`LIMITS`) lie inside :mod:`resviz.limits`;
the architecture fields are text and are bounded when the spec is validated.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from resviz.dashboard import PAGES
from resviz.errors import quote
from resviz.records import Summary
from resviz.spec import BlockKind, ResNetSpec, Shortcut, Stem, parse_bool, parse_int_list
from resviz.zoo import CUSTOM, custom, derive, get_spec, list_models

DEFAULT_MODEL = "resnet50"
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: What the tracer runs: float32, or bfloat16/float16 autocast (float16 on CUDA only).
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
BLOCKS: tuple[str, ...] = tuple(b.value for b in BlockKind)
SHORTCUTS: tuple[str, ...] = tuple(s.value for s in Shortcut)
STEMS: tuple[str, ...] = tuple(s.value for s in Stem)
#: Traces run at this side length at most by default, with a batch of 2; the time of the default
#: trace is in :mod:`resviz.dashboard.pages_traced`.
TRACE_SIDE = 64
TRACE_BATCH = 2

SPEC_KEYS: tuple[str, ...] = ("block", "layers", "widths", "groups", "wpg", "shortcut", "preact", "stem")
INT_KEYS: tuple[str, ...] = ("groups", "wpg", "input", "tsize", "batch", "seed")
CHOICES: dict[str, tuple[str, ...]] = {
    "block": BLOCKS, "shortcut": SHORTCUTS, "stem": STEMS, "device": DEVICES, "dtype": DTYPES,
    "page": PAGES,
}
LIMITS: dict[str, tuple[int, int]] = {
    "groups": (1, 256), "wpg": (1, 1024), "input": (1, 1024), "tsize": (1, 512), "batch": (1, 256),
    "seed": (0, 2**31 - 1),
}


#: What the model selectbox shows for a launch-declared model, before its factory string.
YOURS_LABEL = "yours: "
#: The input side of a launch-declared model until the user changes it (ImageNet's, 3 channels).
YOURS_SIDE = 224


class _ArgError(Exception):
    """A launch argument argparse could not read."""


class _LaunchParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting: the page shows one line."""

    def error(self, message: str) -> Any:  # argparse's hook; the default calls sys.exit
        raise _ArgError(message)


def read_launch(argv: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """``--model TARGET`` (repeatable) from the script's arguments -> the factory targets and the
    problems (one line each). Only ``pkg.mod:factory`` style targets are accepted
    (:func:`resviz.api.factories.is_factory`); nothing is imported or called here."""
    parser = _LaunchParser(prog="app.py", add_help=False, allow_abbrev=False)
    parser.add_argument("--model", action="append", default=[])
    try:
        known, _ = parser.parse_known_args(list(argv))
    except _ArgError as exc:
        return (), [f"launch arguments: {exc}"]
    if not known.model:
        return (), []
    from resviz.api.factories import is_factory  # imports torch: only when models were declared

    accepted: list[str] = []
    problems: list[str] = []
    for raw in known.model:
        target = str(raw).strip()
        if not is_factory(target):
            problems.append(f"--model {quote(raw)} is not a model factory (expected pkg.mod:factory, "
                            "file.py:factory, torchvision:NAME or timm:NAME)")
        elif target not in accepted:
            accepted.append(target)
    return tuple(accepted), problems


def launch_models() -> tuple[tuple[str, ...], list[str]]:
    """The models declared when the dashboard was started (``streamlit run app.py -- --model X``,
    ``resviz dashboard --model X``: Streamlit hands the arguments after ``--`` to the script as
    ``sys.argv``), and the problems found reading them."""
    return read_launch(sys.argv[1:])


def is_yours(model: str, launch: Sequence[str]) -> bool:
    """Whether ``model`` is one of the launch-declared models (not a preset nor ``custom``)."""
    return model in launch


def model_choices(launch: Sequence[str] = ()) -> list[str]:
    """The presets, their plain twins, ``custom``, then the launch-declared models."""
    return [*list_models(include_plain=True), CUSTOM, *launch]


def model_label(model: str, launch: Sequence[str] = ()) -> str:
    """How the model selectbox shows ``model``: launch-declared ones are marked as the user's."""
    return f"{YOURS_LABEL}{model}" if is_yours(model, launch) else model


def _ints(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)


def spec_values(spec: ResNetSpec) -> dict[str, Any]:
    """The sidebar values that describe ``spec``."""
    return {
        "block": spec.block.value, "layers": _ints(spec.layers), "widths": _ints(spec.widths),
        "groups": spec.groups, "wpg": spec.width_per_group, "shortcut": spec.shortcut.value,
        "preact": spec.preact, "stem": spec.stem.value,
    }


def defaults(model: str, launch: Sequence[str] = ()) -> dict[str, Any]:
    """Every widget's default for ``model`` (a custom spec starts from ResNet-18's values; a
    launch-declared model keeps ResNet-50's hidden architecture fields and starts at 224x224)."""
    yours = is_yours(model, launch)
    spec = get_spec(DEFAULT_MODEL if yours else model if model != CUSTOM else "resnet18")
    side = YOURS_SIDE if yours else spec.default_input_size[-1]
    return {
        "model": model, **spec_values(spec), "input": side, "tsize": min(side, TRACE_SIDE),
        "batch": TRACE_BATCH, "device": "auto", "dtype": "float32", "seed": 0, "page": PAGES[0],
    }


def parse_params(params: Mapping[str, str], launch: Sequence[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """Query parameters -> widget values (defaults filled in) and a list of ignored parameters.

    ``model`` may name a preset, ``custom`` or one of the ``launch`` models; any other factory
    string is ignored like an unknown name, so a link never makes the server import code.
    """
    problems: list[str] = []
    model = str(params.get("model", DEFAULT_MODEL))
    if model not in model_choices(launch):
        problems.append(f"unknown model {quote(model)}")
        model = DEFAULT_MODEL
    values = defaults(model, launch)
    for key, raw in params.items():
        if key == "model" or key not in values:
            continue
        try:
            values[key] = _parse_one(key, str(raw))
        except ValueError:
            problems.append(f"{key}={quote(raw)}")
    return values, problems


def _parse_one(key: str, raw: str) -> Any:
    if key in INT_KEYS:
        value = int(raw)
        lo, hi = LIMITS[key]
        if not lo <= value <= hi:
            raise ValueError(key)
        return value
    if key == "preact":
        return parse_bool(raw, key)  # the CLI's reading of yes/no; a ResvizError is a ValueError
    if key in CHOICES and raw not in CHOICES[key]:
        raise ValueError(key)
    return raw


def to_params(values: Mapping[str, Any], launch: Sequence[str] = ()) -> dict[str, str]:
    """Widget values -> the shortest query parameters that reproduce them."""
    model = str(values.get("model", DEFAULT_MODEL))
    base = defaults(model, launch)
    out = {"model": model}
    for key, default in base.items():
        if key == "model" or key not in values or values[key] == default:
            continue
        value = values[key]
        out[key] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out


def init_session(
    session: MutableMapping[Any, Any], params: Mapping[str, str], launch: Sequence[str] = (),
) -> list[str]:
    """Fill the widget keys from the URL on a session's first run; later runs keep the widgets'."""
    if session.get("_resviz_init"):
        return []
    values, problems = parse_params(params, launch)
    for key, value in values.items():
        session[key] = value
    session["_resviz_init"] = True
    return problems


def apply_preset(session: MutableMapping[Any, Any], launch: Sequence[str] = ()) -> None:
    """On a model change: load the new preset's architecture and input sizes into the widgets.

    Batch, device, dtype and seed are the user's run settings and survive the switch; a switch
    to ``custom`` keeps the current architecture as the starting point.
    """
    model = str(session.get("model", DEFAULT_MODEL))
    if model == CUSTOM:
        return
    base = defaults(model, launch)
    for key in (*SPEC_KEYS, "input", "tsize"):
        session[key] = base[key]


@dataclass(frozen=True)
class ViewState:
    """The sidebar's values, read once per run; pages receive this and nothing from widgets.

    No field has a default: :func:`defaults` is the one place they are kept, and
    :func:`init_session` fills every key before the first read.
    """

    model: str
    block: str
    layers: str
    widths: str
    groups: int
    wpg: int
    shortcut: str
    preact: bool
    stem: str
    input: int
    tsize: int
    batch: int
    device: str
    dtype: str
    seed: int
    page: str

    @classmethod
    def from_mapping(cls, values: Mapping[Any, Any]) -> ViewState:
        return cls(**{key: values[key] for key in VIEW_KEYS})

    def values(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def spec(self) -> ResNetSpec:
        """The spec the sidebar describes, validated; a one-line :class:`ResvizError` if impossible.

        A preset's values give the preset, its values with no shortcut its plain twin, anything
        else ``<preset>-custom`` (:func:`resviz.zoo.derive`); ``custom`` is :func:`resviz.zoo.custom`.
        """
        changes: dict[str, Any] = {
            "block": self.block, "layers": parse_int_list(self.layers, "blocks per stage"),
            "widths": parse_int_list(self.widths, "widths"), "groups": int(self.groups),
            "width_per_group": int(self.wpg), "shortcut": self.shortcut, "preact": bool(self.preact),
            "stem": self.stem,
        }
        if self.model == CUSTOM:
            return custom(changes)
        return derive(get_spec(self.model), changes)

    def subject(self, launch: Sequence[str] = ()) -> Subject:
        """What the pages measure: a launch-declared factory as named, else :meth:`spec`."""
        if is_yours(self.model, launch):
            return Subject(self.model, self.model, 3, None)
        spec = self.spec()
        return Subject(spec.to_dict(), spec.name, spec.in_channels, spec)

    def input_shape(self, in_channels: int = 3) -> tuple[int, int, int, int]:
        """Per-image input of the static analysis (batch 1, as papers and torchvision count)."""
        return (1, in_channels, int(self.input), int(self.input))

    def trace_shape(self, in_channels: int = 3) -> tuple[int, int, int, int]:
        return (int(self.batch), in_channels, int(self.tsize), int(self.tsize))


#: Every view key: the widgets' session-state keys that :func:`defaults` fills.
VIEW_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ViewState))


@dataclass(frozen=True)
class Subject:
    """The model a page shows: a resviz spec, or a launch-declared factory resviz did not build.

    ``key`` is what the cached computations receive and what :mod:`resviz.api` resolves: the
    spec's dict (the architecture itself, not an object identity) or the factory string, which
    the api imports and calls inside the computation; no module is ever kept.
    """

    key: dict[str, Any] | str
    name: str
    in_channels: int
    spec: ResNetSpec | None

    @property
    def yours(self) -> bool:
        """Whether a factory builds it (no spec: no plain twin)."""
        return self.spec is None


@dataclass(frozen=True)
class Upload:
    """An uploaded checkpoint: its file name, a content digest (the cache key) and its bytes."""

    name: str
    key: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class PageContext:
    """What every page receives: the sidebar state, the model, its summary and any checkpoint."""

    view: ViewState
    subject: Subject
    summary: Summary
    ckpt: Upload | None = None

    @property
    def spec(self) -> ResNetSpec | None:
        """The resviz spec, ``None`` for a launch-declared factory's model."""
        return self.subject.spec

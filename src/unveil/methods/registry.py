"""The method registry: every trainable method under its name, with what the rest of unveil needs to know of it.

A method is one module under ``methods/`` that calls :func:`register` once with a :class:`MethodSpec`: its options
(the ``model:`` block of a training config), its training adapter (what the one loop trains), its inference loader
(a checkpoint to a restorer or an analysis model), its presets and the data it reads. The training loop, config
validation, checkpoint loading and the CLI read the registry and never name a method. Methods of other packages
register through the ``unveil.methods`` entry-point group (each entry point names a module to import).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

from unveil.config import Config
from unveil.errors import UnveilError

if TYPE_CHECKING:
    import torch

    from unveil.restorers import Restorer
    from unveil.train.checkpoint import Checkpoint
    from unveil.train.method import Method

#: The methods unveil ships, imported on first use of the registry.
BUILTIN_MODULES = ("unveil.methods.cyclegan", "unveil.methods.pix2pix", "unveil.methods.deoccluder",
                   "unveil.methods.classifier", "unveil.methods.manipulator", "unveil.methods.stylegan2",
                   "unveil.methods.segmenter")
ENTRY_POINT_GROUP = "unveil.methods"

# manipulator: edits expressions (seed 002); occluder masks: finds hidden pixels (the segmenter)
Produces = Literal["restorer", "analysis model", "manipulator", "occluder masks"]
Data = Literal["unpaired", "paired", "labelled", "images"]


@dataclass(frozen=True)
class MethodSpec:
    """Everything unveil knows of one method."""

    name: str
    summary: str  # one line: what it is (``unveil train --help`` lists it)
    config: type[Config]  # the method's own options, the ``model:`` block of its TrainConfig
    method: Callable[..., Method]  # the training adapter: (TrainConfig, samples table, root, seed) -> Method
    load: Callable[[Checkpoint, torch.device], Any]  # a checkpoint of this method -> restorer or analysis model
    produces: Produces
    data: Data  # unpaired domains (cyclegan), paired occluded / clean crops (pix2pix), labelled frames, or clean
    #             images alone (domain_b; a generative model such as stylegan2)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # TrainConfig mappings by name
    per_subject: bool = False  # the CLI's default for --per-subject / --pooled
    report: tuple[str, ...] = ()  # history values the CLI prints after training
    restore_options: tuple[str, ...] = ()  # options of ``config`` that act at restore time only (``restore --set``)


_REGISTRY: dict[str, MethodSpec] = {}
_loaded = False


def register(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry (a second registration of a name replaces the first, for reloading)."""
    from unveil.train.config import LOOP_FIELDS

    clash = sorted(set(spec.config.model_fields) & LOOP_FIELDS)
    if clash:
        raise ValueError(f"method {spec.name}: option names {clash} are the training loop's")
    _REGISTRY[spec.name] = spec
    return spec


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        importlib.import_module(entry.value.split(":")[0])


def method_names() -> list[str]:
    """The registered method names, in registration order."""
    _load_builtins()
    return list(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    """The spec of ``name``; an unknown name is one sentence listing the registered ones."""
    _load_builtins()
    if name not in _REGISTRY:
        raise UnveilError(f"Unknown method '{name}'; the registered methods are {', '.join(_REGISTRY)}.")
    return _REGISTRY[name]


def load_model(checkpoint: str | os.PathLike[str], device: str = "auto") -> Any:
    """The inference object of a checkpoint (file or run folder), built by the loader of the method it records."""
    return _load_kind(checkpoint, device)


def load_restorer(checkpoint: str | os.PathLike[str], device: str = "auto",
                  options: Mapping[str, Any] | None = None) -> Restorer:
    """The restorer of a checkpoint; one sentence when its method makes no restorer (e.g. a classifier).
    ``options`` replace the checkpoint's values of its method's restore-time options (``MethodSpec.restore_options``,
    e.g. the exemplar check's threshold) for this restorer; the file is not changed."""
    return _load_kind(checkpoint, device, "restorer", "restore", options)


def load_analysis_model(checkpoint: str | os.PathLike[str], device: str = "auto") -> Any:
    """The analysis model of a checkpoint (the ``cnn`` analyzer's); one sentence for a restorer's checkpoint."""
    return _load_kind(checkpoint, device, "analysis model", "analyse frames")


def _load_kind(checkpoint: str | os.PathLike[str], device: str, produces: Produces | None = None, verb: str = "",
               options: Mapping[str, Any] | None = None) -> Any:
    """Read ``checkpoint`` and build its method's inference object; with ``produces``, refuse other kinds."""
    from unveil.devices import select_device
    from unveil.train.checkpoint import read_checkpoint

    saved = read_checkpoint(checkpoint)
    spec = get_method(saved.method)
    if produces is not None and spec.produces != produces:
        able = [n for n in method_names() if _REGISTRY[n].produces == produces]
        raise UnveilError(f"{saved.path} holds a {spec.name} model, which does not {verb}; give a checkpoint of "
                          f"{' or '.join(able)}.")
    if options:
        saved = with_restore_options(saved, spec, options)
    return spec.load(saved, select_device(device))


def parse_settings(items: list[str] | None, flag: str = "--set") -> dict[str, str]:
    """Repeated NAME=VALUE (e.g. ``restore --set``) as a mapping; values stay text, validated by the method's options
    when the checkpoint is loaded (:func:`with_restore_options`)."""
    settings = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UnveilError(f"{flag} takes NAME=VALUE, e.g. exemplar_check=0.06, not '{item}'.")
        settings[name.strip()] = value.strip()
    return settings


def with_restore_options(saved: Checkpoint, spec: MethodSpec, options: Mapping[str, Any]) -> Checkpoint:
    """``saved`` with its method options' restore-time ones replaced by ``options`` (validated like a training
    config); any other option is refused in one sentence, since the trained networks depend on it."""
    from dataclasses import replace

    from unveil.config import validate_config

    unknown = sorted(set(options) - set(spec.restore_options))
    if unknown:
        able = ", ".join(spec.restore_options) if spec.restore_options else "none"
        raise UnveilError(f"{', '.join(unknown)} cannot be changed at restore time for {spec.name} (its restore-time "
                          f"options: {able}).")
    config = saved.config
    model = {**config.get("model", {}), **options}
    validate_config(spec.config, model, f"the restore options of {saved.path}")
    return replace(saved, meta={**saved.meta, "config": {**config, "model": model}})

"""The options of one training run (``TrainConfig``: the loop's schedule and data options, the method's own under
``model``) and how they are resolved: the method's preset, then a YAML file, then command-line flags, merged deeply
so that a YAML ``model:`` block changes only the keys it names."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from unveil.config import Config, deep_merge, read_yaml_mapping, validate_config
from unveil.data.datasets import Preprocess
from unveil.errors import UnveilError


class TrainConfig(Config):
    """Options of ``unveil train METHOD`` (schedule and data; the method's own are under ``model``)."""

    method: str = Field(default="cyclegan", description="A registered method (unveil.methods.registry).")
    model: SerializeAsAny[Config] = Field(default=None, validate_default=True,  # type: ignore[assignment]
                                          description="The method's options (its registered config).")
    n_epochs: int = Field(default=15, ge=0, description="Epochs at the initial learning rate.")
    n_epochs_decay: int = Field(default=15, ge=0, description="Epochs of decay to zero afterwards.")
    lr_policy: Literal["linear", "step", "plateau", "cosine"] = "linear"
    lr_decay_iters: int = Field(default=50, ge=1, description="Epochs between x0.1 steps (lr_policy step).")
    batch_size: int = Field(default=1, ge=1, description="Images per step and process.")
    accumulate: int = Field(default=1, ge=1, description="Batches whose gradients add up before a step.")
    load_size: int = Field(default=286, ge=8, description="Side images are resized to before cropping.")
    crop_size: int = Field(default=256, ge=8, description="Side of the training crops.")
    preprocess: Preprocess = Field(default="resize_and_crop", description="How images are scaled and cropped "
                                   "(the reference's choices; see unveil.data.datasets.Augment).")
    flip: bool = Field(default=True, description="Random horizontal flips (the reference's no_flip: false).")
    serial_batches: bool = Field(default=False, description="Take samples in order, and pair A[i] with B[i] "
                                                            "instead of a random B.")
    max_dataset_size: int | None = Field(default=None, ge=1, description="Use only the first N training samples "
                                                                          "of each domain (None: all).")
    direction: Literal["AtoB", "BtoA"] = Field(default="AtoB", description="BtoA swaps domain_a and domain_b "
                                                                           "(the generator then adds the obstruction).")
    num_workers: int = Field(default=0, ge=0, description="Data-loading processes per training process.")
    seed: int = Field(default=0, ge=0, description="Seeds weights, data order and augmentation.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(default=True, description="Mixed precision (float16) on CUDA; ignored on the CPU.")
    save_epoch_freq: int = Field(default=5, ge=1, description="Keep checkpoints/epoch_NNN every N epochs.")
    save_latest_freq: int = Field(default=0, ge=0, description="Also save 'latest' every N iterations (0: off).")
    time_limit: float = Field(default=0.0, ge=0, description="Minutes of training after which the run stops with "
                                                             "'latest' saved, e.g. a cluster job's wall time "
                                                             "(0: none); --resume continues it.")
    patience: int = Field(default=0, ge=0, description="Early stopping: end the run when the validation value the "
                                                        "method monitors has not improved for N epochs; the best epoch "
                                                        "is kept as checkpoints/best.safetensors (0: off).")
    n_samples: int = Field(default=4, ge=1, description="Validation images in the per-epoch sample grid.")
    domain_a: dict[str, Any] = Field(default_factory=lambda: {"condition": "occluded"},
                                     description="Rows of domain A: the obstructed input.")
    domain_b: dict[str, Any] = Field(default_factory=lambda: {"condition": "normal"},
                                     description="Rows of domain B (unpaired methods).")
    subjects: list[str] | None = None

    @field_validator("method")
    @classmethod
    def _registered(cls, name: str) -> str:
        from unveil.methods.registry import get_method

        try:
            get_method(name)
        except UnveilError as error:
            raise ValueError(str(error).rstrip(".")) from None
        return name

    @model_validator(mode="before")
    @classmethod
    def _reference_names(cls, data: Any) -> Any:
        """The reference code's names for two options: ``no_flip`` (not ``flip``) and ``num_threads``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for reference, ours, convert in (("no_flip", "flip", lambda v: not v), ("num_threads", "num_workers", int)):
            if reference in data:
                value = convert(data.pop(reference))
                if ours in data and data[ours] != value:
                    raise ValueError(f"{reference} and {ours} contradict each other; give one of them")
                data[ours] = value
        return data

    @model_validator(mode="before")
    @classmethod
    def _model_of_method(cls, data: Any) -> Any:
        """``model`` given as a mapping (or not at all) is read as the options of ``method``'s config."""
        from unveil.methods.registry import get_method

        if not isinstance(data, dict):
            return data
        name = data.get("method", "cyclegan")
        try:
            kind = get_method(name).config
        except UnveilError:
            return data  # the method validator says so
        model = data.get("model")
        if model is None or isinstance(model, Mapping):
            unknown = [key for key in (model or {}) if key not in kind.model_fields]
            if unknown:
                raise ValueError(_not_an_option(unknown[0], name))
            data = {**data, "model": validate_config(kind, dict(model or {}), source=f"the {name} options")}
        elif not isinstance(model, kind):
            raise ValueError(f"method {name} takes {kind.__name__} options as model, not {type(model).__name__}")
        return data

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay


def _not_an_option(key: str, method: str) -> str:
    """Says that ``key`` is no option of ``method``, and whose it is when another method or the loop has it."""
    from unveil.methods.registry import get_method, method_names

    owners = [other for other in method_names() if key in get_method(other).config.model_fields]
    if key in TrainConfig.model_fields:
        return f"'{key}' is a training-loop option, not a {method} one: give it at the top level, not under model"
    if owners:
        return f"'{key}' is not a {method} option (it is an option of {' and '.join(owners)})"
    return f"'{key}' is not a {method} option"


#: Top-level option names of the loop (a method's own options may not reuse them).
LOOP_FIELDS = frozenset(TrainConfig.model_fields) - {"model"}


def resolve_train_config(method: str, *, preset: str | None = None,
                         config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                         flags: Mapping[str, Any] | None = None, model_flags: Mapping[str, Any] | None = None
                         ) -> TrainConfig:
    """The run's options: ``method``'s preset, then ``config`` (a YAML file or a mapping), then ``flags`` (loop
    options) and ``model_flags`` (the method's), each merged into the one before key by key, nested mappings
    too (flags that are None are not given). One sentence for an unknown preset or an invalid option."""
    from unveil.methods.registry import get_method

    spec = get_method(method)
    options: dict[str, Any] = {}
    if preset is not None:
        if preset not in spec.presets:
            choices = " or ".join(spec.presets) or "none (this method has no presets)"
            raise UnveilError(f"Unknown preset '{preset}' for {method}; choose {choices}.")
        options = deep_merge(options, spec.presets[preset])
    source = "the command-line options"
    if config is not None:
        given = dict(config) if isinstance(config, Mapping) else read_yaml_mapping(config)
        if given.get("method", method) != method:
            raise UnveilError(f"{config} is a config for {given['method']}, not {method}.")
        options = deep_merge(options, given)
        source = "the given options" if isinstance(config, Mapping) else str(config)
    options = deep_merge(options, {k: v for k, v in (flags or {}).items() if v is not None})
    options = deep_merge(options, {"model": {k: v for k, v in (model_flags or {}).items() if v is not None}})
    options["method"] = method
    return validate_config(TrainConfig, options, source=source)

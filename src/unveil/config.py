"""Typed configuration: pydantic models, loaded from YAML, with one readable error for a bad file.

Every stage's options live in one model here (or in the stage's package, built on :class:`Config`), so the
CLI, the Python API and YAML files share one definition of names, defaults and limits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from unveil.errors import UnveilError

ConfigT = TypeVar("ConfigT", bound="Config")


class Config(BaseModel):
    """Base of every unveil config: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @classmethod
    def from_yaml(cls: type[ConfigT], path: str | os.PathLike[str], **overrides: Any) -> ConfigT:
        """Load ``path``, apply ``overrides`` (keys whose value is None are ignored) and validate."""
        data = read_yaml_mapping(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return validate_config(cls, data, source=str(path))

    def to_yaml(self) -> str:
        """The config as YAML, in field order, readable by :meth:`from_yaml`."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update``'s keys; where both hold a mapping under a key, those are merged the same way."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping, or raise one sentence saying what is wrong."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnveilError(f"The file {file} does not exist.") from None
    except OSError as exc:
        raise UnveilError(f"Cannot read {file}: {exc.strerror or exc}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UnveilError(f"{file} is not valid YAML{where}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UnveilError(f"{file} must hold a mapping of option names to values at its top level.")
    return data


def validate_config(model: type[ConfigT], data: dict[str, Any], source: str = "the options") -> ConfigT:
    """Validate ``data`` against ``model``; the first problem becomes one sentence naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UnveilError(describe_validation_error(exc, source)) from None


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One sentence for the first error of a pydantic ValidationError (and how many more there are)."""
    errors = exc.errors()
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "is not a known option"
    elif first["type"] == "missing":
        message = "is required"
    elif first["type"] == "value_error":  # our own validators already speak in sentences
        message = message.removeprefix("Value error, ")
    else:
        message = f"is invalid: {message[0].lower()}{message[1:]}"
        if "input" in first and not isinstance(first["input"], dict | list):
            message += f" (got {first['input']!r})"
    more = f" ({len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    if first["type"] == "value_error":
        where = f" at '{field}'" if field else ""
        return f"In {source}{where}, {message}{more}."
    return f"In {source}, '{field}' {message}{more}."

"""Command-line options made from config fields, so that a method's options (its pydantic config) and the training
loop's are written once: each scalar field becomes ``--name`` (the reference code's spelling, underscores kept;
a dashed alias beside it), with the field's description, choices and default as its help."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Annotated, Any, Literal, Optional

import typer
from pydantic.fields import FieldInfo


def _scalar(annotation: Any) -> tuple[type | None, list[str]]:
    """The CLI type of a field's annotation (int, float, str, bool; None: not a scalar) and its choices."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _scalar(inner[0]) if len(inner) == 1 else (None, [])
    if typing.get_origin(annotation) is Literal:
        return str, [str(a) for a in args]
    if annotation in (int, float, str, bool):
        return annotation, []
    return None, []


def field_parameters(fields: dict[str, FieldInfo], prefix: str, panel: str, aliases: dict[str, str] | None = None,
                     skip: frozenset[str] = frozenset()) -> list[inspect.Parameter]:
    """Keyword parameters ``{prefix}{field}`` (default None: not given) for every scalar field not in ``skip``."""
    parameters = []
    for name, info in fields.items():
        kind, choices = _scalar(info.annotation)
        if kind is None or name in skip:
            continue
        default = info.get_default(call_default_factory=True)
        help_text = (info.description or "").rstrip(".").replace("[", "\\[")  # not Rich markup
        if choices:
            help_text += ("; " if help_text else "") + " / ".join(choices)
        help_text += f" \\[default: {default}]" if default is not None else ""
        if kind is bool:
            opposite = name[3:] if name.startswith("no_") else f"no_{name}"
            decls = [f"--{name}/--{opposite}"]
            kind = bool
        else:
            decls = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
            decls += [aliases[name]] if aliases and name in aliases else []
        option = typer.Option(*decls, help=help_text, rich_help_panel=panel, show_default=False)
        parameters.append(inspect.Parameter(f"{prefix}{name}", inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=Annotated[Optional[kind], option]))  # noqa: UP007
    return parameters


def values_of(prefix: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options of one group, by field name, as given on the command line (None where not given)."""
    return {k[len(prefix):]: v for k, v in given.items() if k.startswith(prefix)}


def make_command(function: Any, parameters: list[inspect.Parameter], doc: str) -> Any:
    """``function(**values)`` as a Typer command with exactly ``parameters``."""
    def command(**values: Any) -> None:
        function(values)

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = doc
    return command

"""The manifest: which recordings exist (subject, session, condition, occluder, task) and where their files are.

One YAML file, read by every stage after ``synth``. ``unveil synth`` writes it; users write their own for
real recordings. Paths are stored relative to the manifest's folder when they lie inside it; absolute paths
may point anywhere. A relative path may not climb out of the folder (``..``), so a moved data set keeps
working and a manifest cannot silently read files it does not own.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from unveil.config import describe_validation_error, read_yaml_mapping
from unveil.errors import UnveilError
from unveil.files import write_text_atomic

MANIFEST_VERSION = 1
Condition = Literal["normal", "occluded"]


class Recording(BaseModel):
    """One video (or image folder) of one subject, session, take and task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
    subject: str = Field(min_length=1)
    session: str = Field(min_length=1)
    take: int = Field(default=1, ge=1)
    condition: Condition
    occluder: str | None = None  # e.g. "semg", "mask", "semg+hand"; required when occluded
    task: str = Field(min_length=1)
    media: str  # video file or folder of frames
    ground_truth: str | None = None  # the same frames without the occluder (synthetic data only)
    mask: str | None = None  # per-frame occluder mask, same frames
    frames: str | None = None  # per-frame table (AUs, landmarks, coverage), parquet
    fps: float | None = Field(default=None, gt=0)
    n_frames: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _occluder_matches_condition(self) -> Recording:
        if self.condition == "occluded" and not self.occluder:
            raise ValueError(f"recording '{self.id}' is occluded but names no occluder")
        if self.condition == "normal" and self.occluder:
            raise ValueError(f"recording '{self.id}' is normal but names the occluder '{self.occluder}'")
        return self

    @field_validator("media", "ground_truth", "mask", "frames")
    @classmethod
    def _no_escape(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isabs(value) and ".." in PurePosixPath(value).parts:
            raise ValueError(f"the relative path '{value}' climbs out of the manifest's folder; use an absolute path")
        return value


class Manifest(BaseModel):
    """All recordings of a data set. ``root`` is the folder relative paths are resolved against."""

    model_config = ConfigDict(extra="forbid")

    version: int = MANIFEST_VERSION
    name: str = "dataset"
    description: str = ""
    recordings: list[Recording]
    root: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _unique_ids(self) -> Manifest:
        seen: set[str] = set()
        for rec in self.recordings:
            if rec.id in seen:
                raise ValueError(f"the recording id '{rec.id}' appears twice")
            seen.add(rec.id)
        return self

    def resolve(self, relative: str | None) -> Path | None:
        """The absolute path of a path stored in this manifest."""
        if relative is None:
            return None
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

    def subjects(self) -> list[str]:
        """Subject ids in order of first appearance."""
        return list(dict.fromkeys(rec.subject for rec in self.recordings))

    def missing_files(self) -> list[str]:
        """Every media, ground-truth, mask or frame-table path of the manifest that does not exist."""
        missing = []
        for rec in self.recordings:
            for value in (rec.media, rec.ground_truth, rec.mask, rec.frames):
                path = self.resolve(value)
                if path is not None and not path.exists():
                    missing.append(f"{rec.id}: {path}")
        return missing

    def check_files(self) -> None:
        """Raise one sentence naming the first missing file (and how many more are missing)."""
        missing = self.missing_files()
        if missing:
            more = f" ({len(missing) - 1} more missing)" if len(missing) > 1 else ""
            raise UnveilError(f"A file of the manifest is missing: {missing[0]}{more}.")

    def select(self, **criteria: str | int | None) -> list[Recording]:
        """Recordings whose fields equal every given criterion, e.g. ``select(subject="S01", task="emotion")``."""
        return [r for r in self.recordings if all(getattr(r, k) == v for k, v in criteria.items())]


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest (YAML, or CSV with one recording per row and the fields as columns);
    relative paths in it resolve against its folder."""
    file = Path(path)
    data = _read_csv(file) if file.suffix.lower() == ".csv" else read_yaml_mapping(file)
    version = data.get("version", MANIFEST_VERSION)
    if version != MANIFEST_VERSION:
        raise UnveilError(f"{file} has manifest version {version}; this unveil reads version {MANIFEST_VERSION}.")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise UnveilError(describe_validation_error(exc, str(file))) from None
    manifest.root = file.parent.resolve()
    return manifest


def _read_csv(file: Path) -> dict:
    import pandas as pd

    try:
        table = pd.read_csv(file, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise UnveilError(f"The file {file} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise UnveilError(f"Cannot read {file} as CSV: {exc}.") from None
    rows = [{k: v for k, v in row.items() if v != ""} for row in table.to_dict(orient="records")]
    return {"name": file.stem, "recordings": rows}


def save_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> Path:
    """Write ``manifest`` as YAML (atomically); unset optional fields are left out for readability."""
    file = Path(path)
    data = manifest.model_dump(mode="json", exclude_none=True)
    write_text_atomic(file, yaml.safe_dump(data, sort_keys=False, width=120))
    return file

"""Shared fixtures: tiny synthetic configs that render in a second or two."""

from __future__ import annotations

from pathlib import Path

import pytest

from unveil.synth import SynthConfig

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_config(**overrides: object) -> SynthConfig:
    """One subject, one session, one normal and one occluded take of a short task at 64 px, lossless PNG."""
    options: dict[str, object] = dict(subjects=1, sessions=1, normal_takes=1, occluded_takes=1, size=64, fps=10,
                                      tasks=["sentence"], sentence_repetitions=1, format="png")
    options.update(overrides)
    return SynthConfig(**options)


def tiny_prepared(root: Path, fraction: float, load_size: int = 36) -> Path:
    """A tiny benchmark (64 px PNG, ``root/bench``) prepared into ``load_size`` crops of whole frames
    (``root/prepared``, returned)."""
    from unveil.data.prepare import PrepareConfig, prepare
    from unveil.synth import generate

    manifest = generate(tiny_config(size=64, format="png"), root / "bench", workers=1, progress=False)
    prepare(manifest, root / "prepared", PrepareConfig(crop="none", fraction=fraction, load_size=load_size),
            workers=1, progress=False)
    return root / "prepared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared test data folder {SHARED_DATA} is not present")
    return SHARED_DATA

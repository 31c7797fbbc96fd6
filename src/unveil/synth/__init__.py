"""The ground-truth synthetic benchmark: procedural faces with Action Unit control, identities, sessions,
occluders with exact masks, and the recording protocols of seed 000."""

from unveil.synth.face import SYNTH_AUS, Identity, expression_shape, sample_identity
from unveil.synth.generate import SynthConfig, check_output_folder, generate
from unveil.synth.occluders import OCCLUDERS
from unveil.synth.preview import contact_sheet, write_preview
from unveil.synth.protocols import PROTOCOLS, build_timeline

__all__ = [
    "OCCLUDERS", "PROTOCOLS", "SYNTH_AUS", "Identity", "SynthConfig", "build_timeline", "check_output_folder",
    "contact_sheet", "expression_shape", "generate", "sample_identity", "write_preview",
]

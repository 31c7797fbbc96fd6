"""Data: manifests, video input/output, face crops, sampling, datasets and occlusion synthesis."""

"""The one training loop every method uses: devices, AMP, DDP, schedules, checkpoints, resume, logging."""

"""The console's screens: setup, presets, runs, monitor, checkpoints."""

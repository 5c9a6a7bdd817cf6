"""Console tests (Textual Pilot): runs, monitor, checkpoints, setup and presets screens."""

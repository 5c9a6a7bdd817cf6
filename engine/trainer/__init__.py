"""The training loop and everything around it: set-up, validation, logs, checkpoints, resume,
signals and error reporting. ``engine.train`` is the entry point; read ``trainer.py`` first."""

"""asr-tui: a terminal training console for speech recognition."""

"""moodcast: reads a live stream's chat room. This package is the composition root (CLI and wiring)."""

__version__ = "0.1.0"

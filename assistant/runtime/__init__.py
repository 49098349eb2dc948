"""Models in memory: resolve and load a base, attach adapters, generate and stream."""

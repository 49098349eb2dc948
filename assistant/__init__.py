"""Tunewise's brain, in three layers: core/ (pure decisions), runtime/ (models in memory) and
services/ (project-level operations the web app and the CLI share). See docs/architecture.md.

Importing this package loads the standard library only; heavy libraries load lazily.
"""

"""Tunewise's brain: the interview, the plan and (later) the model runtime and variants.

Importing this package loads the standard library only; heavy libraries load lazily.
"""

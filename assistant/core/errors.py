"""The error family, as the assistant's layers import it; it is defined once, in tunewise/errors.py,
at the bottom of the house, so that retrieval/ and trainers/ raise the same family."""

from tunewise.errors import InputError, TunewiseError

__all__ = ["InputError", "TunewiseError"]

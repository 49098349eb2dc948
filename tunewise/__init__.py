"""The floor under every package: what assistant/, retrieval/, trainers/ and ui/ all share and that
imports nothing of theirs (the error family, tunewise/errors.py)."""

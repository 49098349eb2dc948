"""Where the public data for tests lives: bench/data/public in the repository (copied with its
sources and licences, bench/data/public/SOURCES.md), so a fresh clone runs its tests anywhere."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1] / "bench" / "data" / "public"
RETRIEVAL_CORPORA = SHARED_DATA / "retrieval" / "chroma_chunking_eval" / "corpora"

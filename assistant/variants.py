"""Variants over one frozen base: base, base + retrieval, each adapter, adapter + retrieval.

The base model is loaded once; adapters are loaded into one PEFT model and switched per
request, the base answering with adapters disabled. Serving N variants costs the base plus N
adapters, not N bases.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assistant.answering import cited_messages, relevant_hits, sources_for
from assistant.runtime import BASE, GenerationSettings, LoadedModel, stream_chat


@dataclass(frozen=True)
class Variant:
    adapter: str | None = None
    retrieval: bool = False

    @property
    def name(self) -> str:
        return (self.adapter or "base") + (" + retrieval" if self.retrieval else "")

    @classmethod
    def parse(cls, name: str) -> Variant:
        core, _, extra = name.partition(" + ")
        return cls(None if core == "base" else core, extra == "retrieval")


@dataclass(frozen=True)
class VariantAnswer:
    variant: str
    text: str
    sources: tuple = ()
    first_token_s: float | None = None
    tokens_per_s: float | None = None
    done: bool = False


class VariantModel:
    """One base model with any number of adapters attached, answering as any variant."""

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.adapters: list[str] = []

    def add_adapter(self, name: str, path: str | Path) -> None:
        """Attach an adapter. The first one turns the base into a PEFT model in place."""
        from peft import PeftModel

        with self.loaded.lock:
            if name in self.adapters:
                return
            if not self.adapters:
                self.loaded.model = PeftModel.from_pretrained(self.loaded.model, str(path), adapter_name=name)
            else:
                self.loaded.model.load_adapter(str(path), adapter_name=name)
            self.loaded.model.eval()
            self.adapters.append(name)

    def variants(self, with_retrieval: bool) -> list[Variant]:
        names: list[str | None] = [None, *self.adapters]
        return [Variant(a, r) for a in names for r in ((False, True) if with_retrieval else (False,))]

    def stream(self, variant: Variant, messages: list[dict], generation: GenerationSettings | None = None,
               search=None) -> Iterator[VariantAnswer]:
        """Answer ``messages`` as ``variant``; ``search(question) -> hits`` feeds retrieval variants."""
        if variant.adapter is not None and variant.adapter not in self.adapters:
            raise ValueError(f"no adapter named {variant.adapter!r} is loaded")
        sources: tuple = ()
        prompt = list(messages)
        if variant.retrieval:
            if search is None:
                raise ValueError("retrieval variants need a search function")
            question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
            hits = relevant_hits(search(question))
            sources = sources_for(hits)
            prompt = cited_messages(question, hits) if hits else prompt
        started = time.perf_counter()
        first = None
        text = ""
        adapter = BASE if variant.adapter is None else variant.adapter
        for text in stream_chat(self.loaded, prompt, generation, adapter):
            first = first or time.perf_counter() - started
            yield VariantAnswer(variant.name, text, sources, first)
        elapsed = time.perf_counter() - started
        tokens = len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
        rate = tokens / (elapsed - first) if first and elapsed > first else None
        yield VariantAnswer(variant.name, text, sources, first, rate, done=True)

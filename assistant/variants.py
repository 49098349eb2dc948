"""Variants over one frozen base: base, base + retrieval, each adapter, adapter + retrieval.

The base model is loaded once; adapters are loaded into one PEFT model and switched per
request, the base answering with adapters disabled. Serving N variants costs the base plus N
adapters, not N bases.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assistant.answering import cited_messages, relevant_hits, sources_for
from assistant.behaviour import Behaviour
from assistant.runtime import BASE, GenerationSettings, LoadedModel, stream_chat


@dataclass(frozen=True)
class Variant:
    adapter: str | None = None
    """The adapter's key in the PEFT model; None for the base."""
    retrieval: bool = False
    label: str | None = None
    """The adapter's name as people see it, when its key differs (keys are unique across projects)."""

    @property
    def name(self) -> str:
        return (self.label or self.adapter or "base") + (" + retrieval" if self.retrieval else "")

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


def adapter_key(project: str, adapter: str) -> str:
    """A PEFT adapter name unique across projects (two projects may both have an adapter "v1")."""
    import hashlib

    return "a" + hashlib.sha1(f"{project}/{adapter}".encode()).hexdigest()[:12]


class ProjectVariants:
    """The app's one base model with each project's adapters attached on first use."""

    def __init__(self, workspace, model, kbs):
        """``workspace``: the Workspace; ``model``: the app's SharedModel; ``kbs``: its KnowledgeBases."""
        self.workspace, self.model, self.kbs = workspace, model, kbs
        self._variant_model: VariantModel | None = None
        self._lock = threading.Lock()

    def for_project(self, project: str) -> VariantModel:
        with self._lock:
            if self._variant_model is None:
                self._variant_model = VariantModel(self.model.get())
            for adapter in Behaviour(self.workspace, project).adapters.list():
                self._variant_model.add_adapter(adapter_key(project, adapter.name), adapter.path)
            return self._variant_model

    def variants(self, project: str) -> list[Variant]:
        """This project's variants: the base and its adapters, each also with retrieval if it has documents."""
        self.for_project(project)
        adapters = [a.name for a in Behaviour(self.workspace, project).adapters.list()]
        cores = [Variant()] + [Variant(adapter_key(project, name), label=name) for name in adapters]
        with_retrieval = bool(self.kbs.get(project).documents())
        return [Variant(c.adapter, r, c.label) for c in cores for r in ((False, True) if with_retrieval else (False,))]

    def names(self, project: str) -> list[str]:
        return [v.name for v in self.variants(project)]

    def resolve(self, project: str, name: str) -> Variant:
        found = next((v for v in self.variants(project) if v.name == name), None)
        if found is None:
            raise ValueError(f"Unknown variant {name!r}; available: {self.names(project)}")
        return found

    def search(self, project: str):
        kb = self.kbs.get(project)
        return lambda question: kb.search(question, 5, with_similarity=True)

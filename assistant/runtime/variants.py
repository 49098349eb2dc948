"""Variants over one frozen base: base, base + retrieval, each adapter, adapter + retrieval.

The base model is loaded once; adapters are loaded into one PEFT model and switched per
request, the base answering with adapters disabled. Serving N variants costs the base plus N
adapters, not N bases.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assistant.core.errors import TunewiseError
from assistant.runtime.answering import NOTHING_FOUND, attribute_citations, cited_messages, relevant_hits, sources_for
from assistant.runtime.generation import BASE, GenerationSettings, LoadedModel, generate_batch, stream_chat, stream_rows
from assistant.runtime.models import same_model


class AdapterBaseMismatchError(TunewiseError, ValueError):
    """An adapter was trained on another base model than the one loaded; its weights would be
    applied to layers they were not fitted to, so it is refused instead of giving wrong answers."""

    def __init__(self, adapter: str, trained_on: str, loaded: str):
        self.adapter, self.trained_on, self.loaded = adapter, trained_on, loaded
        super().__init__(f"the adapter {adapter!r} was trained on {trained_on!r}, not on the loaded base "
                         f"{loaded!r}", f"Load {trained_on!r} (--model or the model picker) to use it.")


BITSANDBYTES_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
UNUSED_CPU_KERNEL_NOTICE = "Failed to load CPU gemm_4bit_forward"


class _UnusedCpuKernelNotice(logging.Filter):
    """Drops bitsandbytes' notice that its optional 4-bit CPU kernel could not be fetched.

    Importing peft imports bitsandbytes, which on CPUs with AVX512-BF16 tries to fetch a 4-bit matmul
    kernel from the Hugging Face hub and, offline or without trust_remote_code, logs a warning that
    ends in "Set trust_remote_code=True". Adapters here attach to a 16- or 32-bit base, never a 4-bit
    one on the CPU, so the kernel is never needed and the advice would only lead people astray. Every
    other record of that logger, and every other logger, still gets through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(UNUSED_CPU_KERNEL_NOTICE)


def quiet_bitsandbytes_cpu_kernel_notice() -> None:
    """Install the filter on bitsandbytes' CPU-kernel logger (once; the logger may not exist yet)."""
    logger = logging.getLogger(BITSANDBYTES_CPU_LOGGER)
    if not any(isinstance(f, _UnusedCpuKernelNotice) for f in logger.filters):
        logger.addFilter(_UnusedCpuKernelNotice())


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
    latency_s: float | None = None
    """Seconds for the whole answer (in a batch: the batch's time shared evenly)."""


class VariantModel:
    """One base model with any number of adapters attached, answering as any variant."""

    def __init__(self, loaded: LoadedModel, prompt_style: str | None = None, focus_sentences: int | None = -1):
        """``focus_sentences``: sentences of the retrieved chunks shown to the model; None for whole
        chunks; -1 (the default) picks by the model's size (assistant.runtime.answering.focus_sentences_for)."""
        from assistant.runtime.answering import DEFAULT_PROMPT_STYLE, focus_sentences_for

        self.loaded = loaded
        self.adapters: list[str] = []
        self.prompt_style = prompt_style or DEFAULT_PROMPT_STYLE
        if focus_sentences == -1:
            parameters = sum(p.numel() for p in loaded.model.parameters()) if hasattr(loaded.model, "parameters") else 0
            focus_sentences = focus_sentences_for(parameters) if parameters else None
        self.focus_sentences = focus_sentences

    def add_adapter(self, name: str, path: str | Path, base_model: str | None = None, label: str | None = None) -> None:
        """Attach an adapter. The first one turns the base into a PEFT model in place.

        ``base_model``: the model the adapter was trained on; another base is refused with
        AdapterBaseMismatchError (None skips the check, for adapters made outside Tunewise).
        """
        quiet_bitsandbytes_cpu_kernel_notice()  # before peft's first import, which imports bitsandbytes
        from peft import PeftModel

        if base_model is not None and not same_model(base_model, self.loaded.name):
            raise AdapterBaseMismatchError(label or name, base_model, self.loaded.name)
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
               search=None, stop: threading.Event | None = None, wait_s: float | None = None
               ) -> Iterator[VariantAnswer]:
        """Answer ``messages`` as ``variant``; ``search(question) -> hits`` feeds retrieval variants.
        ``stop`` ends the answer early; ``wait_s`` bounds the wait for the model (ModelBusyError)."""
        if variant.adapter is not None and variant.adapter not in self.adapters:
            raise ValueError(f"no adapter named {variant.adapter!r} is loaded")
        prompt, sources, hits = self._prompt(variant, messages, search)
        started = time.perf_counter()
        first = None
        text = ""
        adapter = BASE if variant.adapter is None else variant.adapter
        for text in stream_chat(self.loaded, prompt, generation, adapter=adapter, stop=stop, wait_s=wait_s):
            first = first or time.perf_counter() - started
            yield VariantAnswer(variant.name, text, sources, first)
        elapsed = time.perf_counter() - started
        tokens = len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
        rate = tokens / (elapsed - first) if first and elapsed > first else None
        yield VariantAnswer(variant.name, attribute_citations(text, hits), sources, first, rate, done=True,
                            latency_s=elapsed)

    def answer_from_documents(self, variant: Variant, question: str, search,
                              generation: GenerationSettings | None = None) -> Iterator[VariantAnswer]:
        """Answer ``question`` from the documents ``search(question) -> hits`` finds, as ``variant``
        (a retrieval variant: the Knowledge tab asks as "base + retrieval"), through :meth:`stream`:
        the prompt, adapter and decoding of ``tunewise chat --retrieval`` and ``/v1``.

        One difference, and why: with no relevant passage, :meth:`stream` lets the variant answer
        unaided, while a question asked of the documents gets NOTHING_FOUND (no guess, no model call).
        """
        if not variant.retrieval:
            raise ValueError(f"answering from documents needs a retrieval variant, not {variant.name!r}")
        hits = relevant_hits(search(question))
        if not hits:
            yield VariantAnswer(variant.name, NOTHING_FOUND, done=True)
            return
        yield from self.stream(variant, [{"role": "user", "content": question}], generation, lambda _: hits)

    def stream_together(self, variants: list[Variant], conversations: list[list[dict]],
                        generation: GenerationSettings | None = None, search=None,
                        stop: threading.Event | None = None) -> Iterator[list[VariantAnswer]]:
        """Answer as several variants at once, one conversation each, in one batch on the one model.

        Yields every variant's answer as it grows; the last yield has ``done`` set, with sources,
        attributed citations and each row's own tokens/s (a row's clock stops when its answer ends).
        """
        if len(variants) != len(conversations):
            raise ValueError("one conversation per variant")
        for variant in variants:
            if variant.adapter is not None and variant.adapter not in self.adapters:
                raise ValueError(f"no adapter named {variant.adapter!r} is loaded")
        prompts = [self._prompt(v, c, search) for v, c in zip(variants, conversations, strict=True)]
        started = time.perf_counter()
        first: list[float | None] = [None] * len(variants)
        last: list[float] = [0.0] * len(variants)
        texts = [""] * len(variants)
        for grown in stream_rows(self.loaded, [p for p, _, _ in prompts], [v.adapter for v in variants], generation,
                                 stop):
            now = time.perf_counter() - started
            for row, text in enumerate(grown):
                if text and first[row] is None:
                    first[row] = now
                if text != texts[row]:
                    last[row] = now
            texts = grown
            yield [VariantAnswer(v.name, t, sources, f) for v, t, (_, sources, _), f
                   in zip(variants, texts, prompts, first, strict=True)]
        answers = []
        for row, (variant, text, (_, sources, hits)) in enumerate(zip(variants, texts, prompts, strict=True)):
            tokens = len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
            began = first[row]
            rate = tokens / (last[row] - began) if began and last[row] > began else None
            answers.append(VariantAnswer(variant.name, attribute_citations(text, hits), sources, began, rate,
                                         done=True, latency_s=last[row] or time.perf_counter() - started))
        yield answers

    def _prompt(self, variant: Variant, messages: list[dict], search) -> tuple[list[dict], tuple, list]:
        """The prompt for ``variant``, its sources, and the hits whose citations may be attributed
        (none when the conversation brings its own system prompt: a task with its own output format)."""
        if not variant.retrieval:
            return list(messages), (), []
        if search is None:
            raise ValueError("retrieval variants need a search function")
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        hits = relevant_hits(search(question))
        system = [m for m in messages if m["role"] == "system"]
        prompt = (cited_messages(question, hits, self.prompt_style, system, self.focus_sentences) if hits
                  else list(messages))
        return prompt, sources_for(hits), ([] if system else hits)

    def answer_batch(self, variant: Variant, conversations: list[list[dict]],
                     generation: GenerationSettings | None = None, search=None,
                     batch_size: int = 8) -> list[VariantAnswer]:
        """Whole answers to many conversations as ``variant``, generated in batches (evaluation's path;
        same prompts and decoding as :meth:`stream`). ``first_token_s`` is None: nothing streams."""
        if variant.adapter is not None and variant.adapter not in self.adapters:
            raise ValueError(f"no adapter named {variant.adapter!r} is loaded")
        prompts = [self._prompt(variant, messages, search) for messages in conversations]
        adapter = BASE if variant.adapter is None else variant.adapter
        generated = generate_batch(self.loaded, [p for p, _, _ in prompts], generation, adapter=adapter,
                                   batch_size=batch_size)
        return [VariantAnswer(variant.name, attribute_citations(text, hits), sources, None,
                              tokens / seconds if seconds else None, done=True, latency_s=seconds)
                for (text, tokens, seconds), (_, sources, hits) in zip(generated, prompts, strict=True)]


def adapter_key(project_dir: str | Path, adapter: str) -> str:
    """A PEFT adapter name unique across projects and users (two projects, or two users'
    projects of the same name, may each have an adapter "v1"): a hash of the project's folder."""
    import hashlib

    return "a" + hashlib.sha1(f"{Path(project_dir).resolve()}/{adapter}".encode()).hexdigest()[:12]


class SharedVariantModel:
    """The app's one VariantModel over its SharedModel, made on first use.

    Every workspace (every signed-in user) attaches its adapters to this one base.
    """

    def __init__(self, model):
        """``model``: the app's SharedModel."""
        self.model = model
        self._variant_model: VariantModel | None = None
        self._lock = threading.Lock()
        self._generation = -1

    def get(self) -> VariantModel:
        with self._lock:
            current = getattr(self.model, "generation", 0)
            if self._variant_model is None or self._generation != current:
                self._variant_model = VariantModel(self.model.get())
                self._generation = current
            return self._variant_model

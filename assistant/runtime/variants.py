"""Variants over one frozen base: the base or an adapter, each with any of the modifiers (few-shot,
retrieval): ``base``, ``base + few-shot``, ``snips + retrieval``, ...

The base model is loaded once; adapters are loaded into one PEFT model and switched per
request, the base answering with adapters disabled. Serving N variants costs the base plus N
adapters, not N bases.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from assistant.core.errors import TunewiseError
from assistant.core.variant_kinds import MODIFIER_NAMES, MODIFIERS, variant_cost
from assistant.runtime.answering import NOTHING_FOUND, attribute_citations, cited_messages, relevant_hits, sources_for
from assistant.runtime.few_shot import FewShotPool, with_shots
from assistant.runtime.generation import BASE, GenerationSettings, LoadedModel, generate_batch, stream_rows
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
class Aids:
    """What a project lends its variants' modifiers: one field per :attr:`Modifier.needs`."""

    search: Callable | None = None
    """``search(question) -> hits`` over the project's documents (retrieval)."""
    examples: FewShotPool | None = None
    """The user's training examples (few-shot)."""

    @classmethod
    def of(cls, value) -> Aids:
        """``value`` as Aids: Aids stay, a bare callable is a search, None is nothing."""
        if value is None:
            return cls()
        return value if isinstance(value, Aids) else cls(search=value)


@dataclass(frozen=True)
class Variant:
    adapter: str | None = None
    """The adapter's key in the PEFT model; None for the base."""
    modifiers: tuple[str, ...] = ()
    """Names from :data:`MODIFIERS`; kept in the table's order."""
    label: str | None = None
    """The adapter's name as people see it, when its key differs (keys are unique across projects)."""
    system_prompt: str | None = None
    """The system prompt the adapter was trained with: used when a conversation brings none, so an
    adapter answers in the format it learnt without the user pasting its instruction."""

    def __post_init__(self) -> None:
        unknown = [m for m in self.modifiers if m not in MODIFIER_NAMES]
        if unknown or len(set(self.modifiers)) != len(self.modifiers):
            raise ValueError(f"variant modifiers must be distinct names among {MODIFIER_NAMES}, not {self.modifiers}")
        object.__setattr__(self, "modifiers", tuple(m for m in MODIFIER_NAMES if m in self.modifiers))

    @property
    def retrieval(self) -> bool:
        return "retrieval" in self.modifiers

    @property
    def few_shot(self) -> bool:
        return "few-shot" in self.modifiers

    @property
    def core(self) -> str:
        return self.label or self.adapter or "base"

    @property
    def name(self) -> str:
        return self.core + "".join(f" + {m}" for m in self.modifiers)

    @property
    def cost(self) -> tuple[int, int]:
        """Its place in the cost order (assistant.core.variant_kinds.variant_cost)."""
        core = "base" if self.adapter is None else "adapter"
        return variant_cost(core + "".join(f" + {m}" for m in self.modifiers))

    def with_modifiers(self, *modifiers: str) -> Variant:
        return replace(self, modifiers=tuple(modifiers))

    @classmethod
    def parse(cls, name: str) -> Variant:
        core, *modifiers = name.split(" + ")
        return cls(None if core == "base" else core, tuple(modifiers))


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
    shots: tuple[int, ...] = ()
    """The few-shot examples shown before the question, by their number in the examples file."""


@dataclass
class Prompt:
    """A variant's prompt as its modifiers build it."""

    messages: list[dict]
    sources: tuple = ()
    hits: list = field(default_factory=list)
    """Hits whose citations may be attributed (none when the conversation brings its own system
    prompt: a task with its own output format)."""
    shots: tuple[int, ...] = ()


def _retrieve(model: VariantModel, prompt: Prompt, question: str, aids: Aids, generation) -> Prompt:
    if aids.search is None:
        raise ValueError("retrieval variants need a search function")
    hits = relevant_hits(aids.search(question))
    if not hits:
        return prompt
    system = [m for m in prompt.messages if m["role"] == "system"]
    messages = cited_messages(question, hits, model.prompt_style, system, model.focus_sentences)
    return replace(prompt, messages=messages, sources=sources_for(hits), hits=[] if system else hits)


def _show_examples(model: VariantModel, prompt: Prompt, question: str, aids: Aids, generation) -> Prompt:
    if aids.examples is None:
        raise ValueError("few-shot variants need the project's examples")
    answer_room = (generation or GenerationSettings()).max_new_tokens
    without_examples = with_shots(prompt.messages, [], aids.examples.system_prompt)
    room = model.context_tokens - answer_room - model.count_prompt(without_examples)
    shots = aids.examples.pick(question, room)
    return replace(prompt, messages=with_shots(prompt.messages, shots, aids.examples.system_prompt),
                   shots=tuple(e.number for e in shots))


_APPLY = {"retrieval": _retrieve, "few-shot": _show_examples}
"""How each modifier changes a prompt: one function per entry of
assistant.core.variant_kinds.MODIFIERS, where a new kind is declared."""


class VariantModel:
    """One base model with any number of adapters attached, answering as any variant.

    Adapters of one PEFT type share one PeftModel and, for LoRA, one batch (per-row adapters). PEFT
    holds one type per PeftModel, so when the variants asked for need another type, the attached
    adapters are unloaded (the base's own weights are never changed) and that type's adapters
    loaded from their folders, under the model's lock (:meth:`_make_resident`).
    """

    def __init__(self, loaded: LoadedModel, prompt_style: str | None = None, focus_sentences: int | None = -1):
        """``focus_sentences``: sentences of the retrieved chunks shown to the model; None for whole
        chunks; -1 (the default) picks by the model's size (assistant.runtime.answering.focus_sentences_for)."""
        from assistant.runtime.answering import DEFAULT_PROMPT_STYLE, focus_sentences_for

        self.loaded = loaded
        self.adapters: list[str] = []
        self._kinds: dict[str, str] = {}
        """Each attached adapter's PEFT type (LORA, IA3, PROMPT_TUNING, ...)."""
        self._paths: dict[str, str] = {}
        self._shares_batches: dict[str, bool] = {}
        """Whether an adapter's rows may share a forward pass with other adapters' (PEFT's per-row
        ``adapter_names``: plain LoRA and rsLoRA; not DoRA, not the other types)."""
        self._resident: str | None = None
        """The PEFT type whose adapters are in the model now (None: none loaded yet)."""
        self.prompt_style = prompt_style or DEFAULT_PROMPT_STYLE
        if focus_sentences == -1:
            parameters = sum(p.numel() for p in loaded.model.parameters()) if hasattr(loaded.model, "parameters") else 0
            focus_sentences = focus_sentences_for(parameters) if parameters else None
        self.focus_sentences = focus_sentences

    @property
    def context_tokens(self) -> int:
        """The tokens the model attends to (its config's positions; 2048 when it does not say)."""
        config = getattr(self.loaded.model, "config", None)
        return int(getattr(config, "max_position_embeddings", 0) or 2048)

    def count_prompt(self, messages: list[dict]) -> int:
        tokenizer = self.loaded.tokenizer
        return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))

    def examples_pool(self, conversations, shots: int | None = None, order: str = "similar") -> FewShotPool:
        """A few-shot pool of ``conversations`` (complete examples), tokens counted by this model."""
        from assistant.runtime.few_shot import DEFAULT_SHOTS

        tokenizer = self.loaded.tokenizer
        return FewShotPool.from_conversations(
            conversations, lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
            DEFAULT_SHOTS if shots is None else shots, order)

    def add_adapter(self, name: str, path: str | Path, base_model: str | None = None, label: str | None = None) -> None:
        """Attach an adapter. The first one turns the base into a PEFT model in place.

        ``base_model``: the model the adapter was trained on; another base is refused with
        AdapterBaseMismatchError (None skips the check, for adapters made outside Tunewise).
        """
        quiet_bitsandbytes_cpu_kernel_notice()  # before peft's first import, which imports bitsandbytes

        if base_model is not None and not same_model(base_model, self.loaded.name):
            raise AdapterBaseMismatchError(label or name, base_model, self.loaded.name)
        config = json.loads((Path(path) / "adapter_config.json").read_text())
        kind = str(config.get("peft_type", "LORA")).upper()
        with self.loaded.lock:
            if name in self.adapters:
                return
            self._paths[name], self._kinds[name] = str(path), kind
            self._shares_batches[name] = kind == "LORA" and not config.get("use_dora")
            if self._resident in (None, kind):
                self._load(name)
                self._resident = kind
            self.adapters.append(name)

    def _load(self, name: str) -> None:
        from peft import PeftModel

        if hasattr(self.loaded.model, "peft_config"):
            self.loaded.model.load_adapter(self._paths[name], adapter_name=name)
        else:
            self.loaded.model = PeftModel.from_pretrained(self.loaded.model, self._paths[name], adapter_name=name)
        self.loaded.model.eval()

    def _make_resident(self, kind: str | None) -> None:
        """Have ``kind``'s adapters in the model (None: any kind will do). The caller holds the lock."""
        if kind is None or kind == self._resident:
            return
        model = self.loaded.model
        if hasattr(model, "peft_config"):
            configs = list(model.peft_config.values())
            if any(c.is_adaption_prompt for c in configs):
                # LLaMA-Adapter wraps the attention modules in place and has no unload: disabling it puts the
                # model's own modules back (the wrappers go to its cache, which leaves with the PeftModel).
                model.base_model.disable_adapter_layers()
                self.loaded.model = model.get_base_model()
            elif any(c.is_prompt_learning for c in configs):
                self.loaded.model = model.get_base_model()
            else:
                self.loaded.model = model.unload()
        for name in self.adapters:
            if self._kinds[name] == kind:
                self._load(name)
        self._resident = kind

    def kind_of(self, variant: Variant) -> str | None:
        return None if variant.adapter is None else self._kinds[variant.adapter]

    def variants(self, with_retrieval: bool) -> list[Variant]:
        names: list[str | None] = [None, *self.adapters]
        return [Variant(a, m) for a in names for m in (((), ("retrieval",)) if with_retrieval else ((),))]

    def _check(self, variants) -> None:
        for variant in variants:
            if variant.adapter is not None and variant.adapter not in self.adapters:
                raise ValueError(f"no adapter named {variant.adapter!r} is loaded")

    def stream(self, variant: Variant, messages: list[dict], generation: GenerationSettings | None = None,
               aids=None, stop: threading.Event | None = None, wait_s: float | None = None
               ) -> Iterator[VariantAnswer]:
        """Answer ``messages`` as ``variant``; ``aids`` (:class:`Aids`, or a bare search function)
        feed its modifiers. ``stop`` ends the answer early; ``wait_s`` bounds the wait for the model
        (ModelBusyError)."""
        self._check([variant])
        prompt = self._prompt(variant, messages, Aids.of(aids), generation)
        started = time.perf_counter()
        first = None
        text = ""
        adapter = BASE if variant.adapter is None else variant.adapter
        prepare = self._preparer(self.kind_of(variant))
        for texts in stream_rows(self.loaded, [prompt.messages], [adapter], generation, stop, wait_s, prepare):
            text = texts[0]
            first = first or time.perf_counter() - started
            yield VariantAnswer(variant.name, text, prompt.sources, first, shots=prompt.shots)
        elapsed = time.perf_counter() - started
        tokens = len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
        rate = tokens / (elapsed - first) if first and elapsed > first else None
        yield VariantAnswer(variant.name, attribute_citations(text, prompt.hits), prompt.sources, first, rate,
                            done=True, latency_s=elapsed, shots=prompt.shots)

    def _preparer(self, kind: str | None):
        """What the generating thread runs under the lock first: have ``kind``'s adapters in (checked
        there, since another answer may have swapped types while this one waited)."""
        return None if kind is None else (lambda: self._make_resident(kind))

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
        yield from self.stream(variant, [{"role": "user", "content": question}], generation, Aids(lambda _: hits))

    def groups(self, variants: list[Variant]) -> list[list[int]]:
        """The rows that can share one forward pass, in the order they run.

        Base rows ride with the LoRA batch when there is one (else they form their own: a batch with one
        adapter named runs it on every row). LoRA adapters (rsLoRA too) share a batch, each row with its own
        adapter (PEFT's ``adapter_names``). Any other adapter answers in a batch of its own: PEFT
        refuses per-row adapters with DoRA, and cannot mix a prompt-based or IA3 adapter with other
        rows in one pass. The type already in the model goes first, so a round swaps types as seldom
        as it can.
        """
        keyed: dict[tuple, list[int]] = {}
        for row, variant in enumerate(variants):
            kind = self.kind_of(variant)
            shared = kind is not None and self._shares_batches[variant.adapter]
            key = ("LORA",) if shared else (kind, variant.adapter) if kind else ()
            keyed.setdefault(key, []).append(row)
        base_rows = keyed.pop((), [])
        if base_rows and ("LORA",) in keyed:
            keyed[("LORA",)] = sorted(keyed[("LORA",)] + base_rows)
        elif base_rows:  # a batch with one other adapter runs that adapter on every row: the base goes alone
            keyed[(None,)] = base_rows
        ordered = sorted(keyed.items(), key=lambda item: item[0][0] not in (None, self._resident))
        return [rows for _, rows in ordered]

    def stream_together(self, variants: list[Variant], conversations: list[list[dict]],
                        generation: GenerationSettings | None = None, aids=None,
                        stop: threading.Event | None = None) -> Iterator[list[VariantAnswer]]:
        """Answer as several variants at once, one conversation each, in as few batches as PEFT allows
        (:meth:`groups`; one for the base and LoRA adapters).

        Yields every variant's answer as it grows; the last yield has ``done`` set, with sources,
        attributed citations and each row's own tokens/s (a row's clock stops when its answer ends).
        """
        if len(variants) != len(conversations):
            raise ValueError("one conversation per variant")
        self._check(variants)
        aids = Aids.of(aids)
        prompts = [self._prompt(v, c, aids, generation) for v, c in zip(variants, conversations, strict=True)]
        started = time.perf_counter()
        first: list[float | None] = [None] * len(variants)
        last: list[float] = [0.0] * len(variants)
        texts = [""] * len(variants)
        for rows in self.groups(variants):
            kind = next((k for k in (self.kind_of(variants[r]) for r in rows) if k), None)
            batch = [prompts[r].messages for r in rows]
            for grown in stream_rows(self.loaded, batch, [variants[r].adapter for r in rows], generation, stop,
                                     prepare=self._preparer(kind)):
                now = time.perf_counter() - started
                for row, text in zip(rows, grown, strict=True):
                    if text and first[row] is None:
                        first[row] = now
                    if text != texts[row]:
                        last[row] = now
                    texts[row] = text
                yield [VariantAnswer(v.name, t, p.sources, f, shots=p.shots)
                       for v, t, p, f in zip(variants, texts, prompts, first, strict=True)]
        answers = []
        for row, (variant, text, prompt) in enumerate(zip(variants, texts, prompts, strict=True)):
            tokens = len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
            began = first[row]
            rate = tokens / (last[row] - began) if began and last[row] > began else None
            answers.append(VariantAnswer(variant.name, attribute_citations(text, prompt.hits), prompt.sources, began,
                                         rate, done=True, latency_s=last[row] or time.perf_counter() - started,
                                         shots=prompt.shots))
        yield answers

    def _prompt(self, variant: Variant, messages: list[dict], aids: Aids,
                generation: GenerationSettings | None = None) -> Prompt:
        """The prompt for ``variant``: the adapter's training system prompt when the conversation has
        none, then each modifier in its :attr:`Modifier.step` order."""
        messages = list(messages)
        if variant.system_prompt and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": variant.system_prompt}, *messages]
        prompt = Prompt(messages)
        if not variant.modifiers:
            return prompt
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        for modifier in sorted((m for m in MODIFIERS if m.name in variant.modifiers), key=lambda m: m.step):
            prompt = _APPLY[modifier.name](self, prompt, question, aids, generation)
        return prompt

    def general_ability(self, variant: Variant, texts=None, questions=None):
        """The forgetting probe for ``variant``'s model (the base, or its adapter; modifiers change the
        prompt, not the weights, so they do not enter): the loss on bundled general text and the
        accuracy on bundled general questions (trainers.general_ability), under the model's lock."""
        import contextlib

        import torch

        from trainers.general_ability import general_ability

        self._check([variant])
        self.loaded.acquire()
        try:
            self._make_resident(self.kind_of(variant))
            model = self.loaded.model
            if variant.adapter is None:
                scope = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
            else:
                model.set_adapter(variant.adapter)
                scope = contextlib.nullcontext()
            with torch.inference_mode(), scope:
                return general_ability(model, self.loaded.tokenizer, texts, questions)
        finally:
            self.loaded.lock.release()

    def answer_batch(self, variant: Variant, conversations: list[list[dict]],
                     generation: GenerationSettings | None = None, aids=None,
                     batch_size: int = 8) -> list[VariantAnswer]:
        """Whole answers to many conversations as ``variant``, generated in batches (evaluation's path;
        same prompts and decoding as :meth:`stream`). ``first_token_s`` is None: nothing streams."""
        self._check([variant])
        aids = Aids.of(aids)
        prompts = [self._prompt(variant, messages, aids, generation) for messages in conversations]
        adapter = BASE if variant.adapter is None else variant.adapter
        generated = generate_batch(self.loaded, [p.messages for p in prompts], generation, adapter=adapter,
                                   batch_size=batch_size, prepare=self._preparer(self.kind_of(variant)))
        return [VariantAnswer(variant.name, attribute_citations(text, prompt.hits), prompt.sources, None,
                              tokens / seconds if seconds else None, done=True, latency_s=seconds, shots=prompt.shots)
                for (text, tokens, seconds), prompt in zip(generated, prompts, strict=True)]


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

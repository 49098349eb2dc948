"""The variants of a workspace's projects: which adapters of a project can ride on the loaded base,
attached on first use, and the aids their modifiers draw on (the documents' search, the training
examples for few-shot).

A service: it reads the project's adapters (through the tenant's Behaviours, so no job store is
opened and no project created by a read) and knowledge base and hands them to the runtime's one
shared :class:`~assistant.runtime.variants.VariantModel`.
"""

from __future__ import annotations

import json
import threading
from itertools import combinations
from pathlib import Path

from assistant.core.errors import InputError
from assistant.runtime.few_shot import FewShotPool, system_prompt_of
from assistant.runtime.models import same_model
from assistant.runtime.variants import (
    MODIFIERS,
    AdapterBaseMismatchError,
    Aids,
    SharedVariantModel,
    Variant,
    VariantModel,
    adapter_key,
)
from assistant.services.behaviour import Behaviours


def read_conversations(path: str | Path) -> list[list[dict]]:
    """The conversations of a prepared examples file (one ``{"messages": [...]}`` per line)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["messages"] for line in lines if line.strip()]


def training_system_prompt(adapter_path: str | Path) -> str | None:
    """The system prompt an adapter was trained with: its card's own record when it has one, else the
    one its training examples carry (the job's train file, while it exists)."""
    card_file = Path(adapter_path) / "training.json"
    if not card_file.is_file():
        return None
    card = json.loads(card_file.read_text())
    if "system_prompt" in card:
        return card["system_prompt"]
    train_file = (card.get("config") or {}).get("train_file")
    if not train_file or not Path(train_file).is_file():
        return None
    return system_prompt_of(read_conversations(train_file))


def examples_pool(model: VariantModel, behaviour, file: str | Path | None = None, shots: int | None = None,
                  order: str = "similar") -> FewShotPool | None:
    """The few-shot pool a project's variants draw on: the examples of ``file`` when given, else the
    project's newest prepared training examples (:meth:`Behaviour.latest_prepared`); None when there
    are none. Tokens are counted by ``model``."""
    if file is not None:  # any example format the user gives
        from assistant.services.evaluation import cases_from_file

        conversations = [[*case.messages, {"role": "assistant", "content": case.reference}]
                         for case in cases_from_file(file)]
    else:
        prepared = behaviour.latest_prepared()
        if prepared is None or not prepared.train_count:
            return None
        conversations = read_conversations(prepared.train_file)
    return model.examples_pool(conversations, shots, order)


def project_variants_for(model: VariantModel, adapters, retrieval: bool, few_shot: bool) -> list[Variant]:
    """The variants an evaluation of ``adapters`` (AdapterInfo, attached to ``model`` under their
    names) runs: the base and each adapter with its training system prompt, each also with retrieval
    when asked, and the base with few-shot (and few-shot + retrieval) when asked."""
    cores = [Variant()] + [Variant(a.name, system_prompt=training_system_prompt(a.path)) for a in adapters]
    return with_modifiers(cores, [m for m in MODIFIERS if {"retrieval": retrieval, "few-shot": few_shot}.get(m.name)])


def with_modifiers(cores: list[Variant], offered) -> list[Variant]:
    """Each core (the base, an adapter) with every combination of the ``offered`` modifiers it takes
    (one whose ``on_adapters`` is False rides on the base only), in the table's order."""
    variants = []
    for core in cores:
        usable = [m.name for m in offered if core.adapter is None or m.on_adapters]
        for size in range(len(usable) + 1):
            variants += [core.with_modifiers(*chosen) for chosen in combinations(usable, size)]
    return variants


class ProjectVariants:
    """The variants of one workspace's projects, their adapters attached on first use."""

    def __init__(self, workspace, shared: SharedVariantModel, kbs, behaviours: Behaviours | None = None):
        """``workspace``: the Workspace; ``shared``: the app's SharedVariantModel; ``kbs``: the
        workspace's KnowledgeBases; ``behaviours``: the workspace's Behaviours (the tenant's own, so
        each project's is opened once; default: new ones)."""
        self.workspace, self.shared, self.kbs = workspace, shared, kbs
        self.behaviours = behaviours or Behaviours(workspace)
        self._lock = threading.Lock()
        self._pools: dict[tuple, FewShotPool] = {}
        self._prompts: dict[str, str | None] = {}

    def _key(self, project: str, adapter: str) -> str:
        return adapter_key(self.workspace.project(project).path, adapter)

    def _split(self, project: str) -> tuple[list, list]:
        """This project's adapters: those that can ride on the loaded base, and the others (trained on
        another base, or a full fine-tune: a whole model of its own, not an adapter)."""
        base = self.shared.model.name
        adapters = self.behaviours.get(project).list_adapters()
        riding = [a for a in adapters if same_model(a.base_model, base) and not getattr(a, "is_full_model", False)]
        return riding, [a for a in adapters if a not in riding]

    def for_project(self, project: str) -> VariantModel:
        variant_model = self.shared.get()
        matching, _ = self._split(project)
        with self._lock:
            for adapter in matching:
                variant_model.add_adapter(self._key(project, adapter.name), adapter.path, adapter.base_model,
                                          adapter.name)
        return variant_model

    def unavailable(self, project: str) -> list[tuple[str, str]]:
        """Adapters that cannot be variants of the loaded base: (name, reason)."""
        _, others = self._split(project)
        return [(a.name, "a full fine-tune: a whole model, not an adapter; load its folder with the model picker"
                 if getattr(a, "is_full_model", False) else
                 f"trained on {a.base_model}, not on the loaded {self.shared.model.name}") for a in others]

    def _system_prompt(self, path: Path) -> str | None:
        key = str(path)
        if key not in self._prompts:
            self._prompts[key] = training_system_prompt(path)
        return self._prompts[key]

    def variants(self, project: str) -> list[Variant]:
        """This project's variants: the base and the adapters trained on it, each with every
        combination of the modifiers the project can feed (retrieval with documents, few-shot with
        prepared examples; a modifier with ``on_adapters`` False rides on the base only). Adapters
        carry the system prompt they were trained with. Adapters of other bases are left out (see
        :meth:`unavailable`)."""
        self.for_project(project)
        adapters = self._split(project)[0]
        cores = [Variant()] + [Variant(self._key(project, a.name), label=a.name,
                                       system_prompt=self._system_prompt(a.path)) for a in adapters]
        return with_modifiers(cores, [m for m in MODIFIERS if self._can_feed(project, m.needs)])

    def _can_feed(self, project: str, needs: str) -> bool:
        if needs == "search":
            return bool(self.kbs.get(project).documents())
        if needs == "examples":
            return self.examples_file(project) is not None
        raise ValueError(f"no project resource named {needs!r}")

    def examples_file(self, project: str) -> Path | None:
        """The training examples of the project's latest prepared dataset (what few-shot shows)."""
        prepared = self.behaviours.get(project).latest_prepared()
        return prepared.train_file if prepared is not None and prepared.train_count else None

    def examples(self, project: str, shots: int | None = None, order: str = "similar",
                 file: str | Path | None = None) -> FewShotPool | None:
        """The few-shot pool of the project's training examples (or of ``file``), tokens counted by the
        loaded model; None when there are none. Built once per file and model."""
        source = Path(file) if file else self.examples_file(project)
        if source is None:
            return None
        model = self.shared.get()
        key = (str(source), source.stat().st_mtime_ns, id(model.loaded))
        with self._lock:
            if key not in self._pools:
                self._pools[key] = model.examples_pool(read_conversations(source))
        pool = self._pools[key]
        return pool if shots is None and order == pool.order else pool.with_choice(shots, order)

    def aids(self, project: str, shots: int | None = None, order: str = "similar") -> Aids:
        """What this project lends its variants' modifiers: its documents' search, its examples."""
        documents = bool(self.kbs.get(project).documents())
        return Aids(search=self.search(project) if documents else None, examples=self.examples(project, shots, order))

    def names(self, project: str) -> list[str]:
        return [v.name for v in self.variants(project)]

    def resolve(self, project: str, name: str) -> Variant:
        found = next((v for v in self.variants(project) if v.name == name), None)
        core = Variant.parse(name).adapter
        mismatched = next((a for a in self._split(project)[1] if a.name == core), None)
        if found is None and mismatched is not None and getattr(mismatched, "is_full_model", False):
            raise InputError(f"{mismatched.name!r} is a full fine-tune: a whole model, not an adapter of the base",
                             f"Load its folder ({mismatched.path}) with the model picker or --model to chat with it.")
        if found is None and mismatched is not None:
            raise AdapterBaseMismatchError(mismatched.name, mismatched.base_model, self.shared.model.name)
        if found is None:
            raise InputError(f"Unknown variant {name!r}; available: {self.names(project)}")
        return found

    def search(self, project: str):
        kb = self.kbs.get(project)
        return lambda question: kb.search(question, 5, with_similarity=True)

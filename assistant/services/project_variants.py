"""The variants of a workspace's projects: which adapters of a project can ride on the loaded base,
attached on first use, and the retrieval each variant may use.

A service: it reads the project's adapters (through the tenant's Behaviours, so no job store is
opened and no project created by a read) and knowledge base and hands them to the runtime's one
shared :class:`~assistant.runtime.variants.VariantModel`.
"""

from __future__ import annotations

import threading

from assistant.core.errors import InputError
from assistant.runtime.models import same_model
from assistant.runtime.variants import AdapterBaseMismatchError, SharedVariantModel, Variant, VariantModel, adapter_key
from assistant.services.behaviour import Behaviours


class ProjectVariants:
    """The variants of one workspace's projects, their adapters attached on first use."""

    def __init__(self, workspace, shared: SharedVariantModel, kbs, behaviours: Behaviours | None = None):
        """``workspace``: the Workspace; ``shared``: the app's SharedVariantModel; ``kbs``: the
        workspace's KnowledgeBases; ``behaviours``: the workspace's Behaviours (the tenant's own, so
        each project's is opened once; default: new ones)."""
        self.workspace, self.shared, self.kbs = workspace, shared, kbs
        self.behaviours = behaviours or Behaviours(workspace)
        self._lock = threading.Lock()

    def _key(self, project: str, adapter: str) -> str:
        return adapter_key(self.workspace.project(project).path, adapter)

    def _split(self, project: str) -> tuple[list, list]:
        """This project's adapters: those trained on the loaded base, and the others."""
        base = self.shared.model.name
        adapters = self.behaviours.get(project).list_adapters()
        return ([a for a in adapters if same_model(a.base_model, base)],
                [a for a in adapters if not same_model(a.base_model, base)])

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
        return [(a.name, f"trained on {a.base_model}, not on the loaded {self.shared.model.name}") for a in others]

    def variants(self, project: str) -> list[Variant]:
        """This project's variants: the base and the adapters trained on it, each also with retrieval
        if it has documents. Adapters of other bases are left out (see :meth:`unavailable`)."""
        self.for_project(project)
        adapters = [a.name for a in self._split(project)[0]]
        cores = [Variant()] + [Variant(self._key(project, name), label=name) for name in adapters]
        with_retrieval = bool(self.kbs.get(project).documents())
        return [Variant(c.adapter, r, c.label) for c in cores for r in ((False, True) if with_retrieval else (False,))]

    def names(self, project: str) -> list[str]:
        return [v.name for v in self.variants(project)]

    def resolve(self, project: str, name: str) -> Variant:
        found = next((v for v in self.variants(project) if v.name == name), None)
        core = Variant.parse(name).adapter
        mismatched = next((a for a in self._split(project)[1] if a.name == core), None)
        if found is None and mismatched is not None:
            raise AdapterBaseMismatchError(mismatched.name, mismatched.base_model, self.shared.model.name)
        if found is None:
            raise InputError(f"Unknown variant {name!r}; available: {self.names(project)}")
        return found

    def search(self, project: str):
        kb = self.kbs.get(project)
        return lambda question: kb.search(question, 5, with_similarity=True)

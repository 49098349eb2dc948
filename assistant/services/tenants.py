"""Who sees what: with sign-in on, each user works in a workspace of their own.

The app holds one :class:`Tenant` per signed-in user (or one for everybody when nobody signs
in): that user's workspace and the services opened over it. The chat model and its adapters
are shared by all tenants, so memory does not grow with the number of users; everything that
names a project (folders, locks, indexes, Chroma collections, adapter keys, votes, jobs) is
resolved inside the tenant's workspace, so one user's project names never reach another's data.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from assistant.runtime.generation import SharedModel
from assistant.runtime.variants import SharedVariantModel
from assistant.services.advisor import Advisor
from assistant.services.behaviour import Behaviour, Behaviours
from assistant.services.knowledge import KnowledgeBases, KnowledgeSettings
from assistant.services.operator import OperatorPolicy
from assistant.services.project_variants import ProjectVariants
from assistant.services.workspace import DEFAULT_PROJECT, Workspace


@dataclass
class Tenant:
    """One user's workspace and the services over it."""

    workspace: Workspace
    advisor: Advisor
    knowledge: KnowledgeBases
    variants: ProjectVariants
    behaviours: Behaviours
    """The projects' training services, shared with ``variants`` (which reads their adapters)."""

    def behaviour(self, project: str) -> Behaviour:
        """The project's training service, kept so its job store is opened once; a project that
        does not exist is a WorkspaceError, never created here."""
        return self.behaviours.get(project)

    def forget(self, project: str) -> None:
        """Close what is open for a project about to be renamed or deleted."""
        self.knowledge.forget(project)
        self.behaviours.forget(project)


class Tenants:
    """The app's tenants, made on first request and kept for the life of the app."""

    def __init__(self, workspace: Workspace, knowledge: KnowledgeSettings | None = None,
                 model: SharedModel | None = None, project: str = DEFAULT_PROJECT,
                 policy: OperatorPolicy | None = None):
        """``workspace``: the app's workspace (users' workspaces live under it); ``project``: the
        project every tenant starts with; ``policy``: the judges and models the operator lets every
        tenant reach (default: the loaded model as judge, no extra model folder)."""
        self.workspace = workspace
        self.policy = policy or OperatorPolicy()
        self.knowledge_settings = knowledge
        self.model = model or SharedModel()
        self.first_model = self.model.name
        """The model the app started with (``serve --model``): web users may always switch back to it."""
        self.shared_variants = SharedVariantModel(self.model)
        self.project = project
        self._tenants: dict[str | None, Tenant] = {}
        self._lock = threading.Lock()

    def get(self, user: str | None) -> Tenant:
        """The tenant of a signed-in ``user``; None (nobody signs in) is the workspace itself."""
        with self._lock:
            if user not in self._tenants:
                workspace = self.workspace.for_user(user)
                workspace.ensure(self.project)
                knowledge = KnowledgeBases(workspace, self.knowledge_settings)
                behaviours = Behaviours(workspace)
                self._tenants[user] = Tenant(workspace, Advisor(workspace), knowledge,
                                             ProjectVariants(workspace, self.shared_variants, knowledge, behaviours),
                                             behaviours)
            return self._tenants[user]

    def for_request(self, request) -> Tenant:
        """The tenant of a Gradio request: its ``username`` is set only when sign-in is on."""
        return self.get(getattr(request, "username", None))

"""The kinds of help a variant can get on top of its model, and what each costs.

A variant is a model (the base or an adapter) with any of these modifiers: ``base``,
``base + few-shot``, ``snips + retrieval``. This table is the one place a modifier is declared:
variant names and their parsing, which variants a project offers, the Compare columns, blind A/B,
eval, chat, ``/v1`` and the verdict's cost order all read it. The runtime adds how each one builds
its prompt (assistant/runtime/variants.py, ``_APPLY``, one function per entry; a test checks that
every entry has one). Pure data: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Modifier:
    name: str
    """As it appears in a variant's name after " + " (``base + few-shot + retrieval``)."""
    needs: str
    """The project resource it draws on (a field of the runtime's ``Aids``)."""
    cost: int
    """Its rank in the cost order the verdict uses: prompting (1) < retrieval (2) < training (3)."""
    step: int
    """When it changes the prompt: lower first (retrieval rewrites the question's turn before few-shot
    measures what room is left for examples)."""
    on_adapters: bool
    """Offered on adapters too, or on the base only (an adapter already learnt the examples)."""
    what: str


MODIFIERS: tuple[Modifier, ...] = (
    Modifier("few-shot", "examples", 1, 2, False,
             "the task's system prompt and K of the user's examples as earlier turns"),
    Modifier("retrieval", "search", 2, 1, True, "passages found in the project's documents, cited as [n]"),
)
"""Every modifier, in the order names list them."""
MODIFIER_NAMES = tuple(m.name for m in MODIFIERS)
TRAINING_COST = 3
"""The cost rank of an adapter (training)."""


def variant_cost(name: str) -> tuple[int, int]:
    """A variant's place in the cost order, from its name: its dearest part, then how many parts it
    has, so prompting < retrieval < training < training + retrieval. The base alone is (0, 0)."""
    core, *modifiers = name.split(" + ")
    ranks = [m.cost for m in MODIFIERS if m.name in modifiers] + ([TRAINING_COST] if core != "base" else [])
    return max(ranks, default=0), len(ranks)

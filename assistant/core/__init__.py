"""Pure decisions: the task profile, the rules, the plan, the memory estimate, the catalog."""

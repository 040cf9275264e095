"""The decision: validation, `reconcile(world) -> plan` and `record_outcomes`, and the Jobs a plan creates.
Pure; imports `sundial.api` and `sundial.timing` only. `sundial.decide.reconcile` is the entry point and
lists the stages, one module each."""

"""The decision: validation and `reconcile(world) -> plan`, and the Jobs a plan creates. Pure; imports
`sundial.api` and `sundial.timing` only."""

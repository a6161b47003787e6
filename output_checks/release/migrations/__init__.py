"""The airlock's migrations of the registry: a branch of its own (label `airlock`), started from the shared history
in kernel/migrations/history. New ones: `python -m kernel.migrations airlock -m MESSAGE`."""

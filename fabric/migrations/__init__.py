"""The data fabric's migrations of the registry: a branch of its own (label `fabric`), started from the shared
history in kernel/migrations/history. New ones: `python -m kernel.migrations fabric -m MESSAGE`."""

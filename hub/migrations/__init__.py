"""The hub's migrations of the registry: a branch of its own (label `hub`), started from the shared history in
kernel/migrations/history. New ones: `python -m kernel.migrations hub -m MESSAGE`."""

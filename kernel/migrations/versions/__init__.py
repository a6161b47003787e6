"""The kernel's migrations of the registry: a branch of its own (label `kernel`), started from the shared history in
kernel/migrations/history. New ones: `python -m kernel.migrations kernel -m MESSAGE`."""

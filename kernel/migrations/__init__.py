"""The registry's migrations: the Alembic environment, the shared history and the kernel's own branch (kernel/db.py)."""

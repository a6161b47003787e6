"""Release requests: immutable snapshots of a project's outputs, the automated checks on them, independent reviews,
release to the egress store and download, every step audited. `airlock.py` is the business layer with every verb,
over the rules in `workflow/` and the tables in `states.py`; the CLI and the web app call it and nothing else."""

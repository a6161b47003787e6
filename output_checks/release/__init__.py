"""Release requests: immutable snapshots of a project's outputs, the automated checks on them, independent reviews,
release to the egress store and download, every step audited. `workflow.py` owns the rules; the CLI and the web
app call it and nothing else."""

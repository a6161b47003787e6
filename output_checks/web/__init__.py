"""The airlock web app: a JupyterHub service (or a stand-alone development server) where researchers request
release of their outputs and output checkers review them. Thin over `output_checks.release.workflow`: every page
and form calls the same functions as `enclave airlock ...`, and the workflow alone decides who may do what."""

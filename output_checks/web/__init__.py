"""The airlock web app: a JupyterHub service (or a stand-alone development server) where researchers request
release of their outputs and output checkers review them. Thin over the airlock's business layer
(`output_checks.release.airlock.Airlock`): every page and form calls the same verbs as `enclave airlock ...`, and
that layer alone decides who may do what."""

"""The airlock: screens every output before it may leave a workspace (checks engine, policy, findings).

`output_checks.engine.check_paths` is the entry point; `enclave airlock check` is its command line.
"""

"""`python -m provisioning.cli`: the `enclave` command."""

from provisioning.cli import main

main()

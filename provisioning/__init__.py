"""The admin side: the `enclave` command line and the idempotent provisioning steps behind it."""

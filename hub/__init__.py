"""JupyterHub for Enclave: its configuration, spawner, authenticator, roles and scopes, and the services it runs."""

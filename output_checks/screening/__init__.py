"""Identifier screening over text: Presidio with Enclave's recognisers, and keyed-hash known identifiers."""

"""Reproducible benchmarks: each runs a named baseline and Enclave's code side by side in one run and reports the
ratio, with the peak memory of each candidate at two sizes to show it stays flat as the data grows."""

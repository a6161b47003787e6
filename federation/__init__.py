"""Federated analysis: each hospital keeps its data; one notebook runs at every site and only what each site's
airlock released comes back, sealed to the coordinator's project, to be pooled there.

By concept: `pki` and `cli_consortium` (the consortium's certificate authority, the mutual-TLS contexts), `tasks`
(the signed task manifest and its verification at a site), `sealing` (released outputs sealed to a federated
project's key), `site_policy` (what a site accepts), `states` (a task's states at a site, as data), `models` (the
tables), `coordinator` and `coordinator_server` (the coordinator's business layer and its server for the sites),
`agent` and `site_setup` (a site's pull-only agent; joining and its policy), `pooling`, `pooled_counts`, `coverage`,
`forest_plot` and `pooled_results` (pooling what came back), `linkage` (patients at several sites counted once,
through keyed hashes the coordinator cannot reverse), `local_consortium` (a consortium on one machine), `cli`.
"""

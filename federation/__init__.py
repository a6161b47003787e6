"""Federated analysis: each hospital keeps its data; one notebook runs at every site and only what each site's
airlock released comes back, sealed to the coordinator's project, to be pooled there.

By concept: `pki` (the consortium's certificate authority and the mutual-TLS contexts), `tasks` (the signed task
manifest and its verification at a site), `sealing` (outputs sealed to a federated project's key), `site_policy`
(what a site accepts), `pooling` (meta-analysis, pooled counts with suppression that stays safe across sites),
`linkage` (patients at several sites counted once, through keyed hashes the coordinator cannot reverse),
`differencing` (a site's check of a new release against its earlier ones). The coordinator's server and a site's
pull-only agent sit on these.
"""

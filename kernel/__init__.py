"""The platform's ground floor, below every other package: where an installation keeps its state (config), the
registry database with its migrations and the one transaction helper every writer uses (db), the hash-chained audit
log and its anchors (audit, audit_anchors, models), the errors a user can act on (errors), document loading
(documents), and the small facts written once: the clock (clock) and a file's SHA-256 (digests). It imports no other
Enclave package."""

"""National patient identifiers: each scheme's normaliser and check-digit validator (one module a scheme) and the
table of schemes a site may declare (`schemes.py`)."""

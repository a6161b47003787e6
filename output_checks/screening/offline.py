"""Nothing in the airlock may reach the network: tldextract (used by Presidio's e-mail and URL recognisers) would
fetch the Public Suffix List on first use. Point it at the snapshot bundled in its wheel, with no disk cache."""

from __future__ import annotations


def use_bundled_public_suffix_list() -> None:
    import tldextract.tldextract as tld

    if getattr(tld.TLD_EXTRACTOR, "suffix_list_urls", None) != ():
        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

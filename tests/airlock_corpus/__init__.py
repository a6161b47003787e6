"""A labelled corpus of workspace outputs for testing the airlock's automated checks (see build.py)."""

from tests.airlock_corpus.build import VERDICTS, LabelledFile, build_corpus, corpus_table, planted_identifiers

__all__ = ["VERDICTS", "LabelledFile", "build_corpus", "corpus_table", "planted_identifiers"]

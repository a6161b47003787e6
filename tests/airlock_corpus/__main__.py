"""`python -m tests.airlock_corpus OUT`: write OUT/corpus and OUT/labels.json and print the label table."""

import sys

from tests.airlock_corpus.build import main

sys.exit(main())

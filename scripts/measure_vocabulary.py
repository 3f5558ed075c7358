"""Measure the vocabulary size trade-off on the scrub corpus (dev-time; no sources needed).

For each candidate size it builds the vocabulary from the recorded inputs and scrubs
every corpus template with two kinds of planted names:

- *rare words*: real English words ranked 20,000-60,000 ("acme", "payslips"), the
  kind of word a bucket or project is named after;
- *any words*: real English words drawn evenly from the 60,000 most frequent, the
  way a bucket may be named after any word ("backups", "images");
- *surnames*: the US Census surnames that are also English words, whichever the
  name filter kept.

It reports how many planted names survive (leaks), how many facts survive (every
``[[...]]`` in the templates) and how many of the templates' own words survive
(readability). The chosen size is ``ENGLISH_WORDS`` in gen_vocabulary.py.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

import gen_vocabulary  # noqa: E402

from consent.scrub import text as scrub_text_module  # noqa: E402
from tests.scrub_corpus import templates  # noqa: E402


def main() -> int:
    rows = gen_vocabulary.read_inputs()
    ranked = sorted(
        ((float(extra), word) for kind, word, extra in rows if kind == "word"), reverse=True
    )
    names = {word for kind, word, _ in rows if kind == "name"}
    rng = random.Random(7)  # noqa: S311 -- a fixed sample, not a secret
    rare = rng.sample([word for _, word in ranked[20_000:60_000] if len(word) >= 4], 300)
    anywords = rng.sample([word for _, word in ranked[:60_000] if len(word) >= 4], 300)
    surnames = rng.sample(sorted(names & {word for _, word in ranked[:60_000]}), 300)
    corpus = templates()
    print("size   words  rare-leak  any-leak  surname-leak  facts-kept  template-words-kept")
    for size in (5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 60_000):
        vocabulary_text, _ = gen_vocabulary.build(rows, size)
        vocab = scrub_text_module.Vocabulary.from_text(vocabulary_text)
        scrub_text_module.vocabulary = lambda vocab=vocab: vocab  # type: ignore[misc]
        leaks = {"rare": 0, "any": 0, "surname": 0}
        facts = kept_facts = words = kept_words = 0
        for index, template in enumerate(corpus):
            for kind, pool in (("rare", rare), ("any", anywords), ("surname", surnames)):
                name = pool[index % len(pool)]
                out = scrub_text_module.scrub_text(template.plant(name))
                leaks[kind] += f" {name} " in f" {out.lower()} ".replace("'", " ")
            clean = template.plant("")
            out = scrub_text_module.scrub_text(clean)
            for fact in template.facts:
                facts += 1
                kept_facts += fact in out
            plain = [word for word in clean.split() if word.isalpha()]
            words += len(plain)
            kept_words += sum(1 for word in plain if word in out.split())
        print(
            f"{size:6d} {len(vocab.words):6d} "
            f"{leaks['rare'] / len(corpus):9.1%} {leaks['any'] / len(corpus):9.1%} "
            f"{leaks['surname'] / len(corpus):13.1%} "
            f"{kept_facts / facts:11.1%} {kept_words / words:20.1%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Word, shape and affix features of the POS tagger, and their vocabularies.

Each token becomes one word id and seven feature ids (the paper's "7
features x 20"; it does not list them, so these are ours, the usual ones for
English tagging):

    case     letters' capitalisation: lower, upper (all caps), title (first
             letter capital, rest lower), mixed, or none (no letters)
    digits   none, some, or all (every character is a digit or one of .,-/:)
    hyphen   whether the form contains "-"
    prefix2, prefix3, suffix2, suffix3
             the first / last 2 and 3 characters of the lower-cased form
             (the whole form when shorter)

Unknown words. The word vocabulary holds the normalised forms (lower-cased,
every digit replaced by 0) seen at least ``min_count`` times (default 2) in
the training sentences; everything else, at training time too, maps to the id
0 (UNK). Training words seen once therefore train the UNK vector, which stands
for every dev/test word never seen in training; such words are then tagged
from their shape and affix features and their context. Affix vocabularies use
the same rule, with their own UNK. Case and digit classes are closed sets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

FEATURES = ("case", "digits", "hyphen", "prefix2", "prefix3", "suffix2", "suffix3")
UNK = "<unk>"
_NUMBER_CHARS = set("0123456789.,-/:")


def normalise(form: str) -> str:
    """The word-vocabulary key: lower case, every digit replaced by 0."""
    return "".join("0" if ch.isdigit() else ch for ch in form.lower())


def case_class(form: str) -> str:
    letters = [ch for ch in form if ch.isalpha()]
    if not letters:
        return "none"
    if all(ch.islower() for ch in letters):
        return "lower"
    if all(ch.isupper() for ch in letters):
        return "upper"
    if letters[0].isupper() and all(ch.islower() for ch in letters[1:]):
        return "title"
    return "mixed"


def digit_class(form: str) -> str:
    if not any(ch.isdigit() for ch in form):
        return "none"
    return "all" if all(ch in _NUMBER_CHARS for ch in form) else "some"


def token_features(form: str) -> tuple[str, ...]:
    """The seven feature values of one form, in FEATURES order."""
    low = form.lower()
    return (
        case_class(form),
        digit_class(form),
        "yes" if "-" in form else "no",
        low[:2],
        low[:3],
        low[-2:],
        low[-3:],
    )


class Vocabulary:
    """Strings to ids; id 0 is UNK, the rest ordered by decreasing count, then by string."""

    def __init__(self, counts: Counter[str], min_count: int = 1) -> None:
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        kept = sorted((s for s, c in counts.items() if c >= min_count), key=lambda s: (-counts[s], s))
        self.strings = [UNK] + [s for s in kept if s != UNK]
        self.ids = {s: i for i, s in enumerate(self.strings)}

    def __len__(self) -> int:
        return len(self.strings)

    def __contains__(self, s: str) -> bool:
        return s in self.ids and s != UNK

    def id(self, s: str) -> int:
        return self.ids.get(s, 0)

    def to_list(self) -> list[str]:
        return list(self.strings)


@dataclass
class Encoded:
    """One sentence as ids: words (T,), features (T, 7), tags (T,), all int64."""

    words: np.ndarray
    features: np.ndarray
    tags: np.ndarray


class FeatureEncoder:
    """Vocabularies built from training sentences; encodes any sentence.

    Args:
        forms: the training sentences' word forms.
        tags: every tag of the scheme (the union over the splits: the tag set is
            the annotation's, and the output layer needs a row for each).
        min_count: a word or affix needs this many training occurrences to get
            its own id (default 2: words seen once become UNK).
    """

    def __init__(self, forms: Iterable[Sequence[str]], tags: Iterable[str], min_count: int = 2) -> None:
        words: Counter[str] = Counter()
        features: list[Counter[str]] = [Counter() for _ in FEATURES]
        for sentence in forms:
            for form in sentence:
                words[normalise(form)] += 1
                for counter, value in zip(features, token_features(form)):
                    counter[value] += 1
        self.min_count = min_count
        self.words = Vocabulary(words, min_count)
        # Closed classes keep every value; affixes follow the word rule.
        self.features = [
            Vocabulary(counter, 1 if name in ("case", "digits", "hyphen") else min_count)
            for name, counter in zip(FEATURES, features)
        ]
        self.tags = sorted(set(tags))
        if not self.tags:
            raise ValueError("no tags: the tag set is empty")
        self.tag_ids = {t: i for i, t in enumerate(self.tags)}

    def encode(self, forms: Sequence[str], tags: Sequence[str]) -> Encoded:
        if len(forms) != len(tags):
            raise ValueError(f"{len(forms)} forms but {len(tags)} tags")
        unknown = [t for t in tags if t not in self.tag_ids]
        if unknown:
            raise ValueError(f"tags {sorted(set(unknown))} are not in the tag set")
        words = np.array([self.words.id(normalise(f)) for f in forms], dtype=np.int64)
        features = np.array(
            [[v.id(s) for v, s in zip(self.features, token_features(f))] for f in forms], dtype=np.int64
        ).reshape(len(forms), len(FEATURES))
        labels = np.array([self.tag_ids[t] for t in tags], dtype=np.int64)
        return Encoded(words, features, labels)

    def sizes(self) -> dict[str, int]:
        return {
            "words": len(self.words),
            **{n: len(v) for n, v in zip(FEATURES, self.features)},
            "tags": len(self.tags),
        }

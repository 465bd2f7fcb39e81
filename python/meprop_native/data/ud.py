"""Universal Dependencies English EWT: sentences for the tagger and the parser.

The paper tags and parses the Penn Treebank (WSJ), which is not freely
available; UD English EWT (release 2.16) is, and its XPOS column holds Penn
Treebank tags. Files are read with the ``conllu`` package. Multiword-token
lines (ids like ``3-4``) and empty nodes (ids like ``8.1``) are skipped: the
syntactic words are what is tagged and parsed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Union

from .paths import DEFAULT_TIMEOUT, DataFile, locate_files

__all__ = [
    "UD_EWT_FILES",
    "UD_MIRRORS",
    "ConlluFormatError",
    "Sentence",
    "UDSplits",
    "load_ud_ewt",
    "locate_ud_ewt",
    "read_conllu",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The release the md5s below belong to (tag r2.16 of the treebank's repository).
UD_MIRRORS: tuple[str, ...] = ("https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.16/",)

UD_EWT_FILES: dict[str, DataFile] = {
    "train": DataFile("en_ewt-ud-train.conllu", "fa9865539033efcf99ea90f8b93d6646"),
    "dev": DataFile("en_ewt-ud-dev.conllu", "cb1da95ff28a449cb9bc286c922e15e1"),
    "test": DataFile("en_ewt-ud-test.conllu", "01630da0129f8600ef761dbcfd18b9e2"),
}


class ConlluFormatError(ValueError):
    """A CoNLL-U file cannot be parsed or its trees are malformed."""


@dataclass(frozen=True)
class Sentence:
    """One sentence: per-word columns of the CoNLL-U file, in order.

    ``heads[i]`` is the 1-based index of word i's head, 0 for the root.
    """

    forms: tuple[str, ...]
    upos: tuple[str, ...]
    xpos: tuple[str, ...]
    heads: tuple[int, ...]
    deprels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.forms)


class UDSplits(NamedTuple):
    train: list[Sentence]
    dev: list[Sentence]
    test: list[Sentence]


def _sentence(tokens: list, path: Path, number: int) -> Sentence:
    words = [t for t in tokens if isinstance(t["id"], int)]
    where = f"{os.fspath(path)}: sentence {number}"
    if not words:
        raise ConlluFormatError(f"{where} has no words")
    if [t["id"] for t in words] != list(range(1, len(words) + 1)):
        raise ConlluFormatError(f"{where}: word ids are not 1..{len(words)} in order")
    heads = []
    for t in words:
        head = t["head"]
        if not isinstance(head, int) or not 0 <= head <= len(words) or head == t["id"]:
            raise ConlluFormatError(f"{where}, word {t['id']} ({t['form']!r}): bad head {head!r}")
        heads.append(head)
    if heads.count(0) != 1:
        raise ConlluFormatError(f"{where}: {heads.count(0)} words attach to the root, expected 1")

    def column(name: str) -> tuple[str, ...]:
        values = tuple(t[name] for t in words)
        if any(not isinstance(v, str) or not v for v in values):
            raise ConlluFormatError(f"{where}: empty {name.upper()} column")
        return values

    return Sentence(column("form"), column("upos"), column("xpos"), tuple(heads), column("deprel"))


def read_conllu(path: PathLike) -> list[Sentence]:
    """Reads every sentence of a CoNLL-U file.

    Raises:
        ConlluFormatError: the file cannot be parsed, or a sentence has no
            words, ids out of order, a head outside the sentence or pointing
            at itself, not exactly one root, or an empty column.
    """
    import conllu  # a core dependency; imported here so the data package loads fast
    from conllu.exceptions import ParseException

    path = Path(path)
    sentences: list[Sentence] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, tokens in enumerate(conllu.parse_incr(handle), start=1):
                try:
                    sentences.append(_sentence(tokens, path, number))
                except KeyError as error:  # a line with fewer than the ten columns
                    raise ConlluFormatError(
                        f"{os.fspath(path)}: sentence {number}: a word has no {error.args[0].strip(chr(39))} column"
                    ) from error
    except (ParseException, UnicodeDecodeError) as error:
        raise ConlluFormatError(f"{os.fspath(path)}: not valid CoNLL-U ({error})") from error
    if not sentences:
        raise ConlluFormatError(f"{os.fspath(path)}: no sentences")
    return sentences


def locate_ud_ewt(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Path]:
    """Paths of the three EWT files ({"train", "dev", "test"}), downloading missing ones.

    Searched in ``data_dir``, ``$MEPROP_DATA`` and the user cache directory,
    each directly and in its ``ud_english_ewt/`` subdirectory.
    """
    by_name = locate_files(
        list(UD_EWT_FILES.values()),
        data_dir,
        subdir="ud_english_ewt",
        mirrors=UD_MIRRORS,
        download=download,
        verify=verify,
        timeout=timeout,
        dataset="UD English EWT",
    )
    return {split: by_name[spec.name] for split, spec in UD_EWT_FILES.items()}


def load_ud_ewt(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> UDSplits:
    """The train / dev / test sentences of UD English EWT r2.16.

    Raises:
        DatasetNotFoundError: files missing and not downloadable.
        ChecksumError: a local file has the wrong md5 (``verify=True``).
        ConlluFormatError: a file is malformed.
    """
    paths = locate_ud_ewt(data_dir, download, verify=verify, timeout=timeout)
    return UDSplits(*(read_conllu(paths[split]) for split in UDSplits._fields))

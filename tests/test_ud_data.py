"""The CoNLL-U reader and the UD English EWT loader (generated files; real data when present)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meprop_native.data import (
    UD_EWT_FILES,
    ChecksumError,
    ConlluFormatError,
    DatasetNotFoundError,
    Sentence,
    load_ud_ewt,
    read_conllu,
)

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

GOOD = """\
# sent_id = s1
# text = Don't stop.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVB\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tstop\tstop\tVERB\tVB\t_\t0\troot\t_\t_
3.1\tit\tit\tPRON\tPRP\t_\t_\t_\t3:obj\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_

"""


def write(tmp_path: Path, text: str, name: str = "x.conllu") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_words_and_skips_multiword_tokens_and_empty_nodes(tmp_path):
    first, second = read_conllu(write(tmp_path, GOOD))
    assert first == Sentence(
        forms=("Do", "n't", "stop", "."),
        upos=("AUX", "PART", "VERB", "PUNCT"),
        xpos=("VB", "RB", "VB", "."),
        heads=(3, 3, 0, 3),
        deprels=("aux", "advmod", "root", "punct"),
    )
    assert len(first) == 4
    assert second.forms == ("Yes",) and second.heads == (0,)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1\tA\ta\tX\tX\t_\t0\troot\t_\t_\n2\tB\tb\tX\tX\t_\t0\troot\t_\t_\n\n", "2 words attach to the root"),
        ("1\tA\ta\tX\tX\t_\t2\tdep\t_\t_\n2\tB\tb\tX\tX\t_\t1\tdep\t_\t_\n\n", "0 words attach to the root"),
        ("1\tA\ta\tX\tX\t_\t5\tdep\t_\t_\n2\tB\tb\tX\tX\t_\t0\troot\t_\t_\n\n", r"word 1 \('A'\): bad head 5"),
        ("1\tA\ta\tX\tX\t_\t1\tdep\t_\t_\n2\tB\tb\tX\tX\t_\t0\troot\t_\t_\n\n", "bad head 1"),
        ("1\tA\ta\tX\tX\t_\t0\troot\t_\t_\n3\tB\tb\tX\tX\t_\t1\tdep\t_\t_\n\n", "word ids are not 1..2"),
        ("1\tA\ta\tX\t_\t_\t0\troot\t_\t_\n\n", "empty XPOS column"),
        ("1-2\tAB\t_\t_\t_\t_\t_\t_\t_\t_\n\n", "has no words"),
        ("1\tA\ta\tX\tX\t_\tzz\troot\t_\t_\n\n", "not valid CoNLL-U"),
        ("abc\tA\ta\tX\tX\t_\t0\troot\t_\t_\n\n", "not valid CoNLL-U"),
        ("", "no sentences"),
    ],
)
def test_malformed_files_name_the_file_and_the_problem(tmp_path, text, match):
    path = write(tmp_path, text, "bad.conllu")
    with pytest.raises(ConlluFormatError, match=match) as info:
        read_conllu(path)
    assert "bad.conllu" in str(info.value)
    assert isinstance(info.value, ValueError)  # the command line reports ValueErrors as bad input


def test_missing_files_say_which_files_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MEPROP_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError) as info:
        load_ud_ewt(tmp_path / "nowhere", download=False)
    message = str(info.value)
    for spec in UD_EWT_FILES.values():
        assert spec.name in message and spec.md5 in message
    assert "ud_english_ewt" in message and "--data-dir" in message


def test_local_file_with_the_wrong_checksum_is_refused(tmp_path):
    data = tmp_path / "ud_english_ewt"
    data.mkdir()
    for spec in UD_EWT_FILES.values():
        write(data, GOOD, spec.name)
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        load_ud_ewt(tmp_path, download=False)
    splits = load_ud_ewt(tmp_path, download=False, verify=False)
    assert [len(s) for s in splits] == [2, 2, 2]


@pytest.mark.skipif(
    not (REAL_DATA / "ud_english_ewt" / UD_EWT_FILES["train"].name).is_file(),
    reason=f"UD English EWT not found in {REAL_DATA}/ud_english_ewt (the shared data copy next to the repository)",
)
def test_real_ewt_counts_match_the_release_statistics():
    splits = load_ud_ewt(REAL_DATA, download=False)
    # sentences and syntactic words of UD English EWT r2.16 (its stats.xml)
    assert [len(s) for s in splits] == [12544, 2001, 2077]
    assert [sum(map(len, s)) for s in splits] == [204577, 25147, 25094]
    tags = {tag for sentence in splits.train for tag in sentence.xpos}
    assert {"NN", "NNP", "VBZ", "DT", "IN", "-LRB-", ","} <= tags

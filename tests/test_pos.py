"""The POS task: features, vocabulary and unknown words, batching, the tagger's
gradients, end-to-end training on generated CoNLL-U, resume, and the command
line on a slice of the real treebank (skipped when it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from meprop_native.cli import build_parser
from meprop_native.cli import main as meprop_main
from meprop_native.data.ud import UDSplits, read_conllu
from meprop_native.nn import softmax_cross_entropy
from meprop_native.tasks import pos
from meprop_native.tasks.pos.features import (
    FEATURES,
    FeatureEncoder,
    Vocabulary,
    case_class,
    digit_class,
    normalise,
    token_features,
)
from meprop_native.tasks.pos.model import TaggedSentences, Tagger

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HAVE_EWT = (REAL_DATA / "ud_english_ewt" / "en_ewt-ud-train.conllu").exists()


# ---- features and vocabulary -------------------------------------------------


@pytest.mark.parametrize(
    ("form", "case"),
    [
        ("dog", "lower"),
        ("Dog", "title"),
        ("USA", "upper"),
        ("iPhone", "mixed"),
        ("McDonald", "mixed"),
        ("42", "none"),
        (",", "none"),
        ("A", "upper"),
        ("x-Ray", "mixed"),
    ],
)
def test_case_class(form, case):
    assert case_class(form) == case


@pytest.mark.parametrize(
    ("form", "kind"), [("dog", "none"), ("1,000.5", "all"), ("3/4", "all"), ("A4", "some"), ("90s", "some")]
)
def test_digit_class(form, kind):
    assert digit_class(form) == kind


def test_token_features_are_seven_and_use_the_lower_cased_form():
    feats = token_features("Well-Known")
    assert len(feats) == len(FEATURES) == 7
    assert feats == ("mixed", "none", "yes", "we", "wel", "wn", "own")
    assert token_features("a") == ("lower", "none", "no", "a", "a", "a", "a")
    assert normalise("Route 66") == "route 00"


def test_vocabulary_unk_is_zero_and_rare_strings_map_to_it():
    from collections import Counter

    v = Vocabulary(Counter({"the": 5, "cat": 2, "zebra": 1}), min_count=2)
    assert v.to_list() == ["<unk>", "the", "cat"]
    assert v.id("the") == 1 and v.id("zebra") == 0 and v.id("never") == 0
    assert "cat" in v and "zebra" not in v and "<unk>" not in v
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary(Counter(), 0)


def test_encoder_maps_singletons_and_unseen_words_to_unk_but_keeps_their_features():
    train = [("The", "dog", "barks"), ("The", "dog", "sleeps")]
    enc = FeatureEncoder(train, ["DT", "NN", "VBZ"], min_count=2)
    e = enc.encode(("The", "dog", "sleeps"), ("DT", "NN", "VBZ"))
    assert e.words.tolist()[:2] != [0, 0] and e.words[2] == 0  # "sleeps" was seen once
    unseen = enc.encode(("Cats",), ("NN",))
    assert unseen.words[0] == 0
    assert unseen.features[0, 0] == enc.features[0].id("title")  # shape still known
    assert unseen.features.shape == (1, 7) and unseen.tags.tolist() == [enc.tag_ids["NN"]]
    with pytest.raises(ValueError, match="not in the tag set"):
        enc.encode(("dog",), ("XX",))
    with pytest.raises(ValueError, match="2 forms but 1 tags"):
        enc.encode(("a", "b"), ("DT",))
    assert enc.sizes()["tags"] == 3


# ---- generated treebank ------------------------------------------------------

WORDS = {
    "DT": ["the", "a", "this", "every"],
    "NN": ["dog", "cat", "idea", "table", "river", "song"],
    "VBZ": ["sees", "likes", "finds", "hears"],
    "JJ": ["big", "red", "old", "quiet"],
    ".": [".", "!"],
}
PATTERNS = [("DT", "NN", "VBZ", "DT", "NN", "."), ("DT", "JJ", "NN", "VBZ", "."), ("NN", "VBZ", "DT", "JJ", "NN", ".")]


def conllu_text(rng, n: int) -> str:
    blocks = []
    for s in range(n):
        tags = PATTERNS[rng.integers(len(PATTERNS))]
        lines = [f"# sent_id = g{s}"]
        for i, tag in enumerate(tags, start=1):
            form = WORDS[tag][rng.integers(len(WORDS[tag]))]
            if i == 1:
                form = form.capitalize()
            head, rel = (0, "root") if i == 1 else (1, "dep")
            lines.append(f"{i}\t{form}\t{form.lower()}\tX\t{tag}\t_\t{head}\t{rel}\t_\t_")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks) + "\n"


@pytest.fixture(scope="module")
def tiny_treebank(tmp_path_factory) -> UDSplits:
    folder = tmp_path_factory.mktemp("treebank")
    rng = np.random.default_rng(7)
    splits = []
    for name, n in (("train", 60), ("dev", 15), ("test", 15)):
        path = folder / f"{name}.conllu"
        path.write_text(conllu_text(rng, n), encoding="utf-8")
        splits.append(read_conllu(path))  # through the conllu package, like the real data
    return UDSplits(*splits)


def tagger_args(tmp_path: Path, *extra: str):
    argv = ["train", "pos", "--hidden", "16", "--no-progress", "--out", str(tmp_path / "run"), *extra]
    return build_parser().parse_args(argv)


def test_batches_pack_sentences_with_offsets(tiny_treebank):
    enc = FeatureEncoder((s.forms for s in tiny_treebank.train), (t for s in tiny_treebank.train for t in s.xpos))
    data = TaggedSentences([enc.encode(s.forms, s.xpos) for s in tiny_treebank.train])
    inputs, tags = data.batch(np.array([3, 0]))
    lengths = [len(tiny_treebank.train[3]), len(tiny_treebank.train[0])]
    assert inputs.offsets.tolist() == [0, lengths[0], sum(lengths)]
    assert inputs.words.shape == tags.shape == (sum(lengths),) and inputs.features.shape == (sum(lengths), 7)
    np.testing.assert_array_equal(tags[: lengths[0]], data.sentences[3].tags)


def test_tagger_gradient_reaches_the_embeddings(tiny_treebank):
    """A dense float64 tagger against finite differences of the loss, embeddings included."""
    enc = FeatureEncoder((s.forms for s in tiny_treebank.train), (t for s in tiny_treebank.train for t in s.xpos))
    data = TaggedSentences([enc.encode(s.forms, s.xpos) for s in tiny_treebank.train])
    model = Tagger(enc.sizes(), len(enc.tags), hidden=6, k=None, word_dim=4, feature_dim=3, dtype=np.float64)
    inputs, tags = data.batch(np.array([0, 1]))

    def loss() -> float:
        return softmax_cross_entropy(model.forward(inputs), tags)[0]

    _, grad = softmax_cross_entropy(model.forward(inputs), tags)
    model.backward(grad)
    analytic = {name: p.dense_grad() for name, p in model.named_parameters()}
    eps = 1e-6
    for name, p in model.named_parameters():
        if name in ("word_embedding", "feature_embedding.suffix3"):
            rows = np.unique(inputs.words if name == "word_embedding" else inputs.features[:, 6])[:2]
        else:
            rows = [0]
        for r in rows:
            flat = p.matrix()
            old = flat[r, 0]
            flat[r, 0] = old + eps
            up = loss()
            flat[r, 0] = old - eps
            down = loss()
            flat[r, 0] = old
            assert abs((up - down) / (2 * eps) - analytic[name].reshape(flat.shape)[r, 0]) < 1e-6, name


def test_training_on_generated_conllu_learns_the_tags(tmp_path, tiny_treebank):
    summary = pos.train_tagger(
        tagger_args(tmp_path, "--epochs", "4", "--k", "4", "--optimizer", "adam", "--lr", "0.01", "--threads", "1"),
        tiny_treebank,
    )
    assert summary["metric"] == "accuracy"
    assert summary["test_at_best_dev"] > 0.9  # five tags, unambiguous words: the tagger learns them
    assert set(summary["test_metrics_at_best_dev"]) == {"accuracy", "oov_accuracy", "oov_share"}
    assert summary["time"]["backprop"] > 0
    vocab = json.loads((tmp_path / "run" / "vocabulary.json").read_text())
    assert vocab["words"][0] == "<unk>" and vocab["tags"] == [".", "DT", "JJ", "NN", "VBZ"]
    assert (tmp_path / "run" / "best_model.npz").exists()


def test_training_with_batches_of_sentences_runs_them_in_parallel(tmp_path, tiny_treebank):
    summary = pos.train_tagger(
        tagger_args(
            tmp_path,
            "--epochs",
            "6",
            "--k",
            "4",
            "--optimizer",
            "adam",
            "--lr",
            "0.02",
            "--batch-size",
            "4",
            "--threads",
            "2",
        ),
        tiny_treebank,
    )
    assert summary["history"][-1]["step"] == 6 * 15  # 60 sentences in batches of 4
    assert summary["test_at_best_dev"] > 0.8


def test_resume_gives_the_same_model(tmp_path, tiny_treebank):
    straight = tmp_path / "straight"
    pos.train_tagger(tagger_args(straight, "--epochs", "2", "--k", "3"), tiny_treebank)
    split = tmp_path / "split"
    pos.train_tagger(tagger_args(split, "--epochs", "1", "--k", "3"), tiny_treebank)
    pos.train_tagger(tagger_args(split, "--epochs", "2", "--k", "3", "--resume"), tiny_treebank)
    a = np.load(straight / "run" / "best_model.npz")
    b = np.load(split / "run" / "best_model.npz")
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        assert a[name].tobytes() == b[name].tobytes(), name
    la = [json.loads(line)["train_loss"] for line in (straight / "run" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(line)["train_loss"] for line in (split / "run" / "metrics.jsonl").read_text().splitlines()]
    assert la == lb


def test_resume_inside_a_warm_up_gives_the_same_model(tmp_path, tiny_treebank):
    # 30 steps an epoch: the 40-step warm-up goes on after the resume point.
    warm = ("--k", "3", "--warmup-steps", "40", "--batch-size", "2")
    straight, split = tmp_path / "straight", tmp_path / "split"
    pos.train_tagger(tagger_args(straight, "--epochs", "2", *warm), tiny_treebank)
    pos.train_tagger(tagger_args(split, "--epochs", "1", *warm), tiny_treebank)
    pos.train_tagger(tagger_args(split, "--epochs", "2", "--resume", *warm), tiny_treebank)
    a = np.load(straight / "run" / "best_model.npz")
    b = np.load(split / "run" / "best_model.npz")
    for name in a.files:
        assert a[name].tobytes() == b[name].tobytes(), name
    summary = json.loads((straight / "run" / "summary.json").read_text())
    assert summary["run"]["warmup_steps"] == 40
    # The ramp kept more than k=3 of the 4h=64 gate entries over the run.
    assert summary["kept_fraction"]["all"] > 3 / 64


def test_bad_arguments_are_rejected(tmp_path, tiny_treebank):
    with pytest.raises(ValueError, match="--k must be >= 1"):
        pos.train_tagger(tagger_args(tmp_path, "--k", "0"), tiny_treebank)
    with pytest.raises(ValueError, match="--hidden must be >= 1"):
        pos.train_tagger(tagger_args(tmp_path, "--hidden", "0"), tiny_treebank)


def test_cli_reports_missing_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEPROP_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MEPROP_OFFLINE", "1")
    code = meprop_main(
        [
            "train",
            "pos",
            "--data-dir",
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
            "--k",
            "0",
        ]
    )
    assert code == 2
    assert "--k must be >= 1" in capsys.readouterr().err


@pytest.mark.skipif(
    not HAVE_EWT,
    reason=f"UD English EWT not found in {REAL_DATA}/ud_english_ewt (the shared data copy next to the repository)",
)
def test_cli_smoke_on_a_slice_of_the_real_treebank(tmp_path, capsys):
    out = tmp_path / "run"
    code = meprop_main(
        [
            "train",
            "pos",
            "--data-dir",
            str(REAL_DATA),
            "--train-limit",
            "40",
            "--eval-limit",
            "20",
            "--epochs",
            "1",
            "--hidden",
            "32",
            "--threads",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["train_sentences"] == 40
    assert 0.0 < summary["test_at_best_dev"] <= 1.0
    assert summary["run"]["vocabulary"]["tags"] >= 45  # the PTB tags of the three splits
    assert '"best_dev"' in capsys.readouterr().out

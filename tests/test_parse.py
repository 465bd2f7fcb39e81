"""Tests of the dependency parser (meprop_native.tasks.parse).

The transition system is held to a plain one-sentence reference on generated
projective trees; features to a reference built from that reference's arcs;
the scorer to hand-counted examples; training end to end on a small generated
language; the command line on a slice of UD English EWT when the shared copy
next to the repository exists (skipped otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from meprop_native import thread_limits
from meprop_native.cli import main as meprop_main
from meprop_native.data.ud import Sentence
from meprop_native.nn import Embedding
from meprop_native.optim import AdaGrad, Adam
from meprop_native.tasks.parse.arc_standard import (
    SHIFT,
    BatchedConfigurations,
    Configuration,
    is_projective,
    left_arc,
    num_transitions,
    oracle_sequence,
    right_arc,
)
from meprop_native.tasks.parse.data import attachment_evaluator, prepare
from meprop_native.tasks.parse.decode import parse
from meprop_native.tasks.parse.examples import (
    gold_arrays,
    oracle_examples,
    split_projective,
)
from meprop_native.tasks.parse.features import NUM_FEATURES, extract, position_ids
from meprop_native.tasks.parse.model import ParserModel
from meprop_native.tasks.parse.scoring import PUNCTUATION_TAGS, attachment_scores
from meprop_native.tasks.parse.vocab import NULL, ROOT, UNK, Vocab, universal_label
from meprop_native.train import Splits, TrainConfig, Trainer
from meprop_native.train.simplify import Simplifier, SimplifyConfig

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LABELS = ["amod", "det", "nsubj", "obj", "punct", "root"]


# ---- generated trees ------------------------------------------------------------


def random_projective_heads(rng: np.random.Generator, n: int) -> list[int]:
    """A random projective tree: each span picks a head, its sides attach to it."""
    heads = [0] * n

    def build(lo: int, hi: int, head: int) -> None:
        if lo > hi:
            return
        r = int(rng.integers(lo, hi + 1))
        heads[r - 1] = head
        build(lo, r - 1, r)
        build(r + 1, hi, r)

    build(1, n, 0)
    return heads


def random_labels(rng: np.random.Generator, heads: list[int]) -> list[str]:
    others = [label for label in LABELS if label != "root"]
    return ["root" if h == 0 else others[int(rng.integers(len(others)))] for h in heads]


def make_sentence(
    heads: list[int], deprels: list[str], xpos: list[str] | None = None, forms: list[str] | None = None
) -> Sentence:
    n = len(heads)
    forms = forms or [f"w{i}" for i in range(1, n + 1)]
    xpos = xpos or ["NN"] * n
    return Sentence(tuple(forms), tuple("X" for _ in range(n)), tuple(xpos), tuple(heads), tuple(deprels))


def random_sentences(rng: np.random.Generator, count: int, max_len: int = 12) -> list[Sentence]:
    out = []
    for _ in range(count):
        n = int(rng.integers(1, max_len + 1))
        heads = random_projective_heads(rng, n)
        tags = [["NN", "VB", "DT", "JJ", "."][int(rng.integers(5))] for _ in range(n)]
        words = [f"w{int(rng.integers(20))}" for _ in range(n)]
        out.append(make_sentence(heads, random_labels(rng, heads), tags, words))
    return out


def brute_force_projective(heads: list[int]) -> bool:
    """Every token between a head and its dependent descends from that head."""

    def ancestors(d: int) -> set[int]:
        seen = set()
        while d != 0:
            d = heads[d - 1]
            seen.add(d)
        return seen

    for d, h in enumerate(heads, start=1):
        for t in range(min(h, d) + 1, max(h, d)):
            if h not in ancestors(t):
                return False
    return True


def run_sequence(n: int, sequence: list[int], num_labels: int) -> Configuration:
    config = Configuration(n)
    for t in sequence:
        config.apply(t, num_labels)
    return config


# ---- transition system ----------------------------------------------------------


def test_oracle_rebuilds_generated_projective_trees(rng):
    L = len(LABELS)
    for _ in range(300):
        n = int(rng.integers(1, 25))
        heads = random_projective_heads(rng, n)
        labels = [int(x) for x in rng.integers(0, L, n)]
        sequence = oracle_sequence(heads, labels, L)
        assert len(sequence) == 2 * n
        config = run_sequence(n, sequence, L)
        assert config.is_terminal()
        assert config.heads[1:] == heads
        assert config.labels[1:] == labels


def test_batched_oracle_matches_the_reference_on_many_sentences_at_once(rng):
    sentences = random_sentences(rng, 60, max_len=20)
    vocab = Vocab.build(sentences)
    encoded = [vocab.encode(s) for s in sentences]
    _, transitions = oracle_examples(encoded, vocab)
    expected = np.concatenate([oracle_sequence(list(e.heads), list(e.labels), vocab.num_labels) for e in encoded])
    # Groups run in length order and interleave sentences: compare as multisets and totals.
    assert len(transitions) == 2 * sum(len(s) for s in sentences)
    np.testing.assert_array_equal(np.sort(transitions), np.sort(expected))


def test_batched_oracle_transitions_rebuild_every_tree(rng):
    sentences = random_sentences(rng, 40, max_len=15)
    vocab = Vocab.build(sentences)
    encoded = [vocab.encode(s) for s in sentences]
    config = BatchedConfigurations(np.array([len(e) for e in encoded]), vocab.num_labels, vocab.root_label)
    heads, labels, children = gold_arrays(encoded, int(max(len(e) for e in encoded)) + 2)
    for _ in range(2 * max(len(e) for e in encoded)):
        rows = np.flatnonzero(~config.terminal())
        gold = config.oracle(rows, heads, labels, children)
        assert config.legal(rows)[np.arange(len(rows)), gold].all(), "the oracle chose an illegal transition"
        config.apply(rows, gold)
    assert config.terminal().all()
    for b, e in enumerate(encoded):
        np.testing.assert_array_equal(config.heads[b, 1 : len(e) + 1], e.heads)
        np.testing.assert_array_equal(config.labels[b, 1 : len(e) + 1], e.labels)


@pytest.mark.parametrize(
    "heads, projective",
    [
        ([0], True),
        ([2, 0, 2], True),
        ([0, 1, 2, 3], True),
        ([3, 4, 0, 3], False),  # 1->3 crosses 2->4
        ([0, 4, 1, 1], False),  # 1->3 and 4->2 cross
        ([3, 0, 2, 2], False),  # the arc into 1 jumps over 2, whose head is ROOT
    ],
)
def test_projectivity_on_hand_made_trees(heads, projective):
    assert is_projective(heads) is projective
    assert brute_force_projective(heads) is projective


def test_projectivity_agrees_with_the_descendant_definition(rng):
    for _ in range(500):
        n = int(rng.integers(1, 9))
        # A random tree: attach tokens in random order to an already attached one.
        order = rng.permutation(np.arange(1, n + 1))
        heads = [0] * n
        attached = [0]
        for i, d in enumerate(order):
            heads[d - 1] = 0 if i == 0 else int(rng.choice(attached[1:]))
            attached.append(int(d))
        assert is_projective(heads) == brute_force_projective(heads), heads
    for _ in range(100):
        assert is_projective(random_projective_heads(rng, int(rng.integers(1, 30))))


def test_non_projective_trees_are_refused_by_both_oracles_and_skipped():
    heads, labels = [3, 4, 0, 3], [1, 1, 5, 4]
    with pytest.raises(ValueError, match="not projective"):
        oracle_sequence(heads, labels, len(LABELS))
    trees = [make_sentence(heads, ["det", "det", "root", "punct"]), make_sentence([2, 0], ["det", "root"])]
    vocab = Vocab.build(trees)
    encoded = [vocab.encode(s) for s in trees]
    with pytest.raises(ValueError, match="not projective"):
        oracle_examples(encoded, vocab)
    kept, skipped = split_projective(encoded)
    assert skipped == 1 and len(kept) == 1
    data = prepare(trees, trees, trees)
    assert data.skipped_non_projective == 1 and data.train_sentences == 1
    assert len(data.train) == 4  # 2 tokens -> 4 transitions
    assert len(data.dev) == 2  # evaluation keeps every sentence ...
    features, transitions = data.dev.batch(np.arange(2))  # ... its oracle rows cover the projective ones
    assert features.shape == (4, NUM_FEATURES) and transitions.tolist() == data.train.y.tolist()


def test_legal_transitions_match_the_reference_on_random_walks(rng):
    L, root = len(LABELS), LABELS.index("root")
    lengths = rng.integers(1, 10, 30)
    batched = BatchedConfigurations(lengths, L, root)
    refs = [Configuration(int(n)) for n in lengths]
    for _ in range(2 * int(lengths.max())):
        rows = np.flatnonzero(~batched.terminal())
        legal = batched.legal(rows)
        chosen = []
        for i, r in enumerate(rows):
            expected = [refs[r].legal(t, L, root) for t in range(num_transitions(L))]
            assert legal[i].tolist() == expected
            choice = int(rng.choice(np.flatnonzero(legal[i])))
            refs[r].apply(choice, L)
            chosen.append(choice)
        batched.apply(rows, np.array(chosen))
    assert batched.terminal().all()
    for b, ref in enumerate(refs):
        assert batched.heads[b, 1 : lengths[b] + 1].tolist() == ref.heads[1:]
        assert sum(h == 0 for h in ref.heads[1:]) == 1  # one root word, always


def test_transition_ids():
    assert SHIFT == 0 and left_arc(0) == 1 and right_arc(0, 6) == 7 and num_transitions(6) == 13


# ---- features ---------------------------------------------------------------------


def reference_features(config: Configuration, words: list[int], tags: list[int], vocab: Vocab) -> list[int]:
    """The 48 features read off the one-sentence reference, child lists computed directly."""
    none = -1

    def kids(h: int, left: bool) -> list[int]:
        if h == none:
            return []
        return sorted(d for d in config.children(h) if (d < h) == left)

    def lc(h: int, i: int) -> int:
        k = kids(h, True)
        return k[i - 1] if len(k) >= i else none

    def rc(h: int, i: int) -> int:
        k = kids(h, False)[::-1]
        return k[i - 1] if len(k) >= i else none

    stack = config.stack
    s = [stack[-i] if len(stack) >= i else none for i in (1, 2, 3)]
    buf = config.buffer
    b = [buf[i] if len(buf) > i else none for i in range(3)]
    tokens = s + b
    for x in s[:2]:
        tokens += [lc(x, 1), rc(x, 1), lc(x, 2), rc(x, 2), lc(lc(x, 1), 1), rc(rc(x, 1), 1)]

    def word(t: int) -> int:
        return vocab.word_special(NULL) if t == none else vocab.word_special(ROOT) if t == 0 else words[t - 1]

    def tag(t: int) -> int:
        return vocab.tag_special(NULL) if t == none else vocab.tag_special(ROOT) if t == 0 else tags[t - 1]

    def label(t: int) -> int:
        return vocab.label_null if t in (none, 0) else int(vocab.label_feature(np.array(config.labels[t])))

    return [word(t) for t in tokens] + [tag(t) for t in tokens] + [label(t) for t in tokens[6:]]


def test_features_on_a_hand_made_configuration():
    # "the big dog barks ." : the->dog det, big->dog amod, dog->barks nsubj, barks root, .->barks punct
    sentence = make_sentence(
        [3, 3, 4, 0, 4],
        ["det", "amod", "nsubj", "root", "punct"],
        ["DT", "JJ", "NN", "VBZ", "."],
        ["The", "big", "dog", "barks", "."],
    )
    vocab = Vocab.build([sentence], min_word_count=1)
    enc = vocab.encode(sentence)
    L = vocab.num_labels
    det, amod = LABELS.index("det"), LABELS.index("amod")
    # SHIFT x3, LEFT(amod), LEFT(det), SHIFT: stack ROOT dog barks, buffer "."
    config = BatchedConfigurations(np.array([5]), L, vocab.root_label)
    for t in [SHIFT, SHIFT, SHIFT, left_arc(amod), left_arc(det), SHIFT]:
        config.apply(np.array([0]), np.array([t]))
    words, tags = position_ids([enc], vocab)
    f = extract(config, np.array([0]), words, tags, vocab)[0]
    assert f.shape == (NUM_FEATURES,) and f.dtype == np.int32
    w = {name: vocab.words.index(name) for name in ["the", "big", "dog", "barks", ".", NULL, ROOT]}
    null_w, null_t = w[NULL], vocab.tag_special(NULL)
    t = {tag: vocab.tag_offset + vocab.tags.index(tag) for tag in ["DT", "JJ", "NN", "VBZ", "."]}
    # s1 = barks, s2 = dog, s3 = ROOT, b1 = ".", b2 = b3 = none; barks has no children;
    # dog has lc1 = the, lc2 = big, no right children; lc1(lc1(dog)) = none.
    expected_words = [
        w["barks"],
        w["dog"],
        w[ROOT],
        w["."],
        null_w,
        null_w,
        null_w,
        null_w,
        null_w,
        null_w,
        null_w,
        null_w,
        w["the"],
        null_w,
        w["big"],
        null_w,
        null_w,
        null_w,
    ]
    expected_tags = [
        t["VBZ"],
        t["NN"],
        vocab.tag_special(ROOT),
        t["."],
        null_t,
        null_t,
        null_t,
        null_t,
        null_t,
        null_t,
        null_t,
        null_t,
        t["DT"],
        null_t,
        t["JJ"],
        null_t,
        null_t,
        null_t,
    ]
    lab = vocab.label_null
    expected_labels = [lab] * 6 + [lab + 1 + det, lab, lab + 1 + amod, lab, lab, lab]
    assert f[:18].tolist() == expected_words
    assert f[18:36].tolist() == expected_tags
    assert f[36:].tolist() == expected_labels
    assert "the" in vocab.words and "The" not in vocab.words  # lower-cased


def test_batched_features_match_the_reference_on_random_walks(rng):
    sentences = random_sentences(rng, 25, max_len=14)
    vocab = Vocab.build(sentences)
    encoded = [vocab.encode(s) for s in sentences]
    L = vocab.num_labels
    batched = BatchedConfigurations(np.array([len(e) for e in encoded]), L, vocab.root_label)
    refs = [Configuration(len(e)) for e in encoded]
    words, tags = position_ids(encoded, vocab)
    checked = 0
    while not batched.terminal().all():
        rows = np.flatnonzero(~batched.terminal())
        feats = extract(batched, rows, words, tags, vocab)
        legal = batched.legal(rows)
        chosen = []
        for i, r in enumerate(rows):
            e = encoded[r]
            assert feats[i].tolist() == reference_features(refs[r], e.words.tolist(), e.tags.tolist(), vocab)
            choice = int(rng.choice(np.flatnonzero(legal[i])))
            refs[r].apply(choice, L)
            chosen.append(choice)
            checked += 1
        batched.apply(rows, np.array(chosen))
    assert checked == 2 * sum(len(e) for e in encoded)


def test_vocab_specials_unknown_words_and_universal_labels():
    train = [
        make_sentence([2, 0], ["nmod:poss", "root"], ["PRP$", "NN"], ["my", "Dog"]),
        make_sentence([0], ["root"], ["NN"], ["dog"]),
    ]
    vocab = Vocab.build(train, min_word_count=2)
    assert vocab.words[:3] == [NULL, UNK, ROOT] and vocab.words[3:] == ["dog"]
    assert vocab.labels == ["nmod", "root"] and universal_label("acl:relcl") == "acl"
    enc = vocab.encode(make_sentence([0], ["obl:tmod"], ["XX"], ["cat"]))
    assert enc.words.tolist() == [vocab.word_special(UNK)]
    assert enc.tags.tolist() == [vocab.tag_special(UNK)]
    assert enc.labels.tolist() == [-1]  # unknown label: never matches in LAS
    assert vocab.size == len(vocab.words) + len(vocab.tags) + 1 + len(vocab.labels)
    with pytest.raises(ValueError, match="heads"):
        vocab.encode(make_sentence([5], ["root"]))


@pytest.mark.parametrize(
    "heads, problem",
    [
        ([2, 1], "0 tokens attach to the root"),
        ([0, 0, 2], "2 tokens attach to the root"),
        ([0, 3, 4, 2], r"tokens \[2, 3, 4\] form a cycle"),
        ([0, 2], r"tokens \[2\] form a cycle"),
    ],
)
def test_encoding_refuses_heads_that_are_not_a_tree(heads, problem):
    vocab = Vocab.build([make_sentence([0], ["root"])], min_word_count=1)
    with pytest.raises(ValueError, match="not a dependency tree: .*" + problem):
        vocab.encode(make_sentence(heads, ["dep"] * len(heads)))
    vocab.encode(make_sentence([2, 0, 2, 3], ["dep", "root", "dep", "dep"]))  # a tree passes


# ---- scoring -----------------------------------------------------------------------


def test_attachment_scores_exclude_punctuation_by_gold_tag():
    assert {"``", "''", ":", ",", "."} == PUNCTUATION_TAGS
    xpos = [["DT", "NN", ",", "VBZ", "."], ["``", "UH", "''", "-LRB-"]]
    gold_h = [np.array([2, 4, 4, 0, 4]), np.array([2, 0, 2, 2])]
    gold_l = [np.array([1, 2, 4, 5, 4]), np.array([4, 5, 4, 3])]
    pred_h = [np.array([2, 4, 1, 0, 1]), np.array([1, 0, 1, 1])]  # punctuation heads wrong: ignored
    pred_l = [np.array([1, 3, 0, 5, 0]), np.array([0, 5, 0, 3])]
    scores = attachment_scores(gold_h, gold_l, pred_h, pred_l, xpos)
    # Scored: DT NN VBZ | UH -LRB-: heads right for DT NN VBZ UH (4 of 5), labels also for DT VBZ UH.
    assert scores["tokens"] == 5
    assert scores["uas"] == pytest.approx(4 / 5)
    assert scores["las"] == pytest.approx(3 / 5)


def test_attachment_scores_reject_bad_input():
    with pytest.raises(ValueError, match="no tokens"):
        attachment_scores([np.array([0])], [np.array([0])], [np.array([0])], [np.array([0])], [["."]])
    with pytest.raises(ValueError, match="same length"):
        attachment_scores([np.array([0, 1])], [np.array([0])], [np.array([0])], [np.array([0])], [["NN"]])
    with pytest.raises(ValueError, match="one entry per sentence"):
        attachment_scores([], [np.array([0])], [], [], [])


def test_greedy_decoding_with_oracle_scores_rebuilds_gold_trees(rng):
    sentences = random_sentences(rng, 50, max_len=16)
    vocab = Vocab.build(sentences)
    encoded = [vocab.encode(s) for s in sentences]
    # A scorer that knows the gold tree through the features: map each
    # configuration's features to its oracle transition.
    feats, gold = oracle_examples(encoded, vocab)
    table = {f.tobytes(): g for f, g in zip(feats, gold)}
    C = num_transitions(vocab.num_labels)

    def score(f: np.ndarray) -> np.ndarray:
        out = np.zeros((len(f), C))
        out[np.arange(len(f)), [table[row.tobytes()] for row in f]] = 1.0
        return out

    conflicts = sum(table[f.tobytes()] != g for f, g in zip(feats, gold))
    assert conflicts == 0, "identical features with different gold transitions: pick other sentences"
    predicted = parse(encoded, vocab, score, group_size=7)
    for e, (h, l) in zip(encoded, predicted):
        np.testing.assert_array_equal(h, e.heads)
        np.testing.assert_array_equal(l, e.labels)


def test_greedy_decoding_never_takes_an_illegal_transition(rng):
    sentences = random_sentences(rng, 30, max_len=12)
    vocab = Vocab.build(sentences)
    encoded = [vocab.encode(s) for s in sentences]
    C = num_transitions(vocab.num_labels)
    # Random scores: whatever the model prefers, only legal transitions are taken, so the result is a tree.
    predicted = parse(encoded, vocab, lambda f: rng.standard_normal((len(f), C)) * 100)
    for e, (h, _) in zip(encoded, predicted):
        assert len(h) == len(e) and (h >= 0).all() and (h <= len(e)).all()
        assert (h == 0).sum() == 1
        assert is_projective(h.tolist())


# ---- model -------------------------------------------------------------------------


def test_embedding_of_feature_rows_sums_gradient_rows_of_repeated_ids(rng):
    emb = Embedding(10, 3, rng, dtype=np.float64, init="uniform")
    assert np.abs(emb.weight.value).max() <= 0.1
    ids = rng.integers(0, 10, (7, 4))
    out = emb.forward(ids)
    assert out.shape == (7, 4, 3)
    np.testing.assert_array_equal(out, emb.weight.value[ids])
    dy = rng.standard_normal((7, 12))
    emb.backward(dy)
    expected = np.zeros((10, 3))
    np.add.at(expected, ids.ravel(), dy.reshape(-1, 3))
    rows = np.unique(ids)
    np.testing.assert_array_equal(emb.weight.grad_rows, rows)
    np.testing.assert_allclose(emb.weight.grad, expected[rows], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="ids must lie"):
        emb.forward(np.array([[10]]))
    with pytest.raises(ValueError, match="integer array"):
        emb.forward(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="init must be one of"):
        Embedding(10, 3, rng, init="zeros")


@pytest.mark.parametrize("activation", ["tanh", "relu", "cube"])
def test_dense_model_gradients_match_finite_differences(rng, activation):
    model = ParserModel(
        30, 7, embed_dim=2, hidden=6, layers=2, k=None, k_out=None, activation=activation, seed=1, dtype=np.float64
    )
    ids = rng.integers(0, 30, (5, NUM_FEATURES))
    target = rng.standard_normal((5, 7))

    def loss() -> float:
        return float((model.forward(ids) * target).sum())

    loss()
    model.backward(target)
    for p in model.parameters():
        full = p.dense_grad()
        flat = p.value.reshape(-1)
        for i in rng.choice(flat.size, min(6, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + 1e-6
            up = loss()
            flat[i] = old - 1e-6
            down = loss()
            flat[i] = old
            assert full.reshape(-1)[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-7), p.name


def test_meprop_model_touches_at_most_k_rows_per_example(rng):
    model = ParserModel(40, 9, embed_dim=3, hidden=30, layers=2, k=2, k_out=3, seed=0)
    ids = rng.integers(0, 40, (1, NUM_FEATURES))
    logits = model.forward(ids)
    assert logits.shape == (1, 9)
    model.backward(np.ones_like(logits))
    layers = model.linear_layers()
    assert [len(layer.weight.grad_rows) for layer in layers] == [2, 2, 3]
    assert model.backward_seconds > 0


# ---- training -----------------------------------------------------------------------


TOY_WORDS = {
    "DT": ["the", "a"],
    "JJ": ["big", "red", "old"],
    "NN": ["dog", "cat", "man", "idea"],
    "VBZ": ["sees", "likes", "eats"],
}


def toy_noun_phrase(rng: np.random.Generator, tokens: list[tuple[str, str, int, str]], role: str) -> int:
    """Appends DT JJ* NN (DT and JJ attached to the noun); returns the noun's position, its head still unset."""
    modifiers = [("DT", "det")] + [("JJ", "amod")] * int(rng.integers(0, 3))
    noun = len(tokens) + len(modifiers) + 1
    for tag, rel in modifiers:
        tokens.append((TOY_WORDS[tag][int(rng.integers(len(TOY_WORDS[tag])))], tag, noun, rel))
    tokens.append((TOY_WORDS["NN"][int(rng.integers(4))], "NN", -1, role))
    return noun


def toy_language(rng: np.random.Generator, count: int) -> list[Sentence]:
    """DT JJ* NN VBZ (DT JJ* NN)? . with fixed arcs: a language a parser learns fully."""
    out = []
    for _ in range(count):
        tokens: list[tuple[str, str, int, str]] = []  # (form, tag, head, relation)
        nouns = [toy_noun_phrase(rng, tokens, "nsubj")]
        tokens.append((TOY_WORDS["VBZ"][int(rng.integers(3))], "VBZ", 0, "root"))
        verb = len(tokens)
        if rng.random() < 0.6:
            nouns.append(toy_noun_phrase(rng, tokens, "obj"))
        tokens.append((".", ".", verb, "punct"))
        tokens = [(f, t, verb if i + 1 in nouns else h, r) for i, (f, t, h, r) in enumerate(tokens)]
        forms, tags, heads, rels = (list(column) for column in zip(*tokens))
        out.append(make_sentence(heads, rels, tags, forms))
    return out


def make_toy_trainer(
    out: Path,
    epochs: int = 6,
    optimizer: str = "adagrad",
    k: int | None = 8,
    checkpoint_every: int = 2000,
    seed: int = 0,
    simplify: SimplifyConfig | None = None,
) -> Trainer:
    rng = np.random.default_rng(123)
    data = prepare(toy_language(rng, 300), toy_language(rng, 40), toy_language(rng, 40), min_word_count=1)
    model = ParserModel(
        data.vocab.size,
        num_transitions(data.vocab.num_labels),
        embed_dim=8,
        hidden=40,
        layers=2,
        k=k,
        k_out=k,
        seed=seed,
    )
    opt = AdaGrad(model.parameters(), lr=0.05, clip=5) if optimizer == "adagrad" else Adam(model.parameters(), 0.01)
    config = TrainConfig(
        epochs=epochs, batch_size=100, seed=seed, progress=False, metric="uas", checkpoint_every=checkpoint_every
    )
    simplifier = None if simplify is None else Simplifier(simplify, model.mlp, opt, time_forward=False)
    return Trainer(
        model,
        opt,
        Splits(data.train, data.dev, data.test),
        config,
        out,
        {"task": "parse-toy"},
        evaluate=attachment_evaluator(data.vocab),
        simplifier=simplifier,
    )


@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_training_learns_a_toy_language(tmp_path, optimizer):
    with thread_limits(1, blas=1):  # one busy pool, as the task runs it
        summary = make_toy_trainer(tmp_path, optimizer=optimizer).fit()
    assert summary["metric"] == "uas"
    first = summary["history"][0]
    assert summary["best_dev"] >= 0.95, summary["history"]
    assert summary["best_dev"] > first["dev"]["uas"] or first["dev"]["uas"] >= 0.95
    assert summary["test_at_best_dev"] >= 0.9
    assert 0 <= summary["test_metrics_at_best_dev"]["las"] <= summary["test_metrics_at_best_dev"]["uas"]


class HardKill(Exception):
    pass


@pytest.fixture
def one_pool():
    with thread_limits(1, blas=1):
        yield


def test_resume_after_an_interruption_is_bit_identical(tmp_path, one_pool):
    straight = make_toy_trainer(tmp_path / "straight", epochs=3, checkpoint_every=5)
    expected = straight.fit()
    killed = make_toy_trainer(tmp_path / "resumed", epochs=3, checkpoint_every=5)
    steps = {"n": 0}
    real_step = killed.optimizer.step

    def step_then_die() -> None:
        real_step()
        steps["n"] += 1
        if steps["n"] == 41 + 27:  # 41 steps per epoch: in epoch 2, two steps after its checkpoint at step 25
            raise HardKill

    killed.optimizer.step = step_then_die
    with pytest.raises(HardKill):
        killed.fit()
    assert killed.steps_per_epoch() == 41 and len(killed.history) == 1
    resumed = make_toy_trainer(tmp_path / "resumed", epochs=3, checkpoint_every=5)
    got = resumed.fit(resume=True)
    for name, value in straight.model.state_dict().items():
        assert resumed.model.state_dict()[name].tobytes() == value.tobytes(), name

    def strip(history):
        return [{k: v for k, v in r.items() if k not in ("time", "eval_seconds")} for r in history]

    assert strip(got["history"]) == strip(expected["history"])
    assert got["best_epoch"] == expected["best_epoch"] and got["test_at_best_dev"] == expected["test_at_best_dev"]


def test_simplified_parser_learns_shrinks_and_resumes_bit_identically(tmp_path, one_pool):
    simplify = SimplifyConfig(fraction=0.3, per_epoch=4, cycle=2)
    straight = make_toy_trainer(tmp_path / "straight", epochs=3, checkpoint_every=5, simplify=simplify)
    expected = straight.fit()
    sizes = expected["simplify"]["final_sizes"]
    assert all(8 <= size < 40 for size in sizes), sizes  # k=8: a layer of 8 keeps every unit
    assert expected["best_dev"] >= 0.9
    killed = make_toy_trainer(tmp_path / "resumed", epochs=3, checkpoint_every=5, simplify=simplify)
    real_step, steps = killed.optimizer.step, {"n": 0}

    def step_then_die() -> None:
        real_step()
        steps["n"] += 1
        if steps["n"] == 41 + 27:
            raise HardKill

    killed.optimizer.step = step_then_die
    with pytest.raises(HardKill):
        killed.fit()
    resumed = make_toy_trainer(tmp_path / "resumed", epochs=3, checkpoint_every=5, simplify=simplify)
    got = resumed.fit(resume=True)
    for name, value in straight.model.state_dict().items():
        assert resumed.model.state_dict()[name].tobytes() == value.tobytes(), name
    assert got["simplify"]["history"] == expected["simplify"]["history"]


# ---- command line on real data --------------------------------------------------------


@pytest.mark.skipif(
    not (REAL_DATA / "ud_english_ewt" / "en_ewt-ud-train.conllu").exists(),
    reason=f"UD English EWT not found in {REAL_DATA}/ud_english_ewt (the shared data copy next to the repository)",
)
def test_cli_smoke_run_on_a_slice_of_ud_english_ewt(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "parse",
        "--data-dir",
        str(REAL_DATA),
        "--train-limit",
        "150",
        "--eval-limit",
        "40",
        "--epochs",
        "1",
        "--batch-size",
        "500",
        "--hidden",
        "64",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert meprop_main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "uas" and summary["epochs"] == 1
    assert 0 <= summary["test_at_best_dev"] <= 1
    assert summary["run"]["train_sentences"] + summary["run"]["skipped_non_projective"] == 150
    assert set(summary["history"][0]["dev"]) == {"uas", "las"}
    for name in ("metrics.jsonl", "best_model.npz", "checkpoint.npz", "vocab.json"):
        assert (out / name).exists()
    printed = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert printed["metric"] == "uas"
    # A second epoch on top of the first through --resume.
    argv[argv.index("--epochs") + 1] = "2"
    assert meprop_main(argv + ["--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2
    # and meSimp on the same slice: k=20 as the task's, units removed
    argv[argv.index("--out") + 1] = str(tmp_path / "simplified")
    assert meprop_main([*argv, "--simplify", "--simplify-fraction", "0.3"]) == 0
    simplified = json.loads((tmp_path / "simplified" / "summary.json").read_text())
    assert simplified["run"]["k"] == 20 and simplified["simplify"]["initial_sizes"] == [64, 64]
    assert all(size <= 64 for size in simplified["simplify"]["final_sizes"])


@pytest.mark.parametrize("bad", [["--k", "0"], ["--k-out", "-1"], ["--train-limit", "0"], ["--epochs", "0"]])
def test_cli_rejects_bad_options(tmp_path, bad, capsys):
    try:  # options that argparse's types check exit through SystemExit, the rest return 2
        code = meprop_main(["train", "parse", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), *bad])
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    assert "must be" in capsys.readouterr().err

"""Attachment scores (UAS, LAS) with Chen & Manning's punctuation rule.

Chen & Manning (2014) exclude punctuation from UAS/LAS: tokens whose gold
POS tag is one of the Penn Treebank punctuation tags `` '' : , . . UD
English EWT's XPOS column holds Penn Treebank tags, so the same set applies
to it unchanged. (Other EWT tags that mark symbols, such as -LRB-, -RRB-,
HYPH, NFP or $, are scored, as they are in the PTB evaluations.)

LAS compares universal relations (subtypes dropped on both sides, as the
label vocabulary does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PUNCTUATION_TAGS = frozenset({"``", "''", ":", ",", "."})


def attachment_scores(
    gold_heads: Sequence[np.ndarray],
    gold_labels: Sequence[np.ndarray],
    pred_heads: Sequence[np.ndarray],
    pred_labels: Sequence[np.ndarray],
    xpos: Sequence[Sequence[str]],
) -> dict[str, float]:
    """{"uas", "las", "tokens"}: fractions over the non-punctuation tokens, and their count.

    Each argument holds one array (or sequence) per sentence, all of the
    sentence's length. Labels are ids; a gold id of -1 (unknown label) never
    matches. No scored token at all is a ValueError.
    """
    if not (len(gold_heads) == len(gold_labels) == len(pred_heads) == len(pred_labels) == len(xpos)):
        raise ValueError("one entry per sentence is needed in every argument")
    scored = head_ok = both_ok = 0
    for gh, gl, ph, pl, tags in zip(gold_heads, gold_labels, pred_heads, pred_labels, xpos):
        gh, gl, ph, pl = (np.asarray(a) for a in (gh, gl, ph, pl))
        if not (gh.shape == gl.shape == ph.shape == pl.shape == (len(tags),)):
            raise ValueError("heads, labels and tags of a sentence must have the same length")
        keep = np.array([t not in PUNCTUATION_TAGS for t in tags], dtype=bool)
        heads_match = (gh == ph) & keep
        scored += int(keep.sum())
        head_ok += int(heads_match.sum())
        both_ok += int((heads_match & (gl == pl) & (gl >= 0)).sum())
    if scored == 0:
        raise ValueError("no tokens to score (all are punctuation or there are none)")
    return {"uas": head_ok / scored, "las": both_ok / scored, "tokens": float(scored)}

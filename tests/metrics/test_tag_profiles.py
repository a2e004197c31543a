"""Tag profiles by hand: shares of multi-tag items, (recency-weighted) history profiles, the masked next-item softmax
pushed to tags, deterministic tag ranking and the next-tag hit rate."""
from __future__ import annotations

import numpy as np
import pytest

from paddle_tag.metrics.tag_profiles import (history_profiles, next_item_distribution, next_tag_hits, recency_weights,
                                             tag_counts, tag_shares, top_tags)

# items 1..4 over tags (a, b, c); row 0 is the padding item
#   1: a      2: a, b      3: b, c, (untagged weight 0 on a)      4: no tag
MEMBERS = np.array([[0, 0, 0],
                    [1, 0, 0],
                    [1, 1, 0],
                    [0, 1, 1],
                    [0, 0, 0]], dtype=np.float64)


def test_an_item_with_several_tags_counts_once_in_total():
    shares = tag_shares(MEMBERS)
    assert shares.tolist() == [[0, 0, 0], [1, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0.5], [0, 0, 0]]
    weighted = tag_shares(np.array([[3.0, 1.0]]))  # memberships may be weights (a multi-label tagger's)
    assert weighted.tolist() == [[0.75, 0.25]]
    with pytest.raises(ValueError, match="non-negative"):
        tag_shares(np.array([[1.0, -1.0]]))


def test_history_profile_is_the_mean_share_of_the_history_items():
    shares = tag_shares(MEMBERS)
    profiles = history_profiles([np.array([1, 2]), np.array([2, 3, 4]), np.array([], dtype=np.int64)], shares)
    assert profiles[0] == pytest.approx([0.75, 0.25, 0])          # (1 + 0.5) / 2, 0.5 / 2
    assert profiles[1] == pytest.approx([1 / 6, 2 / 6, 1 / 6])     # the untagged item 4 dilutes: sum 2/3
    assert profiles[2].tolist() == [0, 0, 0]


def test_recency_half_life_halves_the_weight_every_half_life_steps_back():
    assert recency_weights(3, None).tolist() == [1, 1, 1]
    assert recency_weights(3, 1.0).tolist() == [0.25, 0.5, 1.0]
    shares = tag_shares(MEMBERS)
    # history [1, 3] with half-life 1: weights 0.5 (item 1), 1 (item 3) -> (0.5*[1,0,0] + [0,.5,.5]) / 1.5
    assert history_profiles([np.array([1, 3])], shares, half_life=1.0)[0] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    with pytest.raises(ValueError, match="half_life must be positive"):
        recency_weights(3, 0.0)


def test_tag_counts_count_an_item_once_for_every_tag():
    assert tag_counts([np.array([1, 2, 3]), np.array([4])], MEMBERS).tolist() == [[2, 2, 1], [0, 0, 0]]


def test_next_item_distribution_masks_padding_and_seen_items():
    scores = np.log(np.array([[9.0, 1.0, 1.0, 2.0, 4.0],
                              [9.0, 1.0, 1.0, 2.0, 4.0]]))
    p = next_item_distribution(scores, [np.array([4]), np.array([], dtype=np.int64)])
    assert p[0] == pytest.approx([0, 0.25, 0.25, 0.5, 0])          # item 4 seen: 1, 1, 2 renormalised
    assert p[1] == pytest.approx([0, 0.125, 0.125, 0.25, 0.5])     # padding never, whatever its score
    # pushed to tags: p(tag) = sum_i p(i) w(i, tag); row 1 loses the untagged item 4's mass 0.5
    assert (p @ tag_shares(MEMBERS))[0] == pytest.approx([0.375, 0.375, 0.25])
    assert (p @ tag_shares(MEMBERS))[1] == pytest.approx([0.1875, 0.1875, 0.125])
    with pytest.raises(ValueError, match="row 0 has seen every item"):
        next_item_distribution(scores[:1], [np.array([1, 2, 3, 4])])
    with pytest.raises(ValueError, match="finite"):
        next_item_distribution(np.array([[0.0, np.nan]]), [np.array([], dtype=np.int64)])


def test_huge_scores_do_not_overflow():
    p = next_item_distribution(np.array([[0.0, 1000.0, 999.0]]), [np.array([], dtype=np.int64)])
    assert p[0] == pytest.approx([0, 1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))])


def test_top_tags_break_ties_by_the_lower_index_even_across_rounding():
    assert 0.1 + 0.2 > 0.3  # one ulp apart in float64
    weights = np.array([[0.2, 0.5, 0.5], [0.3, 0.1 + 0.2, 0.0], [0.0, 0.0, 0.0]])
    assert top_tags(weights, 2).tolist() == [[1, 2], [0, 1], [0, 1]]
    with pytest.raises(ValueError, match="1 <= k <= K"):
        top_tags(weights, 4)


def test_next_tag_hits_count_a_hit_when_a_top_tag_is_a_tag_of_the_held_out_item():
    ranked = np.array([[0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 1, 2]])
    targets = MEMBERS[[1, 3, 2, 4]]   # tags {a}, {b, c}, {a, b}, none
    result = next_tag_hits(ranked, targets, ks=(1, 2))
    # user 0: a first -> hit@1; user 1: c first -> hit@1; user 2: b first -> hit@1; user 3 untagged: left out
    assert result == {"hit@1": 1.0, "hit@2": 1.0, "users": 3, "untagged_targets": 1}
    result = next_tag_hits(np.array([[1, 2], [0, 1]]), MEMBERS[[1, 3]], ks=(1, 2))
    assert result["hit@1"] == 0.0 and result["hit@2"] == 0.5          # user 1 gets b at rank 2
    with pytest.raises(ValueError, match="no user's held-out item has a tag"):
        next_tag_hits(np.array([[0]]), MEMBERS[[4]], ks=(1,))

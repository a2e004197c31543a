"""SASRec and GRU4Rec: causal (a state never sees later items), padding ignored, tags added to item vectors."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_tag.models.sequential import MODELS, NextItemModel

NUM_ITEMS, LENGTH = 30, 8
TAGS = np.array([[0, 0]] + [[1 + i % 3, 0] if i % 2 else [1 + i % 3, 4] for i in range(NUM_ITEMS)], dtype=np.int64)


def build(name: str, tags: bool = False) -> NextItemModel:
    paddle.seed(0)
    model = NextItemModel(name, NUM_ITEMS, LENGTH, hidden=16, layers=2, heads=2, dropout=0.0,
                          item_tags=TAGS if tags else None)
    model.eval()
    return model


@pytest.mark.parametrize("name", list(MODELS))
def test_states_never_see_later_items(name):
    model = build(name)
    items = paddle.to_tensor([[0, 0, 3, 7, 9, 2, 5, 11]])
    changed = paddle.to_tensor([[0, 0, 3, 7, 9, 2, 6, 12]])  # the last two items differ
    a, b = model(items).numpy(), model(changed).numpy()
    np.testing.assert_allclose(a[:, :6], b[:, :6], atol=1e-6)
    assert not np.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("name", list(MODELS))
def test_padding_states_are_zero_and_scores_exclude_the_padding_item(name):
    model = build(name)
    states = model(paddle.to_tensor([[0, 0, 0, 4, 5, 6, 7, 8]])).numpy()
    assert np.all(states[0, :3] == 0) and np.abs(states[0, 3:]).sum() > 0
    scores = model.scores(paddle.to_tensor([[0, 0, 0, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]])).numpy()
    assert scores.shape == (2, NUM_ITEMS + 1) and np.all(scores[:, 0] < scores[:, 1:].min(axis=1) - 1e6)


def test_item_tags_add_the_mean_tag_embedding():
    model = build("sasrec", tags=True)
    table = model.item_table().numpy()
    ids = model.net.items.ids.weight.numpy()
    tags = model.net.items.tags.weight.numpy()
    assert TAGS[1].tolist() == [1, 4] and TAGS[2].tolist() == [2, 0]
    np.testing.assert_allclose(table[1], ids[1] + (tags[1] + tags[4]) / 2, atol=1e-6)  # item 1: two tags
    np.testing.assert_allclose(table[2], ids[2] + tags[2], atol=1e-6)  # item 2: one tag
    np.testing.assert_allclose(table[0], ids[0], atol=1e-6)  # padding: no tag, zero id vector
    assert np.all(ids[0] == 0)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_few_steps_of_full_softmax_learn_a_repeating_pattern(name):
    """Every sequence walks 1 → 2 → ... → 10 → 1: after training, the next item of ... 3, 4 is 5."""
    model = build(name)
    model.train()
    optimizer = paddle.optimizer.Adam(learning_rate=0.01, parameters=model.parameters())
    walk = np.array([(i % 10) + 1 for i in range(40)])
    batch = np.stack([walk[s:s + LENGTH + 1] for s in range(10)])
    inputs, targets = paddle.to_tensor(batch[:, :-1]), paddle.to_tensor(batch[:, 1:].reshape(-1))
    for _ in range(60):
        states = model(inputs).reshape([-1, 16])
        loss = paddle.nn.functional.cross_entropy(paddle.matmul(states, model.item_table(), transpose_y=True),
                                                  targets)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
    model.eval()
    history = paddle.to_tensor([[7, 8, 9, 10, 1, 2, 3, 4]])
    assert int(model.scores(history).numpy().argmax()) == 5

"""The two-tower model (``paddle_tag.models.two_tower``) with tiny towers: unit vectors and scaled scores, padding
that changes nothing, frozen title vectors, a checkpoint round trip with shared towers, and the in-batch loss
(a duplicated positive is no negative; log-Q lowers popular columns) against a numpy reference."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_tag.models.two_tower import TwoTowerModel, in_batch_softmax_loss

NUM_ITEMS, HIDDEN, MAX_LEN = 12, 16, 6


def tiny(seed: int = 0, **options) -> TwoTowerModel:
    rng = np.random.default_rng(seed)
    tags = rng.integers(0, 5, size=(NUM_ITEMS + 1, 3))
    tags[0] = 0
    titles = rng.normal(size=(NUM_ITEMS + 1, 8)).astype("float32")
    titles[0] = 0
    paddle.seed(seed)
    defaults = dict(profile_sizes=[2, 3], temperature=0.1, recent=2, dropout=0.0, item_tags=tags, title_vectors=titles)
    model = TwoTowerModel(NUM_ITEMS, MAX_LEN, HIDDEN, **{**defaults, **options})
    model.eval()
    return model


HISTORY = paddle.to_tensor([[0, 0, 3, 1, 4, 1], [0, 0, 0, 0, 0, 9], [0, 0, 0, 0, 0, 0]], dtype="int64")
PROFILE = paddle.to_tensor([[1, 2], [0, 3], [2, 0]], dtype="int64")


@pytest.mark.parametrize("options", [dict(), dict(history_input="items", pooling="position"),
                                     dict(item_tags=None, title_vectors=None, recent=0, profile_sizes=[])])
def test_towers_give_unit_vectors_and_scores_are_dot_over_temperature(options):
    model = tiny(**options)
    users, table = model(HISTORY, PROFILE[:, :len(model.config["profile_sizes"])]), model.item_table()
    assert users.shape == [3, HIDDEN] and table.shape == [NUM_ITEMS + 1, HIDDEN]
    # the empty history (row 2) too, when it has a profile; with nothing at all it is the MLP's bias direction
    # (0 before training: every item ties)
    rows = 3 if model.config["profile_sizes"] else 2
    np.testing.assert_allclose(np.linalg.norm(users.numpy()[:rows], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(table.numpy()[1:], axis=1), 1.0, atol=1e-5)
    scores = model.scores(HISTORY, PROFILE[:, :len(model.config["profile_sizes"])]).numpy()
    np.testing.assert_allclose(scores[:, 1:], users.numpy() @ table.numpy()[1:].T / 0.1, rtol=1e-4, atol=1e-4)
    assert (scores[:, 0] < scores[:, 1:].min(axis=1) - 1e6).all()  # padding is never recommended


@pytest.mark.parametrize("pooling", ["mean", "position"])
def test_padding_rows_do_not_reach_the_user_vector(pooling):
    model = tiny(pooling=pooling)
    before = model(HISTORY, PROFILE).numpy()
    weight = model.user_tower.history_items.weight
    weight.set_value(np.concatenate([np.full((1, HIDDEN), 7.0, "float32"), weight.numpy()[1:]]))
    np.testing.assert_allclose(model(HISTORY, PROFILE).numpy(), before, atol=1e-6)


def test_profile_and_recent_items_change_the_user_vector():
    model = tiny()
    base = model(HISTORY[:1], PROFILE[:1]).numpy()
    other_profile = model(HISTORY[:1], paddle.to_tensor([[2, 1]])).numpy()
    reordered = model(paddle.to_tensor([[0, 0, 1, 4, 3, 1]]), PROFILE[:1]).numpy()  # same items, other last two
    assert np.abs(base - other_profile).max() > 1e-3 and np.abs(base - reordered).max() > 1e-3


def test_title_vectors_are_frozen_and_tags_and_titles_shape_the_item_vectors():
    model = tiny()
    names = [n for n, _ in model.named_parameters()]
    assert not any("title_vectors" in n or "item_tags" in n for n in names)
    saved = model.items.title_vectors.numpy().copy()
    optimizer = paddle.optimizer.Adam(1e-1, parameters=model.parameters())
    model.train()
    loss = -model.item_table()[1:].sum() - model(HISTORY, PROFILE).sum()
    loss.backward()
    assert model.items.title.weight.grad is not None
    optimizer.step()
    np.testing.assert_array_equal(model.items.title_vectors.numpy(), saved)
    # two items with the same id row but different tags / titles get different vectors
    model.items.ids.weight.set_value(np.zeros([NUM_ITEMS + 1, HIDDEN], "float32"))
    table = model.item_table().numpy()
    assert np.abs(table[1] - table[2]).max() > 1e-3


def test_checkpoint_round_trip_with_the_history_read_through_the_item_tower():
    model = tiny(history_input="items", pooling="position")
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    assert "user_tower.history_items.ids.weight" in state  # the shared tower is saved under both names
    rebuilt = TwoTowerModel.from_model_config(model.model_config())
    rebuilt.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    rebuilt.eval()
    np.testing.assert_allclose(rebuilt.scores(HISTORY, PROFILE).numpy(), model.scores(HISTORY, PROFILE).numpy(),
                               rtol=1e-5)
    # shared for real: training moves one table that both towers read
    assert rebuilt.user_tower.history_items is rebuilt.items


def reference_loss(users: np.ndarray, items: np.ndarray, targets: np.ndarray, temperature: float,
                   log_q: np.ndarray | None) -> float:
    """The in-batch softmax by hand: drop the columns that repeat a row's own positive."""
    logits = users @ items.T / temperature - (0 if log_q is None else log_q[None, :])
    losses = []
    for row in range(len(targets)):
        keep = [c for c in range(len(targets)) if c == row or targets[c] != targets[row]]
        z = logits[row, keep]
        losses.append(np.log(np.exp(z - z.max()).sum()) + z.max() - logits[row, row])
    return float(np.mean(losses))


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, 8))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


@pytest.mark.parametrize("with_log_q", [False, True])
def test_in_batch_loss_matches_the_reference(with_log_q):
    rng = np.random.default_rng(1)
    users, items = unit_rows(rng, 6), unit_rows(rng, 6)
    targets = np.array([4, 9, 4, 2, 9, 4])
    log_q = np.log(rng.uniform(0.01, 0.3, size=6)).astype("float32") if with_log_q else None
    got = in_batch_softmax_loss(paddle.to_tensor(users), paddle.to_tensor(items), paddle.to_tensor(targets), 0.2,
                                None if log_q is None else paddle.to_tensor(log_q))
    assert float(got) == pytest.approx(reference_loss(users, items, targets, 0.2, log_q), rel=1e-5)


def test_a_duplicated_positive_is_not_a_negative():
    rng = np.random.default_rng(2)
    user_rows, item_rows = unit_rows(rng, 3), unit_rows(rng, 3)

    def user0_gradient(items: np.ndarray, targets: list[int]) -> tuple[float, np.ndarray]:
        users = paddle.to_tensor(user_rows, stop_gradient=False)
        loss = in_batch_softmax_loss(users, paddle.to_tensor(items), paddle.to_tensor(targets), 0.1)
        loss.backward()
        return float(loss), users.grad.numpy()[0]

    moved = item_rows.copy()
    moved[1] = -moved[1]  # another vector in column 1
    # rows 0 and 1 both chose item 5: column 1 is not one of row 0's negatives, so nothing in it reaches user 0
    loss, grad = user0_gradient(item_rows, [5, 5, 7])
    np.testing.assert_allclose(user0_gradient(moved, [5, 5, 7])[1], grad, atol=1e-6)
    assert loss == pytest.approx(reference_loss(user_rows, item_rows, np.array([5, 5, 7]), 0.1, None), rel=1e-5)
    # with distinct positives column 1 is a negative of row 0: it moves user 0, and the loss is higher
    distinct_loss, distinct_grad = user0_gradient(item_rows, [5, 6, 7])
    assert np.abs(user0_gradient(moved, [5, 6, 7])[1] - distinct_grad).max() > 1e-3
    assert distinct_loss > loss


def test_log_q_lowers_the_push_on_popular_negatives():
    """With in-batch negatives a popular item is everyone's negative; log-Q lowers its logit by log q, so the
    gradient that pushes it away from users who did not choose it shrinks, and a rare item's grows."""
    rng = np.random.default_rng(3)
    users, item_rows = unit_rows(rng, 4), unit_rows(rng, 4)
    targets = paddle.to_tensor([1, 2, 3, 4])
    log_q = paddle.to_tensor(np.log([0.5, 0.01, 0.01, 0.01]).astype("float32"))  # item 1 is popular

    def push_on(log_q_or_none) -> np.ndarray:
        items = paddle.to_tensor(item_rows, stop_gradient=False)
        in_batch_softmax_loss(paddle.to_tensor(users), items, targets, 0.1, log_q_or_none).backward()
        return np.linalg.norm(items.grad.numpy(), axis=1)

    plain, corrected = push_on(None), push_on(log_q)
    assert corrected[0] < plain[0] and (corrected[1:] > plain[1:]).any()
    # equal sampling probabilities change nothing
    same = paddle.to_tensor(np.full(4, np.log(0.25), "float32"))
    args = (paddle.to_tensor(users), paddle.to_tensor(item_rows), targets, 0.1)
    assert float(in_batch_softmax_loss(*args, same)) == pytest.approx(float(in_batch_softmax_loss(*args)), rel=1e-6)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="history_input"):
        tiny(history_input="mixed")
    with pytest.raises(ValueError, match="pooling"):
        tiny(pooling="max")
    with pytest.raises(ValueError, match="recent"):
        tiny(recent=MAX_LEN + 1)
    with pytest.raises(ValueError, match="title_vectors has 5 rows"):
        tiny(title_vectors=np.zeros((5, 8), "float32"))

"""The ``Recommend`` section of the config schema (next-item models, ``Data.modality: sequence``), in its own module
to keep :mod:`paddle_tag.config.schema` short; :class:`~paddle_tag.config.schema.Config` holds it like any section."""
from __future__ import annotations

from dataclasses import dataclass

from paddle_tag.errors import ConfigError

#: Model.name values that are next-item sequence models (Data.modality=sequence)
SEQUENCE_MODELS = ("sasrec", "gru4rec")


@dataclass
class RecommendConfig:
    """Next-item recommendation over behaviour sequences: ``Data.train_path`` is a prepared interaction log
    (``python tools/prepare_data.py movielens_1m``), ``Data.max_seq_len`` the history length a model reads."""

    item_tags: bool = True  # an item's vector adds the mean embedding of its tags (MovieLens: genres)
    eval_users: int = 0  # rank for at most this many users (a fixed sample) per evaluation; 0 = every user
    knn_recent: int = 3  # the ItemKNN baseline sums similarities to the last N history items (chosen on ML-1M valid)

    def __post_init__(self) -> None:
        if self.knn_recent < 1:
            raise ConfigError(f"Recommend.knn_recent must be >= 1, got {self.knn_recent}")
        if self.eval_users < 0:
            raise ConfigError(f"Recommend.eval_users must be >= 0 (0 = every user), got {self.eval_users}")

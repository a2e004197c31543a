"""The ``Recommend`` section of the config schema (next-item models, ``Data.modality: sequence``), in its own module
to keep :mod:`paddle_tag.config.schema` short; :class:`~paddle_tag.config.schema.Config` holds it like any section."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from paddle_tag.errors import ConfigError

#: Model.name values that are next-item sequence models (Data.modality=sequence)
SEQUENCE_MODELS = ("sasrec", "gru4rec")
#: Model.name values that are two-tower retrieval models (Data.modality=sequence; the two_tower task)
TWO_TOWER_MODELS = ("two_tower",)


@dataclass
class RecommendConfig:
    """Next-item recommendation over behaviour sequences: ``Data.train_path`` is a prepared interaction log
    (``python tools/prepare_data.py movielens_1m``), ``Data.max_seq_len`` the history length a model reads."""

    item_tags: bool = True  # an item's vector adds the mean embedding of its tags (MovieLens: genres)
    eval_users: int = 0  # rank for at most this many users (a fixed sample) per evaluation; 0 = every user
    knn_recent: int = 3  # the ItemKNN baseline sums similarities to the last N history items (chosen on ML-1M valid)
    # two_tower only: score = user·item / temperature (both unit vectors), in training and ranking alike
    temperature: float = 0.05
    log_q: bool = True  # two_tower: subtract log(item's share of the training targets) from in-batch logits
    title_vectors: bool = True  # two_tower: the item tower adds a projection of a frozen text vector of its title
    title_model: str = "multilingual-e5-small"  # two_tower: the text encoder of the titles (a models-cache name/dir)
    user_profile: bool = True  # two_tower: the user tower embeds the profile fields below (unknown -> own index)
    # two_tower: the user fields of the data set the user tower embeds (MovieLens: users.dat columns)
    profile_fields: list[str] = field(default_factory=lambda: ["gender", "age", "occupation"])
    # two_tower: history items read through the user tower's own embeddings (own) or the item tower (items)
    history_input: Literal["own", "items"] = "own"
    pooling: Literal["mean", "position"] = "mean"  # two_tower: plain mean, or learned weights per position
    recent_items: int = 0  # two_tower: the last N history items' vectors also enter the user MLP side by side

    def __post_init__(self) -> None:
        if self.knn_recent < 1:
            raise ConfigError(f"Recommend.knn_recent must be >= 1, got {self.knn_recent}")
        if self.eval_users < 0:
            raise ConfigError(f"Recommend.eval_users must be >= 0 (0 = every user), got {self.eval_users}")
        if not self.temperature > 0:
            raise ConfigError(f"Recommend.temperature must be positive, got {self.temperature}")
        if self.recent_items < 0:
            raise ConfigError(f"Recommend.recent_items must be >= 0, got {self.recent_items}")
        if len(set(self.profile_fields)) != len(self.profile_fields) or not all(self.profile_fields):
            raise ConfigError(f"Recommend.profile_fields must be distinct non-empty names, got {self.profile_fields}")
        if self.title_vectors and not self.title_model:
            raise ConfigError("Recommend.title_vectors needs Recommend.title_model (e.g. multilingual-e5-small)")

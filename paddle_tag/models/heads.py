"""The MLP projection head of contrastive pretraining (SimCLR, MoCo v2).

The head maps pooled encoder features ``(B, in_dim)`` to the ``(B, out_dim)`` space where the
contrastive loss is computed, and is discarded afterwards. Its architecture is data: a list of
``(in_dim, out_dim, batch_norm, relu)`` blocks, each one ``Linear`` optionally followed by
``BatchNorm1D`` and ``ReLU`` (as lightly's ``ProjectionHead(blocks=...)``), built by
:func:`projection_blocks` from the few numbers that usually vary.
"""
from __future__ import annotations

from numbers import Integral
from typing import NamedTuple

import paddle
import paddle.nn as nn


class Block(NamedTuple):
    """``Linear(in_dim, out_dim)``, then ``BatchNorm1D(out_dim)`` if ``batch_norm``, then ``ReLU`` if ``relu``."""

    in_dim: int
    out_dim: int
    batch_norm: bool
    relu: bool


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def projection_blocks(
    in_dim: int,
    hidden_dim: int = 2048,
    out_dim: int = 128,
    num_layers: int = 2,
    batch_norm: bool = True,
) -> list[Block]:
    """The blocks of a SimCLR / MoCo v2 head: ``num_layers - 1`` hidden blocks, then a plain Linear.

    ``num_layers=2`` gives ``[(in, hidden, bn, True), (hidden, out, False, False)]``;
    ``num_layers=1`` gives ``[(in, out, False, False)]`` (a linear projection; ``hidden_dim`` unused).

    Raises:
        ValueError: a dimension < 1 or ``num_layers`` < 1.
    """
    in_dim = _check_positive_int(in_dim, "in_dim")
    hidden_dim = _check_positive_int(hidden_dim, "hidden_dim")
    out_dim = _check_positive_int(out_dim, "out_dim")
    num_layers = _check_positive_int(num_layers, "num_layers")
    dims = [in_dim] + [hidden_dim] * (num_layers - 1)
    hidden = [Block(d, hidden_dim, bool(batch_norm), True) for d in dims[:-1]]
    return hidden + [Block(dims[-1], out_dim, False, False)]


def _layers(blocks: list[Block]) -> list[nn.Layer]:
    layers: list[nn.Layer] = []
    for block in blocks:
        # a bias right before BatchNorm is cancelled by its mean subtraction: leave it out
        layers.append(nn.Linear(block.in_dim, block.out_dim, bias_attr=False if block.batch_norm else None))
        if block.batch_norm:
            layers.append(nn.BatchNorm1D(block.out_dim))
        if block.relu:
            layers.append(nn.ReLU())
    return layers


class ProjectionHead(nn.Layer):
    """SimCLR / MoCo v2 projection head: ``Linear -> BatchNorm1D -> ReLU -> ... -> Linear``.

    Args:
        in_dim: size of the input features (the encoder's pooled embedding).
        hidden_dim: width of the hidden layers.
        out_dim: size of the projection the contrastive loss sees.
        num_layers: number of Linear layers, >= 1; 1 is a single Linear ``in_dim -> out_dim``.
        batch_norm: put ``BatchNorm1D`` after every hidden Linear (whose bias is then dropped).
            With it, training-mode batches need more than one sample.

    Attributes:
        blocks: the :class:`Block` list the head was built from.
        layers: the ``nn.Sequential`` of the layers.

    Shapes: input ``(B, in_dim)`` float, output ``(B, out_dim)``.

    Raises:
        ValueError: a dimension < 1 or ``num_layers`` < 1.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        num_layers: int = 2,
        batch_norm: bool = True,
    ):
        super().__init__()
        self.blocks = projection_blocks(in_dim, hidden_dim, out_dim, num_layers, batch_norm)
        self.in_dim = self.blocks[0].in_dim
        self.out_dim = self.blocks[-1].out_dim
        self.layers = nn.Sequential(*_layers(self.blocks))

    def forward(self, features: paddle.Tensor) -> paddle.Tensor:
        """Projections ``(B, out_dim)`` of features ``(B, in_dim)``."""
        return self.layers(features)

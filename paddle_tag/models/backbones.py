"""PaddleClas image backbones as feature encoders ``(B, 3, H, W) -> (B, D)``, classifier cut off.

:data:`BACKBONES` names the backbones and :func:`backbone_constructor` gives each one's PaddleClas 2.6
constructor (importing PaddleClas on first use). :class:`ImageEncoder` builds one with ``pretrained=False``
and removes what belongs to the ImageNet classifier: the final ``fc`` Linear, and the ``Dropout`` right before
it (MobileNetV3, PP-LCNet; in PaddleClas's ``downscale_in_infer`` mode it would also scale eval-mode features by
0.8). The feature is what
entered ``fc``:

==========================  ====  ==========================================================
name                        D     feature
==========================  ====  ==========================================================
resnet18                    512   stem, 4 stages, global average pool
mobilenetv3_small_x0_35     1280  blocks, 1×1 conv (200 ch), global pool, 1×1 conv + hardswish
pplcnet_x0_25               1280  blocks (128 ch), global pool, 1×1 conv + hardswish
==========================  ====  ==========================================================

All three end in a global average pool and pad their convolutions, so any input of at least 1×1
runs; at 28×28 (Fashion-MNIST, 32× downsampling) the last stage works on a 1×1 map, so resizing to
32×32 or more, as the presets of :mod:`paddle_tag.data.augment.image` do, keeps a little more.

Importing PaddleClas runs its top-level ``paddleclas/__init__.py`` (no way around it with
``from paddleclas.ppcls.arch.backbone import ...``): it loads its predictor, faiss, scikit-learn
and pandas (several seconds), adds a stdout handler to the ``ppcls`` logger, and faiss logs two
INFO lines, which are silenced here. It neither reads ``sys.argv`` nor downloads anything on import.
"""

from __future__ import annotations

import difflib
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import paddle
import paddle.nn as nn
from safetensors.numpy import load_file

from paddle_tag.config.schema import IMAGE_BACKBONES
from paddle_tag.errors import ModelLoadError
from paddle_tag.utils.safe_load import refuse_pickle_file


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Raise the logger ``name`` to WARNING for the duration of the block."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


#: The image backbones, by Model.name: config.schema.IMAGE_BACKBONES is the one list; each name is its PaddleClas
#: constructor's name in lower case.
BACKBONES: tuple[str, ...] = IMAGE_BACKBONES


def backbone_constructor(name: str) -> Callable[..., nn.Layer]:
    """The PaddleClas constructor of backbone ``name`` (called as ``ctor(pretrained=False)``).

    PaddleClas is imported here, on first use, not with this module: its import takes ~1.5 s (it loads its
    predictor, faiss and scikit-learn), which every tool that merely loads a text checkpoint would pay.
    """
    with _quiet("faiss.loader"):
        from paddleclas.ppcls.arch import backbone

    constructors = {attr.lower(): getattr(backbone, attr) for attr in dir(backbone) if attr.lower() in BACKBONES}
    return constructors[_check_name(name)]


def _check_name(name: object) -> str:
    if isinstance(name, str) and name in BACKBONES:
        return name
    close = difflib.get_close_matches(str(name).lower(), list(BACKBONES), n=1, cutoff=0.4)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown image backbone {name!r}{hint}; choose from {', '.join(BACKBONES)}")


class ImageEncoder(nn.Layer):
    """A PaddleClas backbone without its classifier: images ``(B, 3, H, W)`` -> features ``(B, D)``.

    Args:
        name: a key of :data:`BACKBONES`.
        pretrained: ``False`` (random init), or the path of a local ``.safetensors`` file of the
            PaddleClas backbone (its ``fc.*`` weights are ignored). ``True`` raises
            :class:`~paddle_tag.errors.ModelLoadError`: PaddleClas would download ImageNet weights
            from the internet, which this project never does.

    Attributes:
        name: the backbone name.
        feature_dim: ``D``, the size of the features (what entered the removed classifier).
        net: the PaddleClas layer, its ``fc`` (and dropout) replaced by ``nn.Identity``.

    BatchNorm makes train and eval mode differ: in train mode a batch's own statistics are used
    (and the running ones updated), in eval mode the running ones. Call ``.eval()`` for features.

    Raises:
        ValueError: an unknown ``name`` (the message suggests the closest one).
        ModelLoadError: ``pretrained=True``, or a weights file that is missing or does not fit.
    """

    def __init__(self, name: str = "resnet18", pretrained: bool | str | os.PathLike[str] = False) -> None:
        super().__init__()
        self.name = _check_name(name)
        if pretrained is True:
            raise ModelLoadError(
                f"pretrained=True would make PaddleClas download ImageNet weights for {name!r} from the "
                f"internet, which is not reachable here (no registry package ships them either). Use "
                f"pretrained=False, or pass the path of a local .safetensors file of the backbone "
                f"(tools/convert_weights.py pdparams converts a trusted PaddleClas .pdparams).")
        if pretrained is not False and not isinstance(pretrained, (str, os.PathLike)):
            raise ValueError(f"pretrained must be False or a path to a .safetensors file, got {pretrained!r}")
        net = backbone_constructor(self.name)(pretrained=False)
        self.feature_dim = int(net.fc.weight.shape[0])  # Paddle Linear weights are (in, out)
        net.fc = nn.Identity()
        if isinstance(getattr(net, "dropout", None), nn.Dropout):
            net.dropout = nn.Identity()
        self.net = net
        if pretrained is not False:
            self.load_backbone(pretrained)

    def load_backbone(self, path: str | os.PathLike[str]) -> None:
        """Load a ``.safetensors`` state dict of this PaddleClas backbone (its ``fc.*`` ignored); every weight
        must fit. Pickle-based ``.pdparams`` are refused: convert a trusted one with ``tools/convert_weights.py
        pdparams``."""
        path = Path(path)
        refuse_pickle_file(path, "backbone weights")
        if not path.is_file():
            raise ModelLoadError(f"backbone weights not found: {path}")
        try:
            state = {k: paddle.to_tensor(v) for k, v in load_file(str(path)).items()}
        except Exception as exc:  # noqa: BLE001 (SafetensorError / OSError for a bad or truncated file)
            raise ModelLoadError(f"{path}: cannot read backbone weights as safetensors: {exc}") from None
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = self.net.state_dict()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        wrong = [k for k in own if k in state and list(state[k].shape) != list(own[k].shape)]
        if missing or extra or wrong:
            raise ModelLoadError(f"{path} does not fit {self.name}: missing {missing[:3]}, unexpected "
                                 f"{extra[:3]}, wrong shape {wrong[:3]} ({len(missing)}/{len(extra)}/"
                                 f"{len(wrong)} in all)")
        self.net.set_state_dict(state)

    def forward_features(self, images: paddle.Tensor) -> paddle.Tensor:
        """Pooled features ``(B, feature_dim)`` of float images ``(B, 3, H, W)``, H, W >= 1."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {list(images.shape)}; replicate a gray "
                             f"channel with GrayToRGB")
        return self.net(images)

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        """Same as :meth:`forward_features`."""
        return self.forward_features(images)

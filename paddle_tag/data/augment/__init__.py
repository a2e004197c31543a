"""Data augmentations. :mod:`.text`: small composable augmentations of Chinese text (word
deletion, word swap, synonym replacement, character masking) for contrastive pretraining.
:mod:`.image`: numpy image transforms (random resized crop, flip, color jitter, grayscale, blur,
channel replication, normalization) and the SimCLR / MoCo v2 view presets."""

from paddle_tag.data.augment.image import (
    ColorJitter,
    GaussianBlur,
    GrayToRGB,
    HorizontalFlip,
    ImageCompose,
    ImageTransform,
    Normalize,
    RandomApply,
    RandomGrayscale,
    RandomResizedCrop,
    Resize,
    ToCHW,
    ToFloat,
    eval_transform,
    moco_v2_transform,
    simclr_transform,
)
from paddle_tag.data.augment.text import (
    TEXT_AUGMENTS,
    CharMask,
    Compose,
    SynonymReplace,
    TextAugment,
    WordDeletion,
    WordSwap,
    build_text_augment,
    load_synonyms,
)

__all__ = ["TEXT_AUGMENTS", "CharMask", "ColorJitter", "Compose", "GaussianBlur", "GrayToRGB",
           "HorizontalFlip", "ImageCompose", "ImageTransform", "Normalize", "RandomApply",
           "RandomGrayscale", "RandomResizedCrop", "Resize", "SynonymReplace", "TextAugment", "ToCHW",
           "ToFloat", "WordDeletion", "WordSwap", "build_text_augment", "eval_transform", "load_synonyms",
           "moco_v2_transform", "simclr_transform"]

"""Config system: schema in code, YAML files with ``_base_``, ``-o Section.key=value`` overrides."""
from paddle_tag.config.loader import all_keys, config_to_dict, load_config, save_config
from paddle_tag.config.recommend_schema import SEQUENCE_MODELS, RecommendConfig
from paddle_tag.config.schema import (
    EXPORT_VARIANTS,
    IMAGE_BACKBONES,
    IMAGE_METHODS,
    MAX_OPSET,
    MIN_IMAGE_SIZE,
    MIN_OPSET,
    TEXT_ENCODERS,
    TEXT_METHODS,
    Config,
    DataConfig,
    DiscoverConfig,
    ExportConfig,
    GlobalConfig,
    LossConfig,
    MetricConfig,
    ModelConfig,
    OptimizerConfig,
    PretrainConfig,
)
from paddle_tag.config.validate import validate

__all__ = ["EXPORT_VARIANTS", "IMAGE_BACKBONES", "IMAGE_METHODS", "MAX_OPSET", "MIN_IMAGE_SIZE", "MIN_OPSET",
           "SEQUENCE_MODELS", "TEXT_ENCODERS", "TEXT_METHODS", "Config", "DataConfig", "DiscoverConfig",
           "ExportConfig", "GlobalConfig", "LossConfig", "MetricConfig", "ModelConfig", "OptimizerConfig",
           "PretrainConfig", "RecommendConfig", "all_keys", "config_to_dict", "load_config", "save_config", "validate"]

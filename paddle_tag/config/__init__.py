"""Config system: schema in code, YAML files with ``_base_``, ``-o Section.key=value`` overrides."""
from paddle_tag.config.loader import all_keys, config_to_dict, load_config, save_config
from paddle_tag.config.schema import (
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

__all__ = ["Config", "DataConfig", "DiscoverConfig", "ExportConfig", "GlobalConfig", "LossConfig", "MetricConfig",
           "ModelConfig", "OptimizerConfig", "PretrainConfig", "all_keys", "config_to_dict", "load_config", "save_config"]

"""Config system: schema in code, YAML files with ``_base_``, ``-o Section.key=value`` overrides."""
from paddle_tag.config.loader import all_keys, config_to_dict, load_config, save_config
from paddle_tag.config.schema import (
                                      Config,
                                      DataConfig,
                                      ExportConfig,
                                      GlobalConfig,
                                      LossConfig,
                                      MetricConfig,
                                      ModelConfig,
                                      OptimizerConfig,
)

__all__ = ["Config", "DataConfig", "ExportConfig", "GlobalConfig", "LossConfig", "MetricConfig", "ModelConfig",
           "OptimizerConfig", "all_keys", "config_to_dict", "load_config", "save_config"]

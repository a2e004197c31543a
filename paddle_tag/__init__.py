"""paddle_tag: Chinese content tagging with PaddlePaddle, from few or no labels to a deployed tagger."""

__version__ = "0.1.0"

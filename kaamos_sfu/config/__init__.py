"""Typed configuration: defaults, then config.toml, then KAAMOS_<SECTION>_<KEY> env vars,
then --set overrides.

`schema` holds the settings and their defaults, `loading` builds a Config from those layers,
`validation` checks ranges and formats, `origins` reads browser origins. Unknown sections or
keys and values of the wrong type stop the start with a message that names the key, so a
typo never silently falls back to a default.
"""

from .loading import apply_mapping, load_config
from .origins import origin_of
from .schema import DEFAULT_STATIC_DIR, Config, ConfigError, IceConfig, SignalingConfig
from .validation import MIN_SECRET_LENGTH, validate

__all__ = [
    "DEFAULT_STATIC_DIR",
    "MIN_SECRET_LENGTH",
    "Config",
    "ConfigError",
    "IceConfig",
    "SignalingConfig",
    "apply_mapping",
    "load_config",
    "origin_of",
    "validate",
]

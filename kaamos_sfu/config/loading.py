"""Building a Config: defaults < TOML file < KAAMOS_<SECTION>_<KEY> env vars < --set.

Every layer is strict: an unknown section or key, or a value of the wrong type, is a
ConfigError naming it, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .schema import Config, ConfigError
from .validation import validate


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> Config:
    """Build the configuration: defaults < TOML file < environment < `overrides`.

    `overrides` are command-line `section.key=value` strings, parsed like env values.
    """
    config = Config()
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
        apply_mapping(config, data, origin=str(path))
    apply_env(config, os.environ if env is None else env)
    apply_overrides(config, overrides)
    validate(config)
    return config


def apply_mapping(config: Config, data: Mapping[str, Any], origin: str) -> None:
    sections = {f.name: f for f in dataclasses.fields(config)}
    for section_name, values in data.items():
        if section_name not in sections:
            raise ConfigError(f"{origin}: unknown section [{section_name}]")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section_name}] must be a table")
        section = getattr(config, section_name)
        fields = {f.name: f for f in dataclasses.fields(section)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"{origin}: unknown key {section_name}.{key}")
            setattr(section, key, _coerce(f"{section_name}.{key}", fields[key], value, origin))


def apply_env(config: Config, env: Mapping[str, str]) -> None:
    """Apply KAAMOS_<SECTION>_<KEY> variables. A variable that starts with a known section's
    prefix but names no key is an error (a typo); other KAAMOS_* variables are not ours."""
    known: set[str] = set()
    for section_field in dataclasses.fields(config):
        section = getattr(config, section_field.name)
        for f in dataclasses.fields(section):
            name = f"KAAMOS_{section_field.name}_{f.name}".upper()
            known.add(name)
            if name in env:
                value = _parse_text(name, f, env[name])
                setattr(section, f.name, _coerce(f"{section_field.name}.{f.name}", f, value, name))
    prefixes = tuple(f"KAAMOS_{f.name.upper()}_" for f in dataclasses.fields(config))
    for name in sorted(env):
        if name.startswith(prefixes) and name not in known:
            raise ConfigError(f"{name}: unknown setting (no such key in config.toml)")


def apply_overrides(config: Config, overrides: Sequence[str]) -> None:
    """Apply command-line `section.key=value` settings (values written as in env vars)."""
    for item in overrides:
        origin = f"--set {item}"
        name, sep, raw = item.partition("=")
        section_name, dot, key = name.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"{origin}: expected section.key=value")
        if section_name not in {f.name for f in dataclasses.fields(config)}:
            raise ConfigError(f"{origin}: unknown section [{section_name}]")
        section = getattr(config, section_name)
        fields = {f.name: f for f in dataclasses.fields(section)}
        if key not in fields:
            raise ConfigError(f"{origin}: unknown key {section_name}.{key}")
        value = _parse_text(origin, fields[key], raw)
        setattr(section, key, _coerce(f"{section_name}.{key}", fields[key], value, origin))


def _parse_text(name: str, f: dataclasses.Field[Any], raw: str) -> Any:
    """A setting written as text (env var or --set): lists comma-separated, except lists of
    tables, which are JSON."""
    kind = str(f.type)
    if kind.startswith("list[dict"):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: expected a JSON list: {exc}") from exc
    if kind.startswith("list"):
        return [item.strip() for item in raw.split(",") if item.strip()]
    if kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    return raw


def _coerce(key: str, f: dataclasses.Field[Any], value: Any, origin: str) -> Any:
    kind = str(f.type)
    ok: bool
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        # inf and nan would pass every "> 0" check and then overflow the first time-sum.
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        value = float(value) if ok else value
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind.startswith("list[dict"):
        ok = isinstance(value, list) and all(isinstance(v, dict) for v in value)
    elif kind.startswith("list"):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:  # pragma: no cover - every field type is listed above
        raise AssertionError(kind)
    if not ok:
        raise ConfigError(f"{origin}: {key} must be of type {kind}, got {value!r}")
    return value

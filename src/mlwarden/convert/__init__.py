"""Pickle weights -> safetensors in an isolated subprocess, with provenance."""

from mlwarden.convert.convert import (
    Conversion,
    ConvertError,
    convert_file,
    find_pickle_weights,
    isolated_env,
    output_name,
)

__all__ = ["Conversion", "ConvertError", "convert_file", "find_pickle_weights", "isolated_env",
           "output_name"]

"""pip configuration files (pip.conf / pip.ini), read with configparser."""

from __future__ import annotations

import configparser
from pathlib import Path

from mlwarden.deps.inputs import InputTooLarge, find_line, loc, read_text
from mlwarden.deps.inputs.requirements import display
from mlwarden.deps.model import IndexSetting, Parsed
from mlwarden.deps.rules import PARSE_ERROR

_KEYS = ("index-url", "extra-index-url", "trusted-host", "find-links")


def parse_pip_conf(path: Path, root: Path) -> Parsed:
    parsed = Parsed(display(path, root), "pip-conf")
    try:
        text = read_text(path)
    except (OSError, InputTooLarge) as exc:
        parsed.findings.append(PARSE_ERROR.finding(f"cannot read: {exc}"))
        return parsed
    config = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        config.read_string(text)
    except configparser.Error as exc:
        parsed.findings.append(PARSE_ERROR.finding(f"invalid pip configuration: {exc}"))
        return parsed
    lines = text.splitlines()
    for section in config.sections():
        for key in _KEYS:
            for alias in (key, key.replace("-", "_")):
                if not config.has_option(section, alias):
                    continue
                # Multi-valued options list one value per line or separated by spaces.
                for value in config.get(section, alias).split():
                    parsed.indexes.append(IndexSetting(
                        parsed.path, find_line(lines, value) or find_line(lines, alias), key,
                        value))
    if not config.sections() and text.strip():
        parsed.findings.append(PARSE_ERROR.finding("no [global]/[install] section",
                                                   loc(1)))
    return parsed

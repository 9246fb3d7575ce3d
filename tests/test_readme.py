"""The README's configuration examples stay valid as the code changes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from koodrive_exporter import config

README = Path(__file__).resolve().parent.parent / "README.md"


def config_examples() -> list[str]:
    """Every fenced YAML block of the README that is an exporter configuration."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return [block for block in blocks if block.startswith(("koodrive:", "tenants:"))]


def test_every_readme_configuration_example_is_valid() -> None:
    examples = config_examples()

    assert len(examples) >= 2
    for example in examples:
        config.parse(yaml.safe_load(example))


def test_the_full_readme_example_names_every_documented_key() -> None:
    text = README.read_text(encoding="utf-8")
    documented = set(
        re.findall(
            r"^\| `((?:koodrive|refresh|users|collectors)\.[A-Za-z_.]+)` \|", text, re.M
        )
    )
    full = max(config_examples(), key=len)
    shown = set()

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        else:
            shown.add(prefix)

    walk(yaml.safe_load(full), "")
    missing_from_table = shown - documented
    assert not missing_from_table, missing_from_table

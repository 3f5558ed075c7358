"""The scrub corpus: real error-message formats with names planted in them.

``templates.txt`` holds the formats (botocore and S3 XML, google-cloud-storage and
google-api-core, azure-core and azure-storage, paramiko and OpenSSH, OSError
strerrors, urllib3 and requests, Skyplane 0.3.2's exceptions). ``cases()`` plants
names of every shape in them; ``name_shapes`` builds the same shapes from any parts.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TEMPLATES = Path(__file__).with_name("templates.txt")
_FACT_RE = re.compile(r"\[\[(.+?)\]\]")


@dataclass(frozen=True)
class Template:
    source: str
    text: str  # with {} where a name goes and [[...]] around the facts

    @property
    def facts(self) -> list[str]:
        return _FACT_RE.findall(self.text)

    def plant(self, name: str) -> str:
        return _FACT_RE.sub(r"\1", self.text).replace("{}", name)


def templates() -> list[Template]:
    found = []
    for line in TEMPLATES.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            source, _, text = line.partition("\t")
            found.append(Template(source, text))
    return found


def name_shapes(first: str, second: str, number: int) -> dict[str, str]:
    """One name in every shape the issue lists; ``first`` and ``second`` are unknown words."""
    return {
        "hyphenated": f"{first}-{second}-prod",
        "snake": f"{first}_{second}_data",
        "camel": f"{first.capitalize()}{second.capitalize()}Store",
        "camel-known-tail": f"Data{first.capitalize()}",
        "digits": f"{first}{number}",
        "digits-hyphen": f"{first}-{number}-{second}",
        "non-ascii": f"{first}\u00e9-{second}\u00fc",
        "quoted": f"'{first}-{second}'",
        "double-quoted": f'"{first}"',
        "url-encoded": urllib.parse.quote(f"{first}-{second}/{number}", safe=""),
        "spaces": f"{first.capitalize()} {second.capitalize()}",
        "dotted": f"{first}.{second}",
        "plain": first,
        "title": first.capitalize(),
    }


# Pronounceable non-words: no English word list holds them, so any that shows up in
# a payload leaked. Paired so each template gets names of several shapes.
PLANTED_WORDS = (
    ("zorvak", "quibnet"),
    ("keenix", "plovard"),
    ("trellum", "vaskor"),
    ("mirvane", "doskel"),
    ("yarrib", "fenwix"),
    ("olbrek", "sandrup"),
)


def cases() -> Iterator[tuple[str, Template, str, str, list[str]]]:
    """(id, template, shape, planted text, unknown words) for every template x two shapes."""
    shapes = list(name_shapes("a", "b", 1))
    for index, template in enumerate(templates()):
        first, second = PLANTED_WORDS[index % len(PLANTED_WORDS)]
        names = name_shapes(first, second, 4000 + index)
        for offset in (0, 7):
            shape = shapes[(index + offset) % len(shapes)]
            yield (
                f"{template.source}-{index}-{shape}",
                template,
                shape,
                template.plant(names[shape]),
                [first, second],
            )

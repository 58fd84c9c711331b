"""Prints the packages full pylablib pulled in (its GUI and remote-control dependencies) that are
installed and that no other installed package requires: what scripts/setup_env.sh removes when it
replaces pylablib with pylablib-lightweight (bench/RESULTS.md, "Dependencies")."""

from __future__ import annotations

import re
from importlib.metadata import distributions

# pylablib 1.4.5's install_requires beyond pylablib-lightweight[devio]'s, and what they pull in
ONLY_FULL_PYLABLIB = {"pyqt5", "pyqt5-qt5", "pyqt5-sip", "pyqtgraph", "rpyc", "plumbum"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.split(r"[\s;<>=!~\[(]", requirement.strip(), maxsplit=1)[0])


def leftovers() -> list[str]:
    installed = {canonical(d.metadata["Name"]): d for d in distributions()}
    needed = {requirement_name(r) for name, d in installed.items() if name not in ONLY_FULL_PYLABLIB
              for r in d.requires or [] if "extra ==" not in r}
    return sorted(name for name in ONLY_FULL_PYLABLIB if name in installed and name not in needed)


if __name__ == "__main__":
    print(" ".join(leftovers()))

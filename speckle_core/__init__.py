"""The floor of speckle-lab: what every other package may import, and which imports none of them.

- :mod:`speckle_core.errors`: the error classes the CLI maps to exit codes;
- :mod:`speckle_core.config`: TOML files (protocols, rigs) into validated models;
- :mod:`speckle_core.runfile`: the run file: its format, writer and reader (one package);
- :mod:`speckle_core.text`: ``one_line``, an exception as one line for a one-line error message.

Layers (enforced by import-linter, ``pyproject.toml``): ``speckle_lab`` (CLI, demo, API) above
``acquisition`` and ``reconstruction``, above ``hardware`` and ``protocols``, above ``speckle_core``.
"""

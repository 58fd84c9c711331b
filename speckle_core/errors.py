"""Error classes the CLI maps to exit codes (docs/design.md, "Exit codes")."""


class UserError(Exception):
    """The user's input is bad: the CLI prints the message on one line and exits 2.

    The message must name the file, key or value at fault, e.g.
    ``protocols/x.toml: camera.exposure_us: must be > 0 (got -5)``.
    """


class NotAvailableError(Exception):
    """A part of speckle-lab that is not built or not installed: one line, exit 1."""

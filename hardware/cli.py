"""``speckle-lab devices``. Imports only click at load time."""

from __future__ import annotations

import click

from speckle_lab.errors import NotAvailableError


@click.command()
def devices() -> None:
    """List the devices each backend finds, and what is missing (driver, DLL, package)."""
    raise NotAvailableError("devices: device discovery is not built yet")

"""``speckle-lab devices``. Imports only click at load time."""

from __future__ import annotations

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def devices(as_json: bool) -> int:
    """List the devices each backend finds, and what is missing (driver, DLL, package)."""
    from hardware.drivers.discovery import format_results, run_probes

    results = run_probes()
    if as_json:
        import json

        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        click.echo(format_results(results))
    return 0

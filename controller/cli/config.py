"""``retrainctl config validate``: every configuration file, checked before anything runs."""

from __future__ import annotations

import typer

from controller.cli.common import ConfigOpt, console


def config_validate(config: ConfigOpt = None) -> None:
    """Check controller.yaml, every model file, their policies and trainers."""
    from controller.config import check_trainer, load_models, load_service_config, resolve_policy

    service = load_service_config(config)
    models = load_models(service)
    for m in models.values():
        resolve_policy(service, m)
        check_trainer(m)
    console().print(f"ok: {service.source_file} and {len(models)} model file(s): {', '.join(sorted(models)) or '-'}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Configuration files.", no_args_is_help=True)
    group.command("validate")(config_validate)
    app.add_typer(group, name="config")

"""The ``agenttrail`` command.

``agenttrail serve`` runs the backend; ``agenttrail validate`` checks runs against a runbook
(see docs/runbooks.md).  Every ``serve`` flag has an ``AGENTTRAIL_<NAME>`` variable and a
config-file key of the same name (README, "Settings").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from agenttrail.validator import cli as validate_cli

from .settings import FIELDS, SettingsError, load_settings


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML config file (also AGENTTRAIL_CONFIG)")
    for name, f in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        help_text = f.metadata.get("help", "") + f" [env AGENTTRAIL_{name.upper()}]"
        if isinstance(f.default, bool):
            parser.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=help_text)
        elif name in ("api_keys", "webhooks"):
            continue  # keys belong in the config file or the environment, not in shell history;
            # webhooks are structured (and carry secrets): config file only
        else:
            kind = type(f.default) if isinstance(f.default, (int, float)) else str
            parser.add_argument(flag, dest=name, type=kind if kind is not tuple else str,
                                default=None, metavar=name.upper(), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``agenttrail`` command."""
    parser = argparse.ArgumentParser(prog="agenttrail", description="OpenTelemetry backend for AI agents.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the OTLP receivers and the REST API")
    _add_serve_arguments(serve)
    validate = commands.add_parser("validate", help="check runs against a runbook (exit 1 if any fails)")
    validate_cli.add_arguments(validate)
    validate.set_defaults(handler=validate_cli.run)
    return parser


def serve(args: argparse.Namespace) -> int:
    """Run ``agenttrail serve`` until SIGINT/SIGTERM."""
    cli = {k: v for k, v in vars(args).items() if k in FIELDS}
    try:
        settings = load_settings(cli, config_path=args.config)
    except SettingsError as exc:
        print(f"agenttrail serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .app import Service

    service = Service(settings)

    async def main():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.request_stop)
        await service.serve()

    try:
        asyncio.run(main())
    except OSError as exc:
        print(f"agenttrail serve: cannot listen: {exc}", file=sys.stderr)
        return 1
    except SettingsError as exc:
        print(f"agenttrail serve: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``agenttrail`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())

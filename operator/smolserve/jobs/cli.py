"""``smolserve job …``: the commands the template Job and the LoRA init container run."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from smolserve.errors import SmolserveError
from smolserve.template.generate import VARIANTS

TERMINATION_LOG_ENV = "SMOLSERVE_TERMINATION_LOG"


def register(subparsers: argparse._SubParsersAction) -> None:
    job = subparsers.add_parser("job", help="commands that run inside the cluster")
    commands = job.add_subparsers(dest="job_command", required=True, parser_class=type(job))

    publish = commands.add_parser(
        "publish-template",
        help="generate or take a chat template, verify it, create its immutable ConfigMap",
    )
    publish.add_argument("--serve", required=True, help="the SmolServe's name")
    publish.add_argument("--inputs-hash", required=True, help="hash of the Job's inputs (a label)")
    publish.add_argument(
        "--namespace", help="default: $SMOLSERVE_NAMESPACE, then the service account's"
    )
    publish.add_argument("--owner-uid", help="the SmolServe's uid, for the ownerReference")
    publish.add_argument("--tokenizer", required=True, help="hub id or local directory")
    publish.add_argument("--revision", help="hub revision of the tokenizer")
    source = publish.add_mutually_exclusive_group()
    source.add_argument("--template-file", help="verify and publish this template")
    source.add_argument("--template-env", help="verify and publish the template in this env var")
    publish.add_argument(
        "--variant",
        default="fixed",
        choices=VARIANTS,
        help="generate this variant",
    )
    publish.add_argument(
        "--close-system-turn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with a generated variant, end the system turn where the stock header leaves it open",
    )
    publish.add_argument(
        "--allow-unverified",
        action="store_true",
        help="publish even if verification fails (the stock variant)",
    )
    publish.add_argument(
        "--termination-log",
        default=os.environ.get(TERMINATION_LOG_ENV, "/dev/termination-log"),
        help=f"where a failure's one line goes (default: ${TERMINATION_LOG_ENV}, "
        "else /dev/termination-log)",
    )
    publish.set_defaults(func=_publish)

    fetch = commands.add_parser("fetch-adapters", help="download hf:// LoRA adapters")
    fetch.add_argument("--dest", default="/adapters", type=Path, help="adapters go to DEST/<name>")
    fetch.add_argument(
        "adapters",
        nargs="+",
        metavar="NAME=hf://org/repo@revision",
        help="an adapter to download, by name and pinned hub source (repeatable)",
    )
    fetch.set_defaults(func=_fetch)


def _publish(args: argparse.Namespace) -> int:
    from smolserve.jobs.kube import core_api, current_namespace
    from smolserve.jobs.publish import PublishRequest, publish_template, write_termination_message

    try:
        request = PublishRequest(
            serve=args.serve,
            namespace=current_namespace(args.namespace),
            owner_uid=args.owner_uid,
            inputs_hash=args.inputs_hash,
            tokenizer=args.tokenizer,
            revision=args.revision,
            variant=args.variant,
            close_system_turn=args.close_system_turn,
            template_file=args.template_file,
            template_env=args.template_env,
            allow_unverified=args.allow_unverified,
        )
        name = publish_template(request, core_api())
    except SmolserveError as exc:
        write_termination_message(args.termination_log, str(exc))
        raise
    except Exception as exc:  # anything else still leaves one line for the operator
        message = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        write_termination_message(args.termination_log, message)
        raise SmolserveError(message) from exc
    print(name)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from smolserve.jobs.adapters import fetch_adapters

    fetch_adapters(args.adapters, args.dest)
    return 0

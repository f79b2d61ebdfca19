"""`pbx prompt say|add|list|del`: the announcements IVR menus play."""

import argparse
from collections.abc import Sequence
from pathlib import Path

from pbx_services.cli.common import (
    EXIT_OK,
    Parser,
    Subparsers,
    data_dir_option,
    delete_command,
    list_command,
    open_data_dir,
    print_table,
)
from pbx_services.cluster.prompts import PromptInfo, PromptService

SOURCE_COLUMN_WIDTH = 60


def tenant_option() -> argparse.ArgumentParser:
    """A parent parser giving a command the --tenant option."""
    parent = Parser(add_help=False)
    parent.add_argument(
        "--tenant", metavar="DOMAIN", help="the tenant's SIP domain (default: the default tenant)"
    )
    return parent


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("prompt", help="add, list and delete the prompts IVR menus play")
    commands = parser.add_subparsers(dest="prompt_command", required=True, metavar="COMMAND")
    common = [data_dir_option(), tenant_option()]
    replace = Parser(add_help=False)
    replace.add_argument("--replace", action="store_true",
                         help="replace the prompt of that name (menus playing it play the new one)")

    say = commands.add_parser(
        "say", parents=[*common, replace], help="speak a text with espeak-ng and store it as a prompt",
        description="Speak TEXT with espeak-ng (apt-get install espeak-ng) and store it as prompt NAME.",
    )
    say.add_argument("text", metavar="TEXT")
    say.add_argument("name", metavar="NAME")
    say.add_argument("--voice", default="en", metavar="V", help="espeak-ng voice: en, en-us, fr, de, ... "
                     "('espeak-ng --voices' lists them; default: en)")
    say.set_defaults(run=_prompt_say)

    add = commands.add_parser(
        "add", parents=[*common, replace], help="import a WAV file as a prompt",
        description="Import a WAV file (PCM, float, µ-law or A-law; any rate, any channels) as prompt NAME: "
        "it is stored as 16-bit mono 8000 Hz audio.",
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("file", type=Path, metavar="FILE")
    add.set_defaults(run=_prompt_add)

    list_command(commands, common, PromptService, PromptService.list, help="list the prompts",
                 none="no prompts", show=_show_prompts)
    delete_command(commands, common, PromptService, PromptService.delete,
                   help="delete a prompt no menu plays", what="prompt", key="name")



def _prompt_say(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        prompt = opened.service(PromptService).say(args.text, args.name, tenant_domain=args.tenant,
                                             voice=args.voice, replace=args.replace)
    _print_added(prompt)
    return EXIT_OK


def _prompt_add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        prompt = opened.service(PromptService).add_file(args.name, args.file, tenant_domain=args.tenant,
                                                  replace=args.replace)
    _print_added(prompt)
    return EXIT_OK


def _print_added(prompt: PromptInfo) -> None:
    print(f"added prompt {prompt.name} ({prompt.duration:.1f} s)")


def _show_prompts(prompts: Sequence[PromptInfo]) -> None:
    print_table(("NAME", "SECONDS", "SOURCE"),
                [(prompt.name, f"{prompt.duration:.1f}", _shortened(prompt.source)) for prompt in prompts])


def _shortened(text: str) -> str:
    return text if len(text) <= SOURCE_COLUMN_WIDTH else text[:SOURCE_COLUMN_WIDTH - 3] + "..."



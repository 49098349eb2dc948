"""The ``tunewise`` command.

    tunewise serve [--host 127.0.0.1] [--port 7860] [--workspace DIR]
    tunewise advise --profile profile.json --json
    tunewise advise                       # the interview, in the terminal
    tunewise projects list|create|rename|delete ...

Only the standard library is imported at start-up: gradio (and, in later commands,
torch) load inside the subcommand that needs them, so ``--help`` and ``advise`` are fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from assistant.workspace import DEFAULT_PROJECT, WORKSPACE_ENV, WorkspaceError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunewise",
        description="Should you fine-tune, retrieve, or just prompt? Plan it, then prove it.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", metavar="DIR",
                        help=f"workspace folder (default ${WORKSPACE_ENV} or ./tunewise-data)")
    common.add_argument("--project", default=DEFAULT_PROJECT, help="project name (default: default)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="start the web app")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7860, help="port (default 7860)")

    advise = commands.add_parser("advise", parents=[common],
                                 help="plan from a profile file, or interview in the terminal")
    advise.add_argument("--profile", metavar="FILE", help="JSON file with the profile slots")
    advise.add_argument("--json", action="store_true", help="print the plan as JSON")

    projects = commands.add_parser("projects", parents=[common], help="list and manage projects")
    projects.add_argument("action", choices=("list", "create", "rename", "delete"))
    projects.add_argument("names", nargs="*", help="NAME for create/delete; OLD NEW for rename")
    return parser


def _print_plan(plan: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(plan, indent=2))
    else:
        from assistant.plan_report import plan_markdown

        print(plan_markdown(plan))


def run_advise(args: argparse.Namespace) -> int:
    from assistant.profile import ProfileError, TaskProfile
    from assistant.rules import decide

    if args.profile:
        try:
            data = json.loads(Path(args.profile).read_text(encoding="utf-8"))
            profile = TaskProfile.from_dict(data)
        except OSError as error:
            return _fail(f"cannot read {args.profile}: {error.strerror}")
        except json.JSONDecodeError as error:
            return _fail(f"{args.profile} is not valid JSON (line {error.lineno}: {error.msg})")
        except ProfileError as error:
            return _fail(f"{args.profile}: {error}")
        _print_plan(decide(profile).to_dict(), args.json)
        return 0
    return run_terminal_interview(args)


def run_terminal_interview(args: argparse.Namespace) -> int:
    from assistant import interview

    state = interview.start()
    print(state.transcript[0]["content"])
    while not state.done:
        question = state.current_question
        if question.quick_replies:
            print("  (" + " / ".join(r.label for r in question.quick_replies) + ")")
        try:
            answer = input("> ")
        except EOFError:
            return _fail("the interview ended before every question was answered")
        turn = interview.respond(state, answer)
        state = turn.state
        if not state.done:
            print(turn.reply)
    _print_plan(state.plan().to_dict(), args.json)
    return 0


def run_projects(args: argparse.Namespace) -> int:
    from assistant.workspace import Workspace

    workspace = Workspace(args.workspace)
    expected = {"list": 0, "create": 1, "delete": 1, "rename": 2}[args.action]
    if len(args.names) != expected:
        return _fail(f"projects {args.action} takes {expected} name(s)")
    if args.action == "list":
        for name in workspace.list_projects():
            print(name)
    elif args.action == "create":
        workspace.create(args.names[0])
    elif args.action == "rename":
        workspace.rename(*args.names)
    else:
        workspace.delete(args.names[0])
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from ui.app import serve

    serve(host=args.host, port=args.port, workspace=args.workspace, project=args.project)
    return 0


def _fail(message: str) -> int:
    print(f"tunewise: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    handlers = {"serve": run_serve, "advise": run_advise, "projects": run_projects}
    try:
        return handlers[args.command](args)
    except WorkspaceError as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

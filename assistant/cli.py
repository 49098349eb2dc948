"""The ``tunewise`` command.

    tunewise serve [--host 127.0.0.1] [--port 7860] [--workspace DIR]
    tunewise advise --profile profile.json --json
    tunewise advise                       # the interview, in the terminal
    tunewise projects list|create|rename|delete ...
    tunewise ingest PATH... [--project P]
    tunewise search "QUESTION" --k 5 --json
    tunewise eval-retrieval QUESTIONS_FILE [--k 10]
    tunewise validate TRAIN [--eval EVAL] --json

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

    knowledge = argparse.ArgumentParser(add_help=False, parents=[common])
    knowledge.add_argument("--chroma-url", metavar="URL",
                           help="a Chroma server (chroma run) instead of the embedded index")
    knowledge.add_argument("--embedding-model", metavar="ID_OR_PATH",
                           help="sentence-transformers model (default: bundled all-MiniLM-L6-v2)")

    serve = commands.add_parser("serve", parents=[knowledge], help="start the web app")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    serve.add_argument("--model", metavar="ID_OR_PATH", help="chat model for answers (hub id or local folder; "
                                                              "default Qwen/Qwen2.5-0.5B-Instruct)")
    serve.add_argument("--trust-remote-code", action="store_true",
                       help="allow code shipped with the model to run (off by default)")

    advise = commands.add_parser("advise", parents=[common],
                                 help="plan from a profile file, or interview in the terminal")
    advise.add_argument("--profile", metavar="FILE", help="JSON file with the profile slots")
    advise.add_argument("--json", action="store_true", help="print the plan as JSON")

    ingest = commands.add_parser("ingest", parents=[knowledge],
                                 help="add documents (files, folders, .zip) to the project's index")
    ingest.add_argument("paths", nargs="+", metavar="PATH")

    search = commands.add_parser("search", parents=[knowledge], help="search the project's documents")
    search.add_argument("query")
    search.add_argument("--k", type=int, default=5, help="number of hits (default 5)")
    search.add_argument("--mode", choices=("dense", "bm25", "hybrid"), help="default: bm25 (measured best)")
    search.add_argument("--source", action="append", help="only this file name (repeatable)")
    search.add_argument("--json", action="store_true", help="print hits as JSON")

    evaluate = commands.add_parser("eval-retrieval", parents=[knowledge],
                                   help="recall@k and MRR of the index on questions with gold answers")
    evaluate.add_argument("questions", metavar="QUESTIONS_FILE",
                          help="CSV (question, references, corpus_id) or JSONL (question, source, spans)")
    evaluate.add_argument("--k", type=int, default=10, help="deepest cut-off (default 10)")
    evaluate.add_argument("--mode", choices=("dense", "bm25", "hybrid"), help="default: bm25 (measured best)")
    evaluate.add_argument("--json", action="store_true", help="print scores as JSON")

    validate = commands.add_parser("validate", help="check an example file before training")
    validate.add_argument("train", metavar="TRAIN")
    validate.add_argument("--eval", metavar="EVAL", help="evaluation file, checked for leakage")
    validate.add_argument("--format", choices=("openai", "alpaca", "sharegpt", "prompt_completion"),
                          help="override the detected format")
    validate.add_argument("--prompt-column", help="column holding the prompt (CSV, prompt/completion)")
    validate.add_argument("--completion-column", help="column holding the completion")
    validate.add_argument("--tokenizer", metavar="ID_OR_PATH",
                          help="count tokens with this model's tokenizer and chat template (default: estimate)")
    validate.add_argument("--max-length", type=int, default=1024, help="training max length (default 1024)")
    validate.add_argument("--json", action="store_true", help="print the report as JSON")

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


def _knowledge_base(args: argparse.Namespace):
    from assistant.knowledge import KnowledgeBase, KnowledgeSettings
    from assistant.workspace import Workspace

    settings = KnowledgeSettings(chroma_url=args.chroma_url, embedding_model=args.embedding_model)
    return KnowledgeBase(Workspace(args.workspace), args.project, settings)


def run_ingest(args: argparse.Namespace) -> int:
    kb = _knowledge_base(args)

    def progress(fraction: float, label: str) -> None:
        if label != "done":
            print(f"[{fraction:4.0%}] {label}", file=sys.stderr)

    results = kb.ingest(args.paths, progress=progress)
    for result in results:
        if result.ok:
            print(f"{result.status:9} {result.source} ({result.chunks} chunks)")
        else:
            print(f"failed    {result.source}: {result.error}" + (f" ({result.hint})" if result.hint else ""))
    documents = kb.documents()
    print(f"index: {len(documents)} documents, {sum(d.chunks for d in documents)} chunks")
    return 0 if all(r.ok for r in results) else 1


def run_search(args: argparse.Namespace) -> int:
    hits = _knowledge_base(args).search(args.query, args.k, args.mode, args.source)
    if args.json:
        print(json.dumps([{"source": h.source, "text": h.text, "score": h.score, "page": h.page,
                           "start": h.start, "end": h.end, "section": h.section, "title": h.title,
                           "doc_id": h.doc_id} for h in hits], indent=2))
    else:
        for rank, hit in enumerate(hits, 1):
            where = f"{hit.source}" + (f" p.{hit.page}" if hit.page else "") + (
                f" § {hit.section}" if hit.section else "")
            print(f"{rank}. [{hit.score:.3f}] {where} [{hit.start}:{hit.end}]\n   "
                  f"{' '.join(hit.text.split())[:200]}")
    return 0


def run_eval_retrieval(args: argparse.Namespace) -> int:
    from retrieval.evaluate import RetrievedChunk, read_questions, score_retrieval

    try:
        golds = read_questions(args.questions)
    except (OSError, ValueError) as error:
        return _fail(f"{args.questions}: {error}")
    kb = _knowledge_base(args)
    results = [[RetrievedChunk(h.source, h.start, h.end)
                for h in kb.search(g.question, args.k, args.mode)] for g in golds]
    ks = sorted({k for k in (1, 5, 10) if k <= args.k} | {args.k})
    scores = score_retrieval(results, golds, ks).to_dict()
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        print("  ".join(f"{key} {value}" for key, value in scores.items()))
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from trainers.formats import ColumnMapping, parse_examples
    from trainers.validation import approximate_tokens, build_report

    mapping = ColumnMapping(prompt=args.prompt_column, completion=args.completion_column)

    def parse(path: str):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read {path}: {error}") from error
        return parse_examples(Path(path).name, text, args.format, mapping)

    try:
        train = parse(args.train)
        evaluation = parse(args.eval) if args.eval else None
    except ValueError as error:
        return _fail(str(error))
    count = approximate_tokens
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)

        def count(example) -> int:
            return len(tokenizer.apply_chat_template(list(example.messages), tokenize=True,
                                                     return_dict=True)["input_ids"])

    report = build_report(train, evaluation, count, args.max_length).to_dict()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        t = report["tokens"]
        print(f"format {report['format']}: {report['valid']} of {report['records']} records valid")
        for error in report["errors"][:50]:
            where = f"{error.get('file', 'train')} line {error['line']}"
            print(f"  {where}: {error['kind']}: {error['message']}" + (f" ({error['hint']})" if error["hint"] else ""))
        print(f"duplicates: {len(report['duplicates'])} groups; conflicts: {len(report['conflicts'])}; "
              f"leakage: {len(report['leakage'])} pairs")
        print(f"tokens: min {t['min']}, median {t['median']}, p95 {t['p95']}, max {t['max']}; "
              f"{t['over_max_length']} over {t['max_length']}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from assistant.knowledge import KnowledgeSettings
    from assistant.runtime import DEFAULT_MODEL, ModelSettings
    from ui.app import serve

    serve(host=args.host, port=args.port, workspace=args.workspace, project=args.project,
          knowledge=KnowledgeSettings(chroma_url=args.chroma_url, embedding_model=args.embedding_model),
          model=ModelSettings(model=args.model or DEFAULT_MODEL, trust_remote_code=args.trust_remote_code))
    return 0


def _fail(message: str) -> int:
    print(f"tunewise: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    handlers = {"serve": run_serve, "advise": run_advise, "projects": run_projects,
                "ingest": run_ingest, "search": run_search, "eval-retrieval": run_eval_retrieval,
                "validate": run_validate}
    try:
        return handlers[args.command](args)
    except WorkspaceError as error:
        return _fail(str(error))
    except Exception as error:  # errors meant for people from the services below
        if type(error).__name__ in ("IndexUnavailableError", "EmbeddingModelError", "ModelConfigError"):
            return _fail(str(error))
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

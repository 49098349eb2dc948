"""The ``tunewise`` command.

    tunewise serve [--host 127.0.0.1] [--port 7860] [--workspace DIR] [--judge-url URL --judge-name MODEL]
                   [--model-dir DIR] [--allow-private-judge] [--allow-downloads]
    tunewise advise --profile profile.json --json [--project P]   # --project: save the plan there
    tunewise advise                       # the interview, in the terminal
    tunewise projects list|create|rename|delete ...
    tunewise ingest PATH... [--project P]
    tunewise search "QUESTION" --k 5 --json
    tunewise eval-retrieval [QUESTIONS_FILE] [--k 10]   # default: the project's saved questions
    tunewise questions make [--count 20] [--model ID|PATH] [--out FILE];  tunewise questions save FILE
    tunewise validate TRAIN [--eval EVAL] --json
    tunewise train --data FILE [--eval FILE] [--model ID|PATH] [--method qlora|lora] [--project P]
    tunewise train --data FILE --dry-run --json   # the settings, their reasons and the estimate; starts nothing
    tunewise jobs [list|cancel ID|resume ID|wait ID];  tunewise adapters [list|rename|delete|export]
    tunewise eval --data FILE [--adapters all] [--retrieval] [--limit N]
    tunewise compare-methods --data FILE [--eval FILE] --methods lora,dora,ia3,prompt_tuning [--seeds N] [--halving]
                             [--learning-rates a,b] [--max-steps N] [--json]   # one job per run, then one table
    tunewise gap-check --data FILE [--limit 20]
    tunewise chat "PROMPT" [--model ID|PATH] [--adapter NAME] [--retrieval] [--json]

Only the standard library is imported at start-up: gradio (and, in later commands,
torch) load inside the subcommand that needs them, so ``--help`` and ``advise`` are fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from assistant.services.workspace import DEFAULT_PROJECT, WORKSPACE_ENV
from retrieval.documents import location
from retrieval.search import SEARCH_MODES
from trainers.config import DEFAULT_MODEL, add_flags, overrides_from_flags
from trainers.formats import FORMATS
from tunewise.errors import InputError

MODEL_CACHE_ENV = "TUNEWISE_MODEL_CACHE"  # assistant.runtime.models.MODEL_CACHE_ENV, without importing it at start-up
BUNDLED = DEFAULT_MODEL  # assistant.runtime.models.BUNDLED_MODEL, the same name, without importing it at start-up
MODEL_HELP = f"hub id or local folder (default: the bundled {BUNDLED}, offline)"


def common_options(project_default: str | None, project_help: str) -> argparse.ArgumentParser:
    """The options every project command takes (a parent parser; each command's own copy, since
    argparse shares the parents' option objects and so their defaults)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", metavar="DIR",
                        help=f"workspace folder (default ${WORKSPACE_ENV} or ./tunewise-data)")
    common.add_argument("--project", default=project_default, help=project_help)
    common.add_argument("--user", metavar="NAME",
                        help="a signed-in user's projects, as `serve --auth` keeps them (default: the workspace's own)")
    common.add_argument("--model-cache", metavar="DIR",
                        help="where the bundled model is converted to on first use "
                             f"(default ${MODEL_CACHE_ENV} or ~/.cache/tunewise/models)")
    return common


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunewise",
        description="Should you fine-tune, retrieve, or just prompt? Plan it, then prove it.")
    common = common_options(DEFAULT_PROJECT, "project name (default: default)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    knowledge = argparse.ArgumentParser(add_help=False, parents=[common])
    knowledge.add_argument("--chroma-url", metavar="URL",
                           help="a Chroma server (chroma run) instead of the embedded index")
    knowledge.add_argument("--embedding-model", metavar="ID_OR_PATH",
                           help="sentence-transformers model (default: bundled all-MiniLM-L6-v2)")
    knowledge.add_argument("--rerank", metavar="sentences|ID_OR_PATH",
                           help="re-score the top 20 passages: 'sentences' (the embedding model, no new weights) "
                                "or a sentence-transformers CrossEncoder (default: no rerank)")

    serve = commands.add_parser("serve", parents=[knowledge], help="start the web app")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    serve.add_argument("--model", metavar="ID_OR_PATH", help=f"chat model for answers: {MODEL_HELP}")
    serve.add_argument("--trust-remote-code", action="store_true",
                       help="allow code shipped with the model to run (off by default)")
    serve.add_argument("--auth", metavar="USER:PASSWORD|FILE",
                       help="require a login (needed for a non-loopback --host)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback --host without --auth (trusted networks only)")
    serve.add_argument("--api-key", metavar="KEY", default=os.environ.get("TUNEWISE_API_KEY"),
                       help="require 'Authorization: Bearer KEY' on the OpenAI-compatible API under /v1 "
                            "(default $TUNEWISE_API_KEY; with --auth, 'Bearer USER:PASSWORD' works too)")
    offer = serve.add_argument_group("what web users may reach (they choose among these; the CLI stays free)")
    offer.add_argument("--judge-url", metavar="URL", action="append",
                       help="an OpenAI-compatible API the Compare tab offers as a judge (its base URL, e.g. "
                            "http://127.0.0.1:8000/v1); repeatable (default $TUNEWISE_JUDGE_URL)")
    offer.add_argument("--judge-name", metavar="MODEL", action="append",
                       help="the model to ask at each --judge-url, in the same order (default $TUNEWISE_JUDGE_NAME)")
    offer.add_argument("--judge-key", metavar="KEY", action="append",
                       help="API key for each --judge-url, in the same order ('' for none; default "
                            "$TUNEWISE_JUDGE_KEY with one --judge-url)")
    offer.add_argument("--allow-private-judge", action="store_true",
                       help="let judge URLs resolve to private or link-local addresses (one that names a loopback "
                            "address, 127.0.0.1 or localhost, is allowed without this)")
    offer.add_argument("--model-dir", metavar="DIR", action="append", default=[],
                       help="a folder of model folders web users may pick and train on, besides the models "
                            "already on this machine (repeatable)")
    offer.add_argument("--allow-downloads", action="store_true",
                       help="leave the Hugging Face hub online (serve sets HF_HUB_OFFLINE=1 otherwise, so that "
                            "nothing a web user does downloads weights); needed for a --model not yet downloaded")

    saving = common_options(None, "save the profile and plan in this project, as the app's interview does "
                                  "(default: print the plan only)")
    advise = commands.add_parser("advise", parents=[saving],
                                 help="plan from a profile file, or interview in the terminal")
    advise.add_argument("--profile", metavar="FILE", help="JSON file with the profile slots")
    advise.add_argument("--json", action="store_true", help="print the plan as JSON")

    ingest = commands.add_parser("ingest", parents=[knowledge],
                                 help="add documents (files, folders, .zip) to the project's index")
    ingest.add_argument("paths", nargs="+", metavar="PATH")

    search = commands.add_parser("search", parents=[knowledge], help="search the project's documents")
    search.add_argument("query")
    search.add_argument("--k", type=int, default=5, help="number of hits (default 5)")
    search.add_argument("--mode", choices=SEARCH_MODES, help="default: hybrid (best MRR over both benchmarks)")
    search.add_argument("--source", action="append", help="only this file name (repeatable)")
    search.add_argument("--json", action="store_true", help="print hits as JSON")

    evaluate = commands.add_parser("eval-retrieval", parents=[knowledge],
                                   help="recall@k, MRR, span recall/precision/IoU and answer recall on "
                                        "questions with gold answers")
    evaluate.add_argument("questions", metavar="QUESTIONS_FILE", nargs="?",
                          help="CSV (question, references, corpus_id) or JSONL (question, source, spans or quote, "
                               "answer); "
                               "default: the project's saved questions (tunewise questions save)")
    evaluate.add_argument("--k", type=int, default=10, help="deepest cut-off (default 10)")
    evaluate.add_argument("--mode", choices=SEARCH_MODES, help="default: hybrid (best MRR over both benchmarks)")
    evaluate.add_argument("--json", action="store_true", help="print scores as JSON")

    questions = commands.add_parser("questions", parents=[knowledge],
                                    help="draft evaluation questions from the project's documents, or save "
                                         "reviewed ones as the project's questions")
    questions.add_argument("action", choices=("make", "save"))
    questions.add_argument("file", nargs="?", metavar="FILE", help="save: the reviewed questions (JSONL)")
    questions.add_argument("--count", type=int, default=20, help="make: passages to ask about (default 20)")
    questions.add_argument("--model", metavar="ID_OR_PATH", help=f"make: the model that writes them: {MODEL_HELP}")
    questions.add_argument("--out", metavar="FILE",
                           help="make: where the drafts go (default: eval-questions-draft.jsonl in the project folder)")
    questions.add_argument("--device", choices=("cpu", "cuda"))

    validate = commands.add_parser("validate", help="check an example file before training")
    validate.add_argument("train", metavar="TRAIN")
    validate.add_argument("--eval", metavar="EVAL", help="evaluation file, checked for leakage")
    validate.add_argument("--format", choices=FORMATS,
                          help="override the detected format")
    validate.add_argument("--prompt-column", help="column holding the prompt (CSV, prompt/completion)")
    validate.add_argument("--completion-column", help="column holding the completion")
    validate.add_argument("--tokenizer", metavar="ID_OR_PATH",
                          help="count tokens with this model's tokenizer and chat template (default: estimate)")
    validate.add_argument("--max-length", type=int, default=1024, help="training max length (default 1024)")
    validate.add_argument("--preview", type=int, default=0, metavar="N",
                          help="show the first N examples as training sees them: the templated text, with the "
                               "tokens that count in the loss in [[ ]] (uses --tokenizer, default the bundled model)")
    validate.add_argument("--json", action="store_true", help="print the report as JSON")

    train = commands.add_parser("train", parents=[common], help="fine-tune an adapter on example files")
    train.add_argument("--data", required=True, metavar="FILE", help="training examples (any supported format)")
    train.add_argument("--eval", metavar="FILE", help="evaluation examples (default: a seeded split)")
    train.add_argument("--name", help="adapter name (default: adapter-<time>)")
    train.add_argument("--format", choices=FORMATS)
    train.add_argument("--general", metavar="FILE", help="general instruction data to mix in (about 10%%)")
    settings = train.add_argument_group("training settings (each defaults to the plan's; see trainers/config.py)")
    add_flags(settings)
    train.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when present")
    train.add_argument("--detach", action="store_true", help="start the job and return without following it")
    train.add_argument("--dry-run", action="store_true",
                       help="check the data and print the settings, their reasons and the estimate; start nothing")
    train.add_argument("--json", action="store_true", help="with --dry-run: print config, reasons and estimate as JSON")

    jobs = commands.add_parser("jobs", parents=[common],
                               help="list jobs (reads only), cancel or resume one, or wait for one to end (starting it "
                                    "when its turn comes) and register its adapter")
    jobs.add_argument("action", choices=("list", "cancel", "resume", "wait"), nargs="?", default="list")
    jobs.add_argument("job_id", nargs="?")

    adapters = commands.add_parser("adapters", parents=[common], help="list, rename, delete or export adapters")
    adapters.add_argument("action", choices=("list", "rename", "delete", "export"), nargs="?", default="list")
    adapters.add_argument("names", nargs="*", help="NAME, OLD NEW, or NAME OUT_DIR for export (merged model)")

    judging = argparse.ArgumentParser(add_help=False)
    judging.add_argument("--judge-model", metavar="ID_OR_PATH", help=f"an LLM judge Tunewise loads: {MODEL_HELP}")
    judging.add_argument("--judge-url", metavar="URL", help="or an OpenAI-compatible API (its base URL, e.g. .../v1)")
    judging.add_argument("--judge-name", metavar="MODEL", help="the model name to ask at --judge-url")
    judging.add_argument("--judge-key", metavar="KEY", default=os.environ.get("TUNEWISE_JUDGE_KEY"),
                         help="API key for --judge-url (default $TUNEWISE_JUDGE_KEY)")

    evaluate_variants = commands.add_parser("eval", parents=[knowledge, judging],
                                            help="run held-out examples through the base and the adapters")
    evaluate_variants.add_argument("--data", required=True, metavar="FILE", help="held-out examples (any format)")
    evaluate_variants.add_argument("--model", metavar="ID_OR_PATH",
                                   help=f"base model: {MODEL_HELP}; default: the adapters' base")
    evaluate_variants.add_argument("--adapters", default="all", help="comma-separated adapter names, or all / none")
    evaluate_variants.add_argument("--retrieval", action="store_true", help="also each variant + retrieval")
    evaluate_variants.add_argument("--few-shot", type=int, metavar="K", help=FEW_SHOT_HELP + "; 0 leaves it out")
    evaluate_variants.add_argument("--examples", metavar="FILE", help=EXAMPLES_HELP)
    evaluate_variants.add_argument("--general", action="store_true",
                                   help="also score each model on general text and questions (the forgetting probe: "
                                        "what training cost it); adds general_loss, general_accuracy, general_n")
    evaluate_variants.add_argument("--limit", type=int, help="only the first N examples")
    evaluate_variants.add_argument("--max-new-tokens", type=int,
                                   help="answer cap in tokens (default: from the references' lengths)")
    evaluate_variants.add_argument("--device", choices=("cpu", "cuda"))
    evaluate_variants.add_argument("--json", action="store_true", help="print the report as JSON")

    compare = commands.add_parser("compare-methods", parents=[common],
                                  help="train one adapter per (method, seed, learning rate) on the same data, "
                                       "evaluate each on the held-out split and name the best and the cheapest "
                                       "that matches it")
    compare.add_argument("--data", required=True, metavar="FILE", help="training examples (any supported format)")
    compare.add_argument("--eval", metavar="FILE", help="held-out examples (default: a seeded split of --data)")
    compare.add_argument("--methods", required=True, metavar="M,M",
                         help="comma-separated methods (lora, dora, rslora, ia3, adalora, prompt_tuning, "
                              "prefix_tuning, p_tuning, adaption_prompt, full, qlora)")
    compare.add_argument("--seeds", type=int, default=1, help="runs per method and rate, seeds 0..N-1 (default 1)")
    compare.add_argument("--learning-rates", metavar="A,B",
                         help="rates every method runs at (default: each method's own, docs/training.md)")
    compare.add_argument("--max-steps", type=int, help="optimiser steps per run (default: the plan's epochs)")
    compare.add_argument("--batch-size", type=int, help="examples per step (default: the plan's)")
    compare.add_argument("--max-length", type=int, help="tokens per example (default: the plan's)")
    compare.add_argument("--model", metavar="ID_OR_PATH", help=f"base model: {MODEL_HELP}")
    compare.add_argument("--prefix", help="adapter names start with it (default: compare-<date>-<time>)")
    compare.add_argument("--max-new-tokens", type=int,
                         help="answer cap in the evaluation (default: from the references' lengths)")
    compare.add_argument("--general", action="store_true",
                         help="also run the forgetting probe on the base and each adapter (minutes per model)")
    compare.add_argument("--halving", action="store_true",
                         help="successive halving: every run pauses at half its steps, and only the better half by "
                              "eval loss go on (about a quarter less training; the estimate says how much)")
    compare.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when present")
    compare.add_argument("--json", action="store_true",
                         help='print {"rows": [...], "best": ..., "cheapest_within_best": ...} as JSON')

    gap = commands.add_parser("gap-check", parents=[knowledge],
                              help="measure the base (and base + retrieval) on held-out examples before training")
    gap.add_argument("--data", required=True, metavar="FILE", help="held-out examples (any format)")
    gap.add_argument("--model", metavar="ID_OR_PATH", help=f"base model: {MODEL_HELP}")
    gap.add_argument("--limit", type=int, default=20, help="examples to sample (default 20)")
    gap.add_argument("--max-new-tokens", type=int,
                     help="answer cap in tokens (default: from the references' lengths)")
    gap.add_argument("--device", choices=("cpu", "cuda"))
    gap.add_argument("--few-shot", type=int, metavar="K", help=FEW_SHOT_HELP + "; 0 leaves it out")
    gap.add_argument("--examples", metavar="FILE", help=EXAMPLES_HELP)

    chat = commands.add_parser("chat", parents=[knowledge],
                               help="one answer from the model, as the app's chat gives it")
    chat.add_argument("prompt", metavar="PROMPT")
    chat.add_argument("--model", metavar="ID_OR_PATH", help=f"base model: {MODEL_HELP}; default: the adapter's base")
    chat.add_argument("--adapter", metavar="NAME", help="answer with this adapter of the project")
    chat.add_argument("--retrieval", action="store_true", help="answer from the project's documents, citing them")
    chat.add_argument("--few-shot", type=int, metavar="K", default=0,
                      help="show K of the project's training examples before the prompt (base + few-shot)")
    chat.add_argument("--examples", metavar="FILE", help=EXAMPLES_HELP)
    chat.add_argument("--max-new-tokens", type=int, default=256, help="answer cap in tokens (default 256)")
    chat.add_argument("--device", choices=("cpu", "cuda"))
    chat.add_argument("--json", action="store_true", help="print answer, sources and timings as JSON")

    judge = commands.add_parser("judge", parents=[common, judging],
                                help="check an LLM judge against the project's blind votes (agreement, kappa)")
    judge.add_argument("--device", choices=("cpu", "cuda"))
    judge.add_argument("--json", action="store_true", help="print the whole result, verdicts and reasons, as JSON")

    projects = commands.add_parser("projects", parents=[common], help="list and manage projects")
    projects.add_argument("action", choices=("list", "create", "rename", "delete"))
    projects.add_argument("names", nargs="*", help="NAME for create/delete; OLD NEW for rename")

    users = commands.add_parser("users", help="add a sign-in to a users file for serve --auth FILE")
    users.add_argument("action", choices=("add",))
    users.add_argument("name")
    users.add_argument("--file", default="tunewise-users.txt", help="the users file (default tunewise-users.txt)")
    users.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    return parser


def run_users(args: argparse.Namespace) -> int:
    from ui.logins import add_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            return _fail("the two passwords differ")
    add_user(args.file, args.name, password)
    print(f"{args.name} can sign in: serve with --auth {args.file} (the file holds a salted scrypt hash, "
          "not the password)")
    return 0


def _print_plan(plan: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(plan, indent=2))
    else:
        from assistant.core.plan_report import plan_markdown

        print(plan_markdown(plan))


def run_advise(args: argparse.Namespace) -> int:
    from assistant.core.profile import ProfileError, TaskProfile
    from assistant.core.rules import decide

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
        if args.project:
            from assistant.core import interview

            # The file answers every slot, as the profile card would: the app then shows the same
            # profile, an interview with nothing left to ask, and this plan.
            _save_interview(args, lambda state: interview.edit_answers(state, profile.to_dict()))
        _print_plan(decide(profile).to_dict(), args.json)
        return 0
    return run_terminal_interview(args)


def _save_interview(args: argparse.Namespace, change) -> None:
    """Save ``change(saved interview)`` in ``--project`` (created if new) as the app's interview saves
    a turn (assistant/services/advisor.py): the interview, its profile and its plan, in one update
    under the project's lock."""
    from assistant.core.interview import InterviewState

    workspace = _workspace(args)
    with workspace.locked(args.project):
        workspace.ensure(args.project)

        def save(data: dict) -> dict:
            state = change(InterviewState.from_dict(data.get("interview")))
            return data | {"interview": state.to_dict(), "profile": state.profile().to_dict(),
                           "plan": state.plan().to_dict()}

        workspace.update(args.project, save)


def run_terminal_interview(args: argparse.Namespace) -> int:
    from assistant.core import interview

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
    if args.project:
        _save_interview(args, lambda saved: state)
    _print_plan(state.plan().to_dict(), args.json)
    return 0


def _workspace(args: argparse.Namespace):
    """The workspace the command works in: the folder's own, or a signed-in user's (``--user``)."""
    from assistant.services.workspace import Workspace

    return Workspace(args.workspace).for_user(args.user)


def run_projects(args: argparse.Namespace) -> int:

    workspace = _workspace(args)
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
    from assistant.services.knowledge import KnowledgeBase, KnowledgeSettings

    settings = KnowledgeSettings(chroma_url=args.chroma_url, embedding_model=args.embedding_model,
                                 reranker=args.rerank)
    return KnowledgeBase(_workspace(args), args.project, settings, create=args.command == "ingest")


FEW_SHOT_HELP = ("also base + few-shot: the task's system prompt and K of the examples most like each question "
                 "before it (default 4 when the project has prepared training examples or --examples is given)")
EXAMPLES_HELP = "the examples few-shot shows (any format; default: the project's prepared training examples)"


def _few_shot(args: argparse.Namespace, model, default: int):
    """The few-shot pool the flags ask for (None: none asked for, or no examples to show): the
    --examples file's, else the project's prepared training examples."""
    from assistant.services.behaviour import Behaviour
    from assistant.services.project_variants import examples_pool

    shots = default if args.few_shot is None else args.few_shot
    if shots <= 0:
        return None
    if args.examples is None and args.project not in _workspace(args).list_projects():
        return None
    behaviour = None if args.examples else Behaviour(_workspace(args), args.project)
    pool = examples_pool(model, behaviour, args.examples, shots)
    if pool is None and args.few_shot:
        raise InputError(f"project {args.project!r} has no prepared training examples to show",
                         "Prepare examples in the Behaviour tab, or give a file with --examples FILE.")
    return pool


def _document_search(args: argparse.Namespace):
    """``search(question) -> hits`` over the project's documents for retrieval variants, or None
    when the project has none."""
    kb = _knowledge_base(args)
    if not kb.documents():
        return None
    return lambda question: kb.search(question, 5, with_similarity=True)


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
            where = location(hit.source, hit.page, hit.section)
            print(f"{rank}. [{hit.score:.3f}] {where} [{hit.start}:{hit.end}]\n   {' '.join(hit.text.split())[:200]}")
    return 0


def run_eval_retrieval(args: argparse.Namespace) -> int:
    from assistant.services.eval_questions import questions_path
    from retrieval.evaluate import read_questions

    path = args.questions or str(questions_path(_workspace(args), args.project))
    if not args.questions and not Path(path).is_file():
        return _fail(f"project {args.project!r} has no saved questions; give a QUESTIONS_FILE, or make them: "
                     f"tunewise questions make --project {args.project}, edit the file it writes, then "
                     "tunewise questions save FILE (or the Knowledge tab's \"Make questions from my documents\")")
    try:
        golds = read_questions(path)
    except (OSError, ValueError) as error:
        return _fail(f"{path}: {error}")
    ks = sorted({k for k in (1, 5, 10) if k <= args.k} | {args.k})
    try:
        rows = _knowledge_base(args).measure(golds, [args.mode], args.k, ks)
    except ValueError as error:  # a quoted passage that is not in the indexed documents
        return _fail(f"{path}: {error}")
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
    else:
        for row in rows:
            print("  ".join(f"{key} {value}" for key, value in row.items()))
    return 0


def run_questions(args: argparse.Namespace) -> int:
    from assistant.services import eval_questions as eq

    workspace = _workspace(args)
    if args.action == "save":
        if not args.file:
            return _fail("questions save takes the reviewed FILE (JSONL: question, source, spans)")
        saved = eq.save_questions(workspace, args.project, eq.read_candidates(Path(args.file)))
        print(f"saved as project {args.project!r}'s questions: {saved}; measure with: tunewise eval-retrieval")
        return 0
    from assistant.runtime.generation import DEFAULT_MODEL, ModelSettings, load_model

    def progress(fraction: float, label: str) -> None:
        if label != "done":
            print(f"[{fraction:4.0%}] {label}", file=sys.stderr)

    settings = ModelSettings(model=args.model or DEFAULT_MODEL, device=args.device)
    candidates = eq.draft_questions(_knowledge_base(args), lambda: load_model(settings),
                                    eq.QuestionSettings(count=args.count), progress)
    usable = [c for c in candidates if c.question]
    out = Path(args.out) if args.out else workspace.project(args.project).path / "eval-questions-draft.jsonl"
    eq.write_questions(out, usable)
    print(f"{len(usable)} of {len(candidates)} passages gave a usable question; wrote them to {out}\n"
          f"Edit or delete lines there (each names its source file, character span and passage), then measure "
          f"with: tunewise eval-retrieval {out}\nor keep them as the project's questions: "
          f"tunewise questions save {out}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from trainers.formats import ColumnMapping, parse_examples
    from trainers.validation import approximate_tokens, build_report

    mapping = ColumnMapping(prompt=args.prompt_column, completion=args.completion_column)

    def parse(path: str):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read {path}: {error}") from error
        return parse_examples(Path(path).name, text, args.format, mapping)

    try:
        train = parse(args.train)
        evaluation = parse(args.eval) if args.eval else None
    except ValueError as error:
        return _fail(str(error))
    count = approximate_tokens
    if args.tokenizer or args.preview:
        from transformers import AutoTokenizer

        from assistant.runtime.models import BUNDLED_MODEL, resolve_model

        tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.tokenizer or BUNDLED_MODEL))

        def count(example) -> int:
            return len(tokenizer.apply_chat_template(list(example.messages), tokenize=True,
                                                     return_dict=True)["input_ids"])

    report = build_report(train, evaluation, count, args.max_length).to_dict()
    if args.preview:
        from trainers.preview import NO_MARKERS_HINT, has_generation_markers, preview_examples

        shown = preview_examples(tokenizer, [list(e.messages) for e in train.examples], args.max_length,
                                 args.preview)
        report["preview"] = {"generation_markers": has_generation_markers(tokenizer),
                             "examples": [p.to_dict() for p in shown]}
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
              f"{t['over_max_length']} over {t['max_length']} ({t['answer_cut_off']} with no room for the answer)")
        for warning in report.get("warnings", []):
            print(f"warning: {warning['message']}")
        if args.preview:
            print("chat template: " + ("marks assistant turns: every assistant turn is trained"
                                       if report["preview"]["generation_markers"] else f"note: {NO_MARKERS_HINT}"))
            for example in shown:
                print(f"\nexample {example.index + 1}: {example.tokens} tokens, {example.trained_tokens} trained "
                      f"(loss on: {example.masking}); trained text in [[ ]]:")
                print(example.marked_text())
                for warning in example.warnings:
                    print(f"  warning: {warning}")
    if not report["valid"]:
        what = "is empty" if not report["records"] else "has no valid examples"
        return _fail(f"{args.train} {what}: there is nothing to train on")
    return 0


def _follow(behaviour, job_id: str) -> int:
    """Print the job's progress until it ends; Ctrl-C cancels it, keeping a checkpoint."""
    import time

    from trainers.job_files import ACTIVE, JobState, progress_line

    seen, said = 0, ""
    try:
        while True:
            records = behaviour.jobs.progress(job_id)
            for record in records[seen:]:
                print(progress_line(record), flush=True)
            seen = len(records)
            status = behaviour.jobs.status(job_id)
            if status.status not in (JobState.QUEUED, *ACTIVE):
                break
            if status.status == JobState.QUEUED:  # behind another job: say so once, and start it when its turn comes
                if status.reason != said:
                    print(status.reason, flush=True)
                    said = status.reason
                behaviour.jobs.start_next()
            time.sleep(1)
    except KeyboardInterrupt:
        behaviour.jobs.cancel(job_id)
        status = behaviour.jobs.wait(job_id, timeout=300)
        print(f"cancelled at step {status.step}; resume with: tunewise jobs resume {job_id}")
        return 130
    behaviour.advance()  # register the adapter; start the next job in line if the ended one could not
    if status.status != "completed":
        return _fail(f"job {job_id} {status.status}: {status.reason} {status.advice}".strip())
    print(f"job {job_id} completed; adapters: {', '.join(a.name for a in behaviour.adapters.list())}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    import time

    from assistant.runtime.hardware import detect_hardware
    from assistant.services.behaviour import (
        Behaviour,
        DatasetError,
        TrainingDoesNotFitError,
        check_examples,
        estimate_for_examples,
    )
    from assistant.services.training_settings import project_plan, training_settings, with_overrides

    if args.json and not args.dry_run:
        return _fail("--json goes with --dry-run (a training run prints its progress)")
    workspace = _workspace(args)
    hardware = detect_hardware()
    # A project that does not exist yet has no plan; a dry run leaves it uncreated, a run creates it.
    plan = project_plan(workspace, args.project) if workspace.exists(args.project) else None
    try:
        choice = with_overrides(training_settings(plan, hardware), overrides_from_flags(args))
    except ValueError as error:
        return _fail(f"invalid training settings: {error}")
    settings = choice.config
    say = (lambda *_: None) if args.json else print
    if not args.model and not args.dry_run:  # a dry run lists every setting with its reason below
        say(f"model: {choice.reasons['model']}")
    try:
        train_text = Path(args.data).read_text(encoding="utf-8")
        eval_text = Path(args.eval).read_text(encoding="utf-8") if args.eval else None
        general_text = Path(args.general).read_text(encoding="utf-8") if args.general else None
    except (OSError, UnicodeDecodeError) as error:
        return _fail(f"cannot read the data: {error}")
    train_name = Path(args.data).name
    try:
        checked = check_examples(train_name, train_text, Path(args.eval).name if args.eval else None, eval_text,
                                 args.format, None, general_text, settings)
    except DatasetError as error:
        for problem in (error.report or {}).get("errors", [])[:20]:
            print(f"  line {problem['line']}: {problem['kind']}: {problem['message']}", file=sys.stderr)
        return _fail(str(error))
    report = checked.report
    say(f"{report['format']}: {report['valid']} of {report['records']} records valid; "
        f"{len(checked.train)} train, {len(checked.eval)} eval"
        + (f", {checked.general_count} general" if checked.general_count else ""))
    for problem in report["errors"][:10]:
        say(f"  excluded line {problem['line']}: {problem['kind']}: {problem['message']}")
    for warning in report.get("warnings", []):
        say(f"  warning: {warning['message']}")
    if report["leakage"]:
        say(f"  warning: {len(report['leakage'])} eval prompts also appear in training (leakage)")
    estimate = estimate_for_examples(settings, report, len(checked.train), hardware)
    if args.dry_run and args.json:
        print(json.dumps(choice.to_dict() | {"estimate": estimate.to_dict()}, indent=2))
        return 0
    memory = f"{estimate.memory_gb:.1f} GB" if estimate.memory_gb is not None else "unknown"
    of_gpu = f" of {hardware.vram_gb:.0f} GB" if hardware.vram_gb else ""
    print(f"{settings.method} on {settings.model} ({hardware.device}): {estimate.steps} steps, about "
          f"{estimate.tokens:,} tokens, memory {memory}{of_gpu} (largest batch {estimate.batch_size} x "
          f"{estimate.sequence_length} tokens)")
    for note in estimate.notes:
        print(f"  note: {note}")
    if args.dry_run:
        for name, value in settings.to_dict().items():
            why = choice.reasons.get(name)
            print(f"  {name} = {value}" + (f"  ({why})" if why else ""))
        if not estimate.fits:
            print("  this does not fit in the GPU's memory; try: " + "; or ".join(estimate.alternatives))
        print("dry run: nothing was saved or started")
        return 0

    behaviour = Behaviour(workspace, args.project, create=True)
    prepared = behaviour.keep(checked, train_name, train_text)
    name = args.name or time.strftime("adapter-%Y%m%d-%H%M%S")
    try:
        job_id = behaviour.start(prepared, settings, name, args.device, estimate)
    except TrainingDoesNotFitError as error:
        for alternative in error.estimate.alternatives:
            print(f"  try: {alternative}", file=sys.stderr)
        return _fail("this training does not fit in the GPU's memory")
    print(f"job {job_id} started (adapter {name!r})")
    if args.detach:
        return 0
    code = _follow(behaviour, job_id)
    print(behaviour.job_memory(job_id).text())  # the estimate against the measured peak, so drift shows
    return code


def run_jobs(args: argparse.Namespace) -> int:
    from assistant.services.behaviour import Behaviour

    behaviour = Behaviour(_workspace(args), args.project)
    if args.action == "list":  # reads only: starting and registering are `jobs wait`'s, the tab's and train's
        for job in behaviour.list_jobs():
            print(f"{job.job_id}  {job.status:9}  step {job.step}/{job.max_steps}  {job.reason}".rstrip())
        return 0
    if not args.job_id:
        return _fail(f"jobs {args.action} needs a job id")
    try:
        behaviour.jobs.status(args.job_id)
    except (OSError, ValueError):
        return _fail(f"there is no job {args.job_id!r}")
    if args.action == "cancel":
        print(behaviour.jobs.cancel(args.job_id).status)
        return 0
    if args.action == "resume":
        behaviour.jobs.start(args.job_id, resume=True)
    return _follow(behaviour, args.job_id)


def run_adapters(args: argparse.Namespace) -> int:
    from assistant.services.behaviour import Behaviour
    from trainers.adapters import AdapterError

    behaviour = Behaviour(_workspace(args), args.project)  # an unknown project is an error, never created
    expected = {"list": 0, "delete": 1, "rename": 2, "export": 2}[args.action]
    if len(args.names) != expected:
        return _fail(f"adapters {args.action} takes {expected} argument(s)")
    if args.action == "list":
        for adapter in behaviour.list_adapters():
            loss = f"eval loss {adapter.eval_loss:.4g}" if adapter.eval_loss is not None else ""
            print(f"{adapter.name}  {adapter.method}  {adapter.base_model}  {adapter.steps} steps  {loss}".rstrip())
        return 0
    registry = behaviour.adapters
    try:
        if args.action == "rename":
            registry.rename(*args.names)
        elif args.action == "delete":
            registry.delete(args.names[0])
        else:
            from assistant.runtime.models import resolve_model

            base = registry.get(args.names[0]).base_model
            out = registry.merge_and_export(*args.names, base_model=resolve_model(base))
            print(out)
            print(f"for Ollama: ollama create {args.names[0].lower()} -f {out / 'Modelfile'}")
            for warning in json.loads((out / "tunewise-merge.json").read_text()).get("warnings", []):
                print(f"warning: {warning}")
    except AdapterError as error:
        return _fail(str(error))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from assistant.runtime.few_shot import DEFAULT_SHOTS
    from assistant.runtime.generation import DEFAULT_MODEL, ModelSettings, load_model
    from assistant.runtime.models import same_model
    from assistant.runtime.variants import AdapterBaseMismatchError, Aids, VariantModel
    from assistant.services.behaviour import Behaviour
    from assistant.services.evaluation import cases_from_file, evaluate_project, generation_for
    from assistant.services.project_variants import project_variants_for

    workspace = _workspace(args)
    behaviour = Behaviour(workspace, args.project)
    try:
        cases = cases_from_file(args.data, args.limit)
    except (OSError, ValueError) as error:
        return _fail(str(error))
    registry = behaviour.adapters
    chosen = [a for a in registry.list() if args.adapters == "all" or a.name in args.adapters.split(",")]
    if args.adapters not in ("all", "none"):
        missing = set(args.adapters.split(",")) - {a.name for a in chosen}
        if missing:
            return _fail(f"no adapters named {sorted(missing)} in project {args.project!r}")
    if args.adapters == "none":
        chosen = []
    base = args.model or (chosen[0].base_model if chosen else DEFAULT_MODEL)
    others = [a for a in chosen if not same_model(a.base_model, base)]
    if others and args.adapters != "all":
        return _fail("; ".join(str(AdapterBaseMismatchError(a.name, a.base_model, base)) for a in others))
    for adapter in others:
        print(f"skipped adapter {adapter.name!r}: trained on {adapter.base_model!r}, not on {base!r}", file=sys.stderr)
    chosen = [a for a in chosen if a not in others]
    model = VariantModel(load_model(ModelSettings(model=base, device=args.device)))
    for adapter in chosen:
        model.add_adapter(adapter.name, adapter.path, adapter.base_model)
    search = _document_search(args) if args.retrieval else None
    if args.retrieval and search is None:
        return _fail(f"project {args.project!r} has no documents for the retrieval variants")
    examples = _few_shot(args, model, DEFAULT_SHOTS)
    variants = project_variants_for(model, chosen, args.retrieval, examples is not None)

    def progress(fraction: float, label: str) -> None:
        print(f"[{fraction:4.0%}] {label}", file=sys.stderr, flush=True)

    generation = generation_for(cases, model.loaded.tokenizer, args.max_new_tokens)
    judge = _judge(args)
    run = evaluate_project(workspace, args.project, model, variants, cases, Path(args.data).name, generation,
                           Aids(search, examples), progress, general=args.general)
    if judge is not None:
        from assistant.services.evaluation import save_report
        from assistant.services.judge import judge_evaluation

        judge_evaluation(judge, run.report, cases, run.folder, progress)
        save_report(run.report, run.folder.parent)  # the report again, now with judge_score
    if args.json:
        print(json.dumps(run.report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(run.report.markdown())
        for line in run.plan_held:
            print(line)
        if judge is not None:
            for result in run.report.results:
                print(f"judge ({judge.name}) mean grade of {result.variant}: {result.metrics.get('judge_score')} "
                      "of 5")
        print(f"saved: {run.folder / 'report.json'} and {run.folder / 'report.md'}"
              + (f"; the judge's grades and reasons: {run.folder / 'judge.json'}" if judge is not None else ""))
    return 0


def run_compare_methods(args: argparse.Namespace) -> int:
    from assistant.services.behaviour import DatasetError
    from assistant.services.method_sweep import (
        SweepConfig,
        cancel_runs,
        hardware_for,
        plan_sweep,
        prepare_files,
        run_sweep,
    )
    from assistant.services.training_settings import project_plan, training_settings, with_overrides

    try:
        rates = tuple(float(r) for r in (args.learning_rates or "").split(",") if r.strip())
    except ValueError:
        raise InputError(f"--learning-rates takes numbers separated by commas, not {args.learning_rates!r}",
                         "e.g. --learning-rates 1e-4,1e-3") from None
    sweep = SweepConfig(tuple(m.strip() for m in args.methods.split(",") if m.strip()), args.seeds, rates,
                        args.prefix or "", args.device, args.max_new_tokens, args.general, args.halving)
    workspace = _workspace(args)
    hardware = hardware_for(args.device)
    plan = project_plan(workspace, args.project) if workspace.exists(args.project) else None
    choice = with_overrides(training_settings(plan, hardware), {
        "model": args.model, "max_steps": args.max_steps, "batch_size": args.batch_size,
        "max_length": args.max_length})
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else print
    try:
        behaviour, prepared = prepare_files(workspace, args.project, args.data, args.eval, choice.config)
    except DatasetError as error:
        for problem in (error.report or {}).get("errors", [])[:20]:
            print(f"  line {problem['line']}: {problem['kind']}: {problem['message']}", file=sys.stderr)
        return _fail(str(error))
    sweep_plan = plan_sweep(behaviour, prepared, choice.config, sweep, hardware)
    say(f"estimate: {sweep_plan.text()}")
    for run in sweep_plan.runs:
        say(f"  {run.adapter}: {run.method}, seed {run.seed}, lr {run.learning_rate:g}, {run.estimate.steps} steps")

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    job_ids: list[str] = []
    try:
        result = run_sweep(behaviour, sweep_plan, sweep, progress, job_ids)
    except KeyboardInterrupt:
        for job_id in cancel_runs(behaviour, job_ids):
            print(f"cancelled job {job_id}; resume it with: tunewise jobs resume {job_id}", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(result.table())
        print(f"saved: {result.eval_folder / 'compare-methods.json'}")
    return 0


def run_gap_check(args: argparse.Namespace) -> int:
    from assistant.runtime.few_shot import DEFAULT_SHOTS
    from assistant.runtime.generation import DEFAULT_MODEL, ModelSettings, load_model
    from assistant.runtime.variants import Aids, VariantModel
    from assistant.services.advisor import Advisor
    from assistant.services.evaluation import cases_from_file, gap_check, generation_for

    try:
        cases = cases_from_file(args.data, args.limit)
    except (OSError, ValueError) as error:
        return _fail(str(error))
    search = _document_search(args)
    model = VariantModel(load_model(ModelSettings(model=args.model or DEFAULT_MODEL, device=args.device)))
    examples = _few_shot(args, model, DEFAULT_SHOTS)
    generation = generation_for(cases, model.loaded.tokenizer, args.max_new_tokens)
    finding, decision = gap_check(Advisor(_workspace(args)), args.project, model, cases,
                                  Path(args.data).name, Aids(search, examples), generation)
    print(f"gap check on {len(cases)} examples: {finding.text}")
    if decision:
        print(f"the plan now uses the measured gap '{finding.gap}': {decision}")
    return 0


def run_chat(args: argparse.Namespace) -> int:
    import time

    from assistant.runtime.generation import DEFAULT_MODEL, GenerationSettings, ModelSettings, load_model
    from assistant.runtime.variants import Aids, Variant, VariantModel
    from assistant.services.behaviour import Behaviour
    from assistant.services.project_variants import training_system_prompt
    from trainers.adapters import AdapterError

    adapter = None
    if args.adapter:
        try:
            adapter = Behaviour(_workspace(args), args.project).adapters.get(args.adapter)
        except AdapterError as error:
            return _fail(str(error))
    search = _document_search(args) if args.retrieval else None
    if args.retrieval and search is None:
        return _fail(f"project {args.project!r} has no documents; add some with: tunewise ingest PATH")
    started = time.perf_counter()
    base = args.model or (adapter.base_model if adapter else DEFAULT_MODEL)
    model = VariantModel(load_model(ModelSettings(model=base, device=args.device)))
    if adapter is not None:
        model.add_adapter(adapter.name, adapter.path, adapter.base_model)
    load_s = time.perf_counter() - started
    examples = _few_shot(args, model, 0)
    modifiers = (("few-shot",) if examples is not None else ()) + (("retrieval",) if args.retrieval else ())
    variant = Variant(adapter.name if adapter else None, modifiers,
                      system_prompt=training_system_prompt(adapter.path) if adapter else None)
    messages = [{"role": "user", "content": args.prompt}]
    final = None
    shown = ""
    for final in model.stream(variant, messages, GenerationSettings(max_new_tokens=args.max_new_tokens),
                              Aids(search, examples)):
        if not args.json and not final.done:
            print(final.text[len(shown):], end="", flush=True)
            shown = final.text
    if args.json:
        print(json.dumps({"variant": final.variant, "model": base, "answer": final.text,
                          "few_shot_examples": list(final.shots),
                          "sources": [{"number": s.number, "source": s.source, "page": s.page, "section": s.section,
                                       "snippet": s.snippet, "start": s.start, "end": s.end} for s in final.sources],
                          "timings": {"load_s": round(load_s, 3), "first_token_s": _round(final.first_token_s),
                                      "tokens_per_s": _round(final.tokens_per_s)}}, indent=2, ensure_ascii=False))
        return 0
    print(final.text[len(shown):])
    for source in final.sources:
        print(f"[{source.number}] {location(source.source, source.page, source.section)}: {source.snippet[:120]}")
    return 0


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _judge(args: argparse.Namespace, default_model: str | None = None):
    """The judge the flags name: an OpenAI-compatible URL, a model to load, or ``default_model``."""
    from assistant.services.judge import HttpJudge, JudgeError, ModelJudge

    if args.judge_url:
        if not args.judge_name:
            raise JudgeError("--judge-url needs --judge-name, the model to ask there")
        # The CLI's user is the operator: any address, their own machine's included; the URL's shape
        # is still checked (HttpJudge refuses a query, a fragment, a user name).
        return HttpJudge(args.judge_url, args.judge_name, args.judge_key, allow_private=True)
    if not (args.judge_model or default_model):
        return None
    from assistant.runtime.generation import ModelSettings, load_model

    return ModelJudge(load_model(ModelSettings(model=args.judge_model or default_model, device=args.device)))


def run_judge(args: argparse.Namespace) -> int:
    from assistant.runtime.generation import DEFAULT_MODEL
    from assistant.services.judge import check_project_judge

    result = check_project_judge(_workspace(args), args.project, _judge(args, DEFAULT_MODEL))
    print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if args.json else result.summary())
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from assistant.core.errors import TunewiseError
    from assistant.runtime.generation import DEFAULT_MODEL, ModelSettings
    from assistant.services.knowledge import KnowledgeSettings
    from ui.exposure import ExposureError, bound_host, check_exposure, parse_auth

    if args.user:
        return _fail("serve takes --auth; each signed-in user then works in their own projects")
    try:
        auth = parse_auth(args.auth)
        host = bound_host(args.host)
        check_exposure(host, auth, args.insecure)
    except (ExposureError, OSError) as error:
        return _fail(str(error))
    try:
        policy = operator_policy(args)
    except TunewiseError as error:  # a judge URL of the wrong shape, flags that do not pair up
        return _fail(str(error))
    if not args.allow_downloads:
        # Web users pick among models already here; offline, a name that slips through cannot download.
        # Set before ui.app imports gradio, and with it huggingface_hub, which reads it once on import.
        os.environ["HF_HUB_OFFLINE"] = "1"
    from ui.app import serve
    from ui.logins import Logins

    logins = Logins.from_pairs(auth) if auth else None
    if logins and logins.plain_users():
        print(f"warning: plain-text passwords for {', '.join(logins.plain_users())}; store hashes instead with "
              "'tunewise users add NAME --file FILE' and serve with --auth FILE", file=sys.stderr)

    serve(host=host, port=args.port, workspace=args.workspace, project=args.project, auth=logins,
          api_key=args.api_key or None,
          knowledge=KnowledgeSettings(chroma_url=args.chroma_url, embedding_model=args.embedding_model,
                                      reranker=args.rerank),
          model=ModelSettings(model=args.model or DEFAULT_MODEL, trust_remote_code=args.trust_remote_code),
          policy=policy)
    return 0


def operator_policy(args: argparse.Namespace):
    """What ``serve``'s web users may reach, from its flags (the judge from the environment when no
    judge flag is given). Raises a TunewiseError that names the flag to fix."""
    from assistant.services.operator import (
        JUDGE_KEY_ENV,
        OperatorPolicy,
        OperatorPolicyError,
        judge_endpoints_from_env,
        judge_endpoints_from_flags,
        literal_private,
    )

    urls, keys = args.judge_url or [], args.judge_key
    if keys is None and len(urls) == 1 and os.environ.get(JUDGE_KEY_ENV):
        keys = [os.environ[JUDGE_KEY_ENV]]  # one endpoint: the environment's key is plainly its own
    if urls or args.judge_name or keys:
        endpoints = judge_endpoints_from_flags(urls, args.judge_name, keys)
    else:
        endpoints = judge_endpoints_from_env()
    for endpoint in endpoints:
        # Said now rather than to the first web user who picks it (a name is resolved at each request).
        if not (args.allow_private_judge or endpoint.allow_private) and literal_private(endpoint.url):
            raise OperatorPolicyError(f"the judge URL {endpoint.url} is a private or link-local address",
                                      "pass --allow-private-judge to let the web app call it")
    for folder in args.model_dir:
        if not Path(folder).expanduser().is_dir():
            raise OperatorPolicyError(f"--model-dir {folder!r} is not a folder")
    return OperatorPolicy(endpoints, tuple(Path(f) for f in args.model_dir), args.allow_private_judge,
                          args.allow_downloads)


def _fail(message: str) -> int:
    print(f"tunewise: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    handlers = {"serve": run_serve, "advise": run_advise, "projects": run_projects,
                "ingest": run_ingest, "search": run_search, "eval-retrieval": run_eval_retrieval,
                "validate": run_validate, "train": run_train, "jobs": run_jobs, "adapters": run_adapters,
                "eval": run_eval, "gap-check": run_gap_check, "chat": run_chat, "users": run_users,
                "judge": run_judge, "questions": run_questions,
                "compare-methods": run_compare_methods}
    if getattr(args, "model_cache", None):  # the training process and every loader read it from here
        import os

        os.environ[MODEL_CACHE_ENV] = args.model_cache
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the one place the CLI turns an error into words
        from ui.errors import explain, report_unexpected

        return _fail(explain(error) or report_unexpected(error))


if __name__ == "__main__":
    sys.exit(main())

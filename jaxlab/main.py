"""The ``jaxlab`` command: list, run, reproduce, and the tool subcommands.

  jaxlab list
  jaxlab run CONFIG[:ARG] [--workdir DIR] [--config.KEY=VALUE ...]
  jaxlab reproduce [--quick|--full|--gpu] [--dry-run] [--only NAME,...] [--out DIR]
  jaxlab abc N [N ...]
  jaxlab tokenizer train|encode|sample ...

Every usage error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

from jaxlab.config_args import ArgumentParser, UsageError, WriteError

# Tool subcommands: module with cli(argv) -> int. Plain dict so call sites are greppable.
TOOLS = {"abc": "jaxlab.ab_plus_c.cli", "tokenizer": "jaxlab.tokenizer.cli"}


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="jaxlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    sub.add_parser("list", help="list registered experiments")
    run = sub.add_parser("run", help="run one experiment config")
    run.add_argument("config", help="configs/NAME.py[:ARG] or NAME[:ARG]")
    run.add_argument("--workdir", help="run directory (default: runs/NAME[-ARG])")
    run.add_argument(
        "--distributed", action="store_true", help="call jax.distributed.initialize() (multi-host)"
    )
    rep = sub.add_parser("reproduce", help="run every experiment and write REPORT.md")
    mode = rep.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick")
    mode.add_argument("--full", dest="mode", action="store_const", const="full")
    mode.add_argument(
        "--gpu", dest="mode", action="store_const", const="gpu", help="the :gpu configs"
    )
    rep.add_argument(
        "--dry-run", action="store_true", help="with --gpu: compile every gpu config, run nothing"
    )
    rep.add_argument("--only", help="comma-separated experiment names")
    rep.add_argument("--out", default="runs/reproduce", help="output directory for REPORT.md")
    rep.add_argument(
        "--distributed", action="store_true", help="call jax.distributed.initialize() (multi-host)"
    )
    for tool in TOOLS:
        sub.add_parser(tool, help=f"the {tool} tool (see `jaxlab {tool} --help`)", add_help=False)
    return parser


def _main(argv: list[str]) -> int:
    if argv and argv[0] in TOOLS:
        return importlib.import_module(TOOLS[argv[0]]).cli(argv[1:])
    overrides = [a for a in argv if a.startswith("--config.")]
    args = _parser().parse_args([a for a in argv if not a.startswith("--config.")])
    from jaxlab import launch, report

    if getattr(args, "distributed", False):
        import jax

        try:  # only on request (STYLE 2.8); process 0 writes files
            jax.distributed.initialize()
        except (ValueError, RuntimeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UsageError(
                f"--distributed: {msg} (run under a cluster JAX detects, e.g. SLURM, or set "
                "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID)"
            ) from None
    if overrides and args.command != "run":
        raise UsageError("--config.KEY=VALUE overrides only apply to `jaxlab run`")
    if args.command == "list":
        from jaxlab.experiments import RUNNERS, describe
        from jaxlab.tokenizer.cli import version_line

        for name in RUNNERS:
            print(f"{name:22s} {describe(name)}")
        print(f"\n{version_line()}")
        return 0
    if args.command == "run":
        config = launch.load_config(args.config, overrides)
        default = "runs/" + args.config.replace(".py", "").split("/")[-1].replace(":", "-")
        results = launch.run_experiment(config, args.workdir or default)
        for c in results.get("claims", []):
            print(f"{report.verdict(c['agree']):>12s}  {c['name']}: measured {c['measured']}")
        return 0
    only = None if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    if args.mode == "gpu" or args.dry_run:
        if args.mode != "gpu":
            raise UsageError("--dry-run: only with --gpu (jaxlab reproduce --gpu --dry-run)")
        from jaxlab import gpu_tier

        return gpu_tier.reproduce(only, args.out, dry=args.dry_run)
    return launch.reproduce(args.mode or "quick", only, args.out)


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(sys.argv[1:] if argv is None else argv)
    except WriteError as e:
        # The environment failed (disk full, I/O error), not the command: exit 1, not 2.
        print(f"jaxlab: error: {e}", file=sys.stderr)
        code = 1
    except UsageError as e:
        print(f"jaxlab: error: {e}", file=sys.stderr)
        code = 2
    except FloatingPointError as e:  # the NaN guard: the run stopped, no results.json
        print(f"jaxlab: error: {e}; the run stopped without results.json", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("jaxlab: interrupted (checkpointed runs resume on the next run)", file=sys.stderr)
        code = 130
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()

"""The subcommands that show what a search decided: `report`, `plot`, `export` and `inspect`.

    nascompile report SPEC [--json] [--near-tie 0.01]
    nascompile plot SPEC -o cells.svg [--ir [PASS]]
    nascompile export SPEC --format nni|genotype|nb201|json [-o FILE]   |   --format pytorch -o DIR [--fresh-weights]
    nascompile inspect model.onnx [--json]

`report`, `plot` and `export` take the model options of `compile` (`options.add_model_arguments`) and
compile the same way (`options.compile_from_args`). Results go to stdout (or -o), progress and warnings to
stderr.
"""

from __future__ import annotations

import argparse
import json

from .errors import ModelFileError, PipelineError, RenderError, UsageError
from .files import STDOUT
from .options import add_model_arguments, compile_from_args, pipeline_of, progress_for, spec_output_to_stderr

EXPORT_FORMATS = ("nni", "genotype", "nb201", "json", "pytorch")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="what the search decided: probabilities, margins, ties, costs",
                       description="Compile SPEC and print one row per choice (candidates' probabilities, chosen op, "
                                   "edge strength, margin to the runner-up, kept/dropped, ties and near-ties) and "
                                   "the totals of the supernet and the discrete network.")
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON (format nascompile-report)")
    p.add_argument("--no-costs", action="store_true", help="skip the totals (they run the supernet once)")
    p.set_defaults(run=run_report)

    p = sub.add_parser("plot", help="draw the derived cells (or the IR) with Graphviz",
                       description="Draw each distinct derived cell as DARTS papers do, or with --ir the IR graph.")
    add_model_arguments(p)
    p.add_argument("-o", "--output", required=True,
                   help="image to write: .svg, .png, .pdf (Graphviz's dot), or .dot/.gv for the DOT text")
    p.add_argument("--ir", nargs="?", const="final", metavar="PASS",
                   help="draw the IR instead: after PASS, 'lift' (the supernet as lifted) or, without PASS, the final IR")
    p.set_defaults(run=run_plot)

    p = sub.add_parser("export", help="the architecture as NNI JSON, DARTS genotype or versioned JSON",
                       description="Compile SPEC and write its architecture in a standard format.")
    add_model_arguments(p)
    p.add_argument("--format", choices=EXPORT_FORMATS, default="json",
                   help="nni: NNI's exported-architecture JSON; genotype: DARTS's Genotype text; nb201: "
                        "NAS-Bench-201's arch string; json: the versioned architecture description with its sha256 "
                        "(default); pytorch: a standalone module (model.py) and its weights (model.safetensors) in "
                        "the -o directory")
    p.add_argument("--name", help="with --format genotype: write `NAME = Genotype(...)`, as in DARTS's genotypes.py")
    p.add_argument("-o", "--output", help="file to write (default and '-': stdout); with --format pytorch, the directory")
    p.add_argument("--fresh-weights", action="store_true", help="with --format pytorch: store the layers' default "
                   "initialization (seeded by --seed) instead of the supernet's weights, for retraining from scratch")
    p.set_defaults(run=run_export)

    p = sub.add_parser("inspect", help="print the decisions and architecture hash stored in an emitted ONNX file")
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--json", action="store_true", help="print everything stored, as JSON")
    p.set_defaults(run=run_inspect)


def _emit(text: str, output: str | None) -> None:
    """Write a result to `output`, or to stdout."""
    if output:
        from .files import write_text

        write_text(output, text)
    else:
        print(text, end="" if text.endswith("\n") else "\n")


def run_report(args: argparse.Namespace) -> int:
    from .progress import stage
    from .report import build_report, format_report

    result = compile_from_args(args, warn_ties=False)  # the report lists them
    with stage(progress_for(args), "report", "analyze") as detail:
        with spec_output_to_stderr():  # the costs run the supernet's forward
            report = build_report(result, near_tie=args.near_tie, costs=not args.no_costs)
        if report["totals"]:
            detail.append(f"{report['totals']['supernet']['macs'] / 1e6:,.1f} M -> "
                          f"{report['totals']['discrete']['macs'] / 1e6:,.1f} M MACs")
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _ir_graph(args: argparse.Namespace):
    """(graph, title) of the IR `--ir` names: after a pass, 'lift', or the final one."""
    from .ir import parse_graph
    from .passes import parse_pipeline

    if args.ir == "lift":
        return compile_from_args(args).lifted, "IR as lifted (the supernet)"
    passes = [name for name, _ in parse_pipeline(pipeline_of(args))]
    if args.ir == "final":
        return compile_from_args(args).graph, f"IR after {passes[-1]} (final)"
    if args.ir not in passes:  # checked before the SPEC is loaded and compiled
        raise PipelineError(f"--ir {args.ir!r} names no pass of the pipeline; give one of its passes, 'lift' "
                            "or no name (the final IR)")
    texts: dict[str, str] = {}
    compile_from_args(args, ir_after=args.ir, on_ir=texts.__setitem__)
    return parse_graph(texts[args.ir], verify=False), f"IR after {args.ir}"


def run_plot(args: argparse.Namespace) -> int:
    from .plot import cells_dot, ir_dot, output_format, render
    from .progress import stage

    output_format(args.output)  # an unknown extension fails before compiling
    if args.ir:
        graph, title = _ir_graph(args)
        dot_text = ir_dot(graph, title)
    else:
        result = compile_from_args(args)
        if result.architecture is None:
            raise RenderError("the pipeline recorded no cells (the `expand` pass reads them off the IR); run a "
                              "pipeline with expand, or draw the IR with --ir")
        dot_text = cells_dot(result.architecture)
    with stage(progress_for(args), "render", "render") as detail:
        path = render(dot_text, args.output)
        detail.append(str(path))
    if not args.quiet:
        print(f"wrote {path}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .export import arch_string_text, genotype_text, nni_json

    if args.name and args.format != "genotype":
        raise UsageError(f"--name applies to --format genotype only, not --format {args.format}")
    if args.fresh_weights and args.format != "pytorch":
        raise UsageError(f"--fresh-weights applies to --format pytorch only, not --format {args.format}")
    if args.format == "pytorch":
        from .deploy_options import run_pytorch_export

        return run_pytorch_export(args)
    result = compile_from_args(args)
    if args.format == "nni":
        text = nni_json(result.decisions)
    elif args.format == "genotype":
        text = genotype_text(result.genotype, args.name) + "\n"
    elif args.format == "nb201":
        text = arch_string_text(result.arch_string) + "\n"
    else:
        text = result.to_json() + "\n"
    _emit(text, args.output)
    if args.output and args.output != STDOUT and not args.quiet:
        print(f"wrote {args.output}")
    return 0


def printable(text: str) -> str:
    """`text` with control characters (terminal escape sequences included) shown as escapes, not sent raw."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _precision_line(stored: dict) -> str:
    """`precision: int8 (1000 inputs against fp32: cosine min 0.99999, ...; calibration: ...)`."""
    line = f"precision: {stored['precision']}"
    accuracy = stored.get("accuracy") or {}
    outputs = accuracy.get("outputs") or []
    if outputs:
        top1 = [o["top1_agreement"] for o in outputs if o.get("top1_agreement") is not None]
        line += (f" ({accuracy.get('samples')} inputs against fp32: cosine min "
                 f"{min(o['cosine_min'] for o in outputs):.6f}, max abs {max(o['max_abs'] for o in outputs):.3g}"
                 + (f", top-1 agreement {100 * min(top1):.1f}%" if top1 else "") + ")")
    if stored.get("calibration"):
        line += f"; calibration: {stored['calibration']}"
    return line


def run_inspect(args: argparse.Namespace) -> int:
    from .export import read_onnx_metadata
    from .report import format_decisions, layer_choices_first

    stored = read_onnx_metadata(args.model)
    if args.json:  # json.dumps escapes every control character itself
        print(json.dumps(stored.to_dict(), indent=2))
        return 0
    lines = [f"{stored.path}: written by nascompile {stored.version or '?'}", f"pipeline: {stored.pipeline or '?'}"]
    if stored.precision is not None:
        lines.append(_precision_line(stored.precision))
    if stored.description is None:
        lines.append("architecture: not stored (the file predates architecture descriptions)")
    else:
        check = ("matches the stored description; the graph and weights are not covered by it" if stored.hash_ok
                 else "DOES NOT MATCH the stored description")
        lines.append(f"architecture sha256: {stored.sha256} ({check})")
        lines.append(f"cells: {len(stored.description.get('cells', []))}")
        if stored.description.get("genotype"):
            lines.append(f"genotype: {stored.description['genotype']}")
    lines.append(f"decisions ({len(stored.decisions)} choices):")
    lines += format_decisions(layer_choices_first(stored.decisions))
    print("\n".join(printable(line) for line in lines))
    if stored.hash_ok is False:
        raise ModelFileError(f"{printable(stored.path)!r}: the stored architecture hash does not match the stored "
                             "description; the metadata was changed after nascompile wrote it")
    return 0
    print(f"{stored.path}: written by nascompile {stored.version or '?'}")
    print(f"pipeline: {stored.pipeline or '?'}")
    if stored.precision is not None:
        print(_precision_line(stored.precision))
    if stored.rules:
        print(f"rules: {stored.rules}")
    if stored.description is None:
        print("architecture: not stored (the file predates architecture descriptions)")
    else:
        check = ("matches the stored description; the graph and weights are not covered by it" if stored.hash_ok
                 else "DOES NOT MATCH the stored description")
        print(f"architecture sha256: {stored.sha256} ({check})")
        cells = stored.description.get("cells", [])
        print(f"cells: {len(cells)}")
        if stored.description.get("genotype"):
            print(f"genotype: {stored.description['genotype']}")
    print(f"decisions ({len(stored.decisions)} choices):")
    print("\n".join(format_decisions(layer_choices_first(stored.decisions))))
    if stored.hash_ok is False:
        raise ModelFileError(f"{stored.path!r}: the stored architecture hash does not match the stored description; "
                             "the metadata was changed after nascompile wrote it")
    return 0


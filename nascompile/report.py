"""`nascompile report`: what the search decided, how sure it was, and what the result costs.

`build_report` gathers the decisions (`Decisions.report`, with near-ties flagged at a threshold), the
genotype and the costs of the supernet and the discrete network (`costs.py`) into one JSON-ready,
versioned dict; `format_report` renders that dict as tables for people. The JSON (`--json`) and the
tables hold the same facts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .decisions import NEAR_TIE

if TYPE_CHECKING:
    from .compiler import CompileResult

REPORT_FORMAT = "nascompile-report"
REPORT_VERSION = 1


def build_report(result: "CompileResult", near_tie: float = NEAR_TIE, costs: bool = True) -> dict[str, Any]:
    """Decisions, genotype, architecture hash and (with `costs`) totals of a `CompileResult`."""
    report = {"format": REPORT_FORMAT, "version": REPORT_VERSION}
    report.update(result.choices.report(near_tie))
    report["genotype"] = None if result.genotype is None else str(result.genotype)
    report["arch_string"] = result.arch_string
    report["sha256"] = result.sha256
    report["totals"] = result.costs() if costs else None
    return report


# --- text ----------------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: list[Sequence[str]], right: set[int] = frozenset()) -> list[str]:
    """Columns padded to their widest cell; columns in `right` are right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  " + "  ".join(cells).rstrip()

    return [line(header)] + [line(row) for row in rows]


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def _flags(entry: dict[str, Any], dropped: bool = False) -> str:
    flags = (["TIE"] if entry.get("tie") else []) + (["near-tie"] if entry.get("near_tie") else [])
    return " ".join(flags + (["dropped"] if dropped else []))


def _layer_section(entries: list[dict[str, Any]]) -> list[str]:
    lines = [f"layer choices: {len(entries)} labels, {sum(len(e['paths']) for e in entries)} edges",
             "  p: softmax over all slots, the zero op included; * chosen; margin = logit[chosen] - logit[runner-up]",
             "  = ln(p[chosen] / p[runner-up]);",
             "  kept: edges (instances of the label) the discrete network keeps"]
    groups: dict[tuple, list[dict]] = {}
    for entry in entries:
        groups.setdefault((tuple(entry["candidates"]), entry["zero"]), []).append(entry)
    for (candidates, zero), group in groups.items():
        names = [f"{name} (zero)" if i == zero else name for i, name in enumerate(candidates)]
        lines += ["", "  candidates, in p order: " + ", ".join(names)]
        rows = []
        for e in group:
            probs = " ".join(f"{p:.3f}" + ("*" if i == e["chosen_index"] else " ")
                             for i, p in enumerate(e["probabilities"]))
            rows.append([e["label"], e["chosen"], _num(e["strength"]), e["runner_up"] or "-", _num(e["margin"]),
                         f"{e['kept_instances']}/{len(e['paths'])}", _flags(e, e["dropped"]), probs])
        lines += _table(["label", "chosen", "p", "runner-up", "margin", "kept", "flags", "p of each candidate"],
                        rows, right={2, 4, 5})
    return lines


def _input_section(entries: list[dict[str, Any]]) -> list[str]:
    lines = ["", f"input choices: {len(entries)} labels",
             "  weight: strength p[chosen] of each choose_from layer choice (* kept); cut margin = weakest kept - "
             "strongest dropped, in log p (logits for the logit ranks)"]
    rows = []
    for e in entries:
        kept = set(e["kept_positions"])
        weights = " ".join(f"{w:.3f}" + ("*" if i in kept else " ") for i, w in enumerate(e["weights"]))
        rows.append([e["label"], "all" if e["n_chosen"] is None else str(e["n_chosen"]), e["reduction"],
                     ", ".join(map(str, e["kept"])), _num(e["cut_margin"]), _flags(e), weights])
    return lines + _table(["label", "keep", "reduction", "kept", "cut margin", "flags", "weights"], rows, right={4})


def _finalize_section(entries: list[dict[str, Any]]) -> list[str]:
    first = entries[0]
    k = first["max_final_edges"]
    kept = f"the {k} strongest ranked edges kept per node (required edges always)" if k else "every edge kept"
    lines = ["", f"finalize: {len(entries)} nodes, rank {first['rank']}, {kept}; nodes deciding alike are grouped;",
             "  cut margin = weakest kept - strongest dropped, in log p (logits for the logit ranks)"]
    groups: dict[tuple, list[dict]] = {}
    for e in entries:
        key = tuple((edge["label"], edge["kept"]) for edge in e["edges"])
        groups.setdefault(key, []).append(e)
    rows = []
    for group in groups.values():
        e = group[0]
        where = f"{e['path'] or '-'} %{e['node']}" + (f" (+{len(group) - 1} alike)" if len(group) > 1 else "")
        ranks = " ".join(("required" if edge["rank"] is None else f"{edge['label']}={edge['rank']:.3f}")
                         + ("*" if edge["kept"] else "") for edge in e["edges"])
        rows.append([where, _num(e["cut_margin"]), _flags(e), ranks])
    return lines + _table(["node", "cut margin", "flags", "edge ranks (* kept)"], rows, right={1})


def _macs(value: int) -> str:
    return f"{value / 1e6:,.2f} M" if value >= 1e5 else f"{value:,}"


def _totals_section(totals: dict[str, Any]) -> list[str]:
    s, d = totals["supernet"], totals["discrete"]
    rows = [
        ["edges (layer choices)", f"{s['edges']:,}", f"{d['edges']:,}"],
        ["candidate ops", f"{s['candidate_ops']:,}", f"{d['candidate_ops']:,}"],
        ["IR ops", f"{s['ir_ops']:,}", f"{d['ir_ops']:,}"],
        ["params", f"{s['params']:,}", f"{d['params']:,}"],
        [f"MACs (batch {totals['batch_size']})", _macs(s["macs"]), _macs(d["macs"])],
        ["FLOPs (2 x MACs)", _macs(s["flops"]), _macs(d["flops"])],
    ]
    return (["", "totals: supernet = every candidate of every choice, as lifted (a choice is one IR op);",
             "  discrete = the compiled network; MACs of convolutions and matrix products only"]
            + _table(["", "supernet", "discrete"], rows, right={1, 2}))


def format_report(report: dict[str, Any]) -> str:
    """The report as tables (see `build_report`)."""
    lines: list[str] = []
    if report.get("rules"):
        r = report["rules"]
        lines += [f"rules: {r['name']} ({r['framework']}; chosen by {r['chosen_by']}): {r['description']}", ""]
    for entry in report.get("skip_limit") or []:
        lines += [f"skip-connect limit: {entry['summary']}", ""]
    if report["layer_choices"]:
        lines += _layer_section(report["layer_choices"])
    if report["input_choices"]:
        lines += _input_section(report["input_choices"])
    if report["finalize"]:
        lines += _finalize_section(report["finalize"])
    if report.get("totals"):
        lines += _totals_section(report["totals"])
    if report.get("genotype"):
        lines += ["", f"genotype: {report['genotype']}"]
    if report.get("arch_string"):
        lines += ["", f"NAS-Bench-201 arch string: {report['arch_string']}"]
    lines += ["", f"architecture sha256: {report['sha256']}"]
    lines += ["", f"ties: {len(report['ties'])}"] + [f"  {t}" for t in report["ties"]]
    lines += [f"near-ties (margin < {report['near_tie_threshold']:g}): {len(report['near_ties'])}"]
    lines += [f"  {t}" for t in report["near_ties"]]
    if report["warnings"]:
        lines += [f"warnings: {len(report['warnings'])}"] + [f"  {w}" for w in report["warnings"]]
    return "\n".join(lines)


def format_decisions(decisions: dict[str, Any]) -> list[str]:
    """NNI-format decisions as aligned `label  value` lines (a dropped edge's `[]` spelled out)."""
    width = max((len(k) for k in decisions), default=0)
    return [f"  {label:<{width}}  {value if value != [] else '[] (edge dropped)'}" for label, value in decisions.items()]


def layer_choices_first(decisions: dict[str, Any]) -> dict[str, Any]:
    """Decisions read back from a file (sorted by label): layer choices (an op, or `[]`), then input choices
    (the kept labels), each group in label order, as a compile lists them."""
    def is_input_choice(value: Any) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)

    return dict(sorted(decisions.items(), key=lambda item: (is_input_choice(item[1]), item[0])))

"""Decision rule sets: how each search family turns its logits into a discrete network.

A `RuleSet` says four things, each the family's own (the numbers live in `passes/ranking.py`):

- `op`: which slots the chosen op is the argmax of: `non-zero` (every candidate but the zero op; the
  DARTS family) or `any` (the zero op `none` is a real, choosable candidate: NAS-Bench-201's search code).
  The argmax is taken of the logits themselves: softmax, sigmoid and the Dirichlet mean are monotone, so
  this is the exact argmax of the probabilities however saturated they are.
- `rank`: the strength of an edge (its chosen op), by which a node keeps its best edges:
  `softmax` (p[chosen] over all logits, the zero op included), `renorm` (softmax over the non-zero slots),
  `logit` (the raw logit), `sigmoid` (sigmoid of the logit), `pc-darts` (softmax(alpha)[chosen] times
  softmax(beta)[edge] over the node's edge-normalization betas). Compared exactly: in float64 log space
  (log p = logit - logsumexp), never as float32 probabilities that underflow to a tie.
- `keep`: `top-k` (the `max_final_edges` best ranked edges of each node, required edges always) or
  `all` (every edge stays; only ops are chosen).
- the tie rule: a real tie (equal float64 ranks) keeps the lowest index, and is reported. `framework_tie`
  says how the family's own code orders ties, and `framework_values` how it computes the values it
  compares (float32): where those tie while the exact ranks do not, the report says what the framework
  would likely have picked.

`RULE_SETS` holds every rule set by name; `default_rules(graph)` picks one from the family the lift
recorded on the layer choices (`family`, `weighting`, `edge_logits`), and `resolve_rules` applies on top
what the supernet declares (a class attribute `decision_rules = "nb201"`) and, above that, the user's
`--rules` / `--rank`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ChoiceError

OP_RULES = ("non-zero", "any")
RANKS = ("softmax", "renorm", "logit", "sigmoid", "pc-darts")
KEEPS = ("top-k", "all")


@dataclass(frozen=True)
class RuleSet:
    """One family's decision rule (see the module docstring)."""

    name: str
    framework: str  # whose code decides this way
    op: str  # OP_RULES
    rank: str  # RANKS: also the weight of an input choice's inputs
    keep: str  # KEEPS
    framework_values: str  # how that code computes what it compares: "float32 softmax", "raw logits", ...
    framework_tie: str = "lowest"  # "lowest" or "highest" position first among the framework's equal values
    doc: str = ""
    skip_limit: int | None = None  # P-DARTS: at most this many skip_connect edges per normal cell
    gene_order: str = "rank"  # a genotype node's edges: "rank" (strongest first, DARTS) or "input" (P-DARTS)

    def describe(self, skip_limit: int | None = None) -> str:
        keep = "keeps the k best edges per node" if self.keep == "top-k" else "keeps every edge"
        zero = "the zero op choosable" if self.op == "any" else "the zero op never chosen"
        limit = self.skip_limit if skip_limit is None else skip_limit
        skips = f"; at most {limit} skip_connect per normal cell" if limit is not None else ""
        return f"{self.name} ({self.framework}: op = argmax of the logits, {zero}; rank {self.rank}; {keep}{skips})"


def _rule(name, framework, op, rank, keep, values, tie="lowest", doc="", **more):
    return RuleSet(name, framework, op, rank, keep, values, tie, doc, **more)


RULE_SETS: dict[str, RuleSet] = {r.name: r for r in (
    _rule("darts", "DARTS genotype()", "non-zero", "softmax", "top-k", "float32 softmax",
          doc="p = softmax over all logits incl. the zero op; op = argmax of p over the non-zero slots; "
              "each node keeps its k edges of highest p[op] (stable sort: lower input first)"),
    _rule("nni2", "NNI 2 DartsMutator", "non-zero", "softmax", "top-k", "float32 softmax",
          doc="DartsMutator.sample_final: softmax incl. its extra zero slot; input choices keep the top "
              "n_chosen by p[op] (torch.topk: tie order implementation-defined)"),
    _rule("logit", "Archai-style raw-logit rank", "non-zero", "logit", "top-k", "raw logits",
          doc="the former --rank logit: DARTS op rule, edges ranked by the chosen op's raw logit"),
    _rule("renorm", "NASLib", "non-zero", "renorm", "top-k", "float32 softmax over the non-zero slots",
          doc="the former --rank renorm: edges ranked by softmax over the non-zero candidates only"),
    _rule("archai", "Archai Finalizers", "non-zero", "logit", "top-k", "raw logits",
          doc="MixedOp.finalize: op = topk(alphas[:-1]); rank = that alpha; Finalizers keep the top k by rank"),
    _rule("nni3", "NNI 3 DARTS strategy", "non-zero", "logit", "top-k", "raw logits", tie="highest",
          doc="DifferentiableMixedLayer: argmax of alpha; DifferentiableMixedCell: per node, (alpha, input, op) "
              "sorted descending, distinct inputs first, the first k taken (on equal alphas the higher input "
              "wins); written from NNI 3.0's source, tested on replicas"),
    _rule("pc-darts", "PC-DARTS genotype()", "non-zero", "pc-darts", "top-k", "float32 softmax products",
          doc="edge rank softmax(alpha)[op] x softmax(beta)[edge], beta the node's edge-normalization "
              "logits (the lift's edge_logits)"),
    _rule("fair-darts", "FairDARTS parse", "non-zero", "sigmoid", "top-k", "float32 sigmoid",
          doc="ops weighted by independent sigmoids: op = argmax of sigmoid(alpha), edges ranked by it"),
    _rule("p-darts", "P-DARTS train_search.py", "non-zero", "softmax", "top-k", "float32 softmax", tie="highest",
          doc="after the last stage: p = softmax over each edge's switched-on ops (the lifted candidates), none's "
              "p zeroed; op = argmax of p; each node keeps its 2 edges of highest p[op]; then, in normal cells "
              "only, while more than 2 kept edges are skip_connect, the weakest of them (lowest p[skip], the "
              "first on ties) loses skip_connect and ops and edges are derived again (--max-skip-connects N); "
              "genotype edges in input order", skip_limit=2, gene_order="input"),
    _rule("drnas", "DrNAS genotype()", "any", "softmax", "top-k", "float32 softmax",
          doc="DARTS-space genotype(): p = softmax over the candidates its pruning mask kept (the lifted "
              "candidates); op = argmax of p over all of them (DrNAS's space has no `none`; one that has "
              "it may choose it); each node keeps its k edges of highest p[op] (stable sort: lower input "
              "first). Its NAS-Bench-201 genotype() decides as `nb201`"),
    _rule("darts-rnn", "DARTS recurrent genotype()", "non-zero", "softmax", "top-k", "float32 softmax",
          doc="per node: the predecessor whose best non-none p (softmax over the row, none included) is highest "
              "(one kept: the lift's input choice has n_chosen=1; stable sort: lower predecessor first), then "
              "that row's best non-none activation"),
    _rule("nb201", "NAS-Bench-201 search code", "any", "softmax", "all", "raw logits",
          doc="genotype(): op = argmax over all candidates, none included; every edge kept"),
    _rule("gdas", "GDAS/SETN (NAS-Bench-201)", "any", "softmax", "all", "raw logits",
          doc="argmax of the logits over all candidates, none included; every edge kept"),
)}

#: The family hint a recognizer records -> its rule set.
FAMILY_RULES = {"darts": "darts", "nascompile": "darts", "nni2": "nni2", "nni": "nni2", "archai": "archai",
                "nni3": "nni3", "pc-darts": "pc-darts", "fair-darts": "fair-darts", "nb201": "nb201",
                "p-darts": "p-darts", "drnas": "drnas", "gdas": "gdas", "setn": "gdas", "darts-rnn": "darts-rnn"}

#: The former `--rank` values, as rule sets.
RANK_RULES = {"darts": "darts", "logit": "logit", "renorm": "renorm"}


def get_rules(name: str) -> RuleSet:
    """The rule set called `name`, or ChoiceError listing them."""
    try:
        return RULE_SETS[name]
    except KeyError:
        raise ChoiceError(f"unknown rule set {name!r}; use one of {', '.join(RULE_SETS)}") from None


@dataclass(frozen=True)
class Chosen:
    """The rule set of one compile and why it was chosen (for the summary, report and ONNX metadata)."""

    rules: RuleSet
    source: str  # "--rules", "--rank", "family 'archai'", "default"
    skip_limit: int | None = None  # P-DARTS's limit in force: the rule set's, or --max-skip-connects

    def line(self) -> str:
        return f"{self.rules.describe(self.skip_limit)}; chosen by {self.source}"

    def with_skip_limit(self, limit: int | None) -> "Chosen":
        """This choice with `limit` (--max-skip-connects) in force, the rule set's own when None; refused for a
        rule set without P-DARTS's limit."""
        if limit is not None and self.rules.skip_limit is None:
            raise ChoiceError(f"--max-skip-connects is P-DARTS's skip-connect limit; the {self.rules.name} rule set "
                              "has none (use it with --rules p-darts)")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise ChoiceError(f"--max-skip-connects must be an int >= 0, got {limit!r}")
        return Chosen(self.rules, self.source, self.rules.skip_limit if limit is None else limit)


def graph_families(graph) -> dict[str, list[str]]:
    """Family hint -> labels of the layer choices carrying it (a choice with weighting=sigmoid and no
    family counts as fair-darts, one with edge_logits as pc-darts)."""
    found: dict[str, list[str]] = {}
    for node in graph.nodes_of("layer_choice"):
        attrs = graph.attrs(node)
        family = attrs.get("family")
        if family is None and attrs.get("weighting") == "sigmoid":
            family = "fair-darts"
        if family is None and "edge_logits" in graph.params(node):
            family = "pc-darts"
        found.setdefault(family, []).append(attrs["label"])
    return found


def default_rules(graph) -> Chosen:
    """The rule set of the families the lift found: one family per compile.

    Choices of no family (a custom recognizer's) follow the others' family, or `darts` when none has one.
    Two families in one graph are refused: which rule decides would be a guess (`--rules` says it).
    """
    families = {f: labels for f, labels in graph_families(graph).items() if f is not None}
    if not families:
        return Chosen(RULE_SETS["darts"], "default")
    names = {FAMILY_RULES.get(f) for f in families}
    unknown = [f for f in families if f not in FAMILY_RULES]
    if unknown:
        raise ChoiceError(f"layer choice {families[unknown[0]][0]!r} has family {unknown[0]!r}, which no rule set "
                          f"knows; pass --rules NAME (one of {', '.join(RULE_SETS)})")
    if len(names) > 1:
        listed = "; ".join(f"{f} (e.g. {labels[0]!r})" for f, labels in sorted(families.items()))
        raise ChoiceError(f"the supernet mixes layer choices of several families: {listed}; their decision rules "
                          f"differ, so pass --rules NAME to say which one decides (one of {', '.join(RULE_SETS)})")
    family = next(iter(families))
    return Chosen(RULE_SETS[FAMILY_RULES[family]], f"family {family!r}")


def resolve_rules(graph, rules: str | None = None, rank: str | None = None, declared: str | None = None) -> Chosen:
    """`rules` (--rules) if given, else the former `rank` (--rank), else the rule set the supernet declares
    (`declared`: its class attribute `decision_rules`), else the families' default."""
    if rules is not None and rank is not None and RANK_RULES.get(rank) != rules:
        raise ChoiceError(f"--rank {rank} and --rules {rules} disagree; --rank is the older spelling of "
                          f"--rules {RANK_RULES.get(rank, rank)}: give one of them")
    if rules is not None:
        return Chosen(get_rules(rules), "--rules")
    if rank is not None:
        if rank not in RANK_RULES:
            raise ChoiceError(f"unknown rank convention {rank!r}; use one of {', '.join(RANK_RULES)}")
        return Chosen(RULE_SETS[RANK_RULES[rank]], "--rank")
    if declared is not None:
        if declared not in RULE_SETS:
            raise ChoiceError(f"the supernet declares decision_rules = {declared!r}, which is no rule set; use one "
                              f"of {', '.join(RULE_SETS)}")
        return Chosen(RULE_SETS[declared], "the supernet's decision_rules")
    return default_rules(graph)

"""The nascompile IR: graph, op vocabulary, text form, verifier and interpreter."""

from .graph import Graph
from .interpreter import Overlay, run_graph
from .ops import OPS
from .text import graphs_equal, parse_graph, print_graph
from .verify import verify_graph

__all__ = ["Graph", "OPS", "Overlay", "graphs_equal", "parse_graph", "print_graph", "run_graph", "verify_graph"]

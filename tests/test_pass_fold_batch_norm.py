"""`fold-batch-norm` alone: hand-computed folds (eps=0 keeps the numbers exact), checked by numbers."""

from __future__ import annotations

import torch

from nascompile.ir import parse_graph
from nascompile.passes import PassContext
from nascompile.passes.fold_batch_norm import fold_batch_norm

from opt_cases import assert_unchanged, ir, optimize, printed

X = "%x = input() {index=0} : f32[1,1,3,3]"
CONV = "{dilation=[1, 1], groups=1, padding=[0, 0], stride=[1, 1]}"
# scale = weight / sqrt(var) = [0.5, 3.0]; shift = bias - mean * scale = [0.0, -6.0]
BN = ("params(bias: f32[2] = [0.5, 0.0], running_mean: f32[2] = [1.0, 2.0], running_var: f32[2] = [4.0, 1.0], "
      "weight: f32[2] = [1.0, 3.0])")


def test_affine_batch_norm_folds_into_the_convolution():
    graph, _ = optimize(f"""graph {{
  {X}
  %c = conv2d(%x) {CONV} params(bias: f32[2] = [1.0, -1.0], weight: f32[2,1,1,1] = [[[[2.0]]], [[[1.0]]]]) : f32[1,2,3,3]
  %bn = batch_norm(%c) {{eps=0.0}} {BN} : f32[1,2,3,3]
  %output = output(%bn)
}}""", "fold-batch-norm")
    # weight * scale = [1, 3]; bias * scale + shift = [0.5, -9]
    assert printed(graph) == ir(f"""graph {{
  {X}
  %c = conv2d(%x) {CONV} params(bias: f32[2] = [0.5, -9.0], weight: f32[2,1,1,1] = [[[[1.0]]], [[[3.0]]]]) : f32[1,2,3,3]
  %output = output(%c)
}}""")


def test_affine_false_batch_norm_folds_into_a_convolution_without_bias():
    graph, _ = optimize(f"""graph {{
  {X}
  %c = conv2d(%x) {CONV} params(weight: f32[2,1,1,1] = [[[[2.0]]], [[[1.0]]]]) : f32[1,2,3,3]
  %bn = batch_norm(%c) {{eps=0.0}} params(running_mean: f32[2] = [1.0, 2.0], running_var: f32[2] = [4.0, 1.0]) : f32[1,2,3,3]
  %output = output(%bn)
}}""", "fold-batch-norm")
    assert printed(graph) == ir(f"""graph {{
  {X}
  %c = conv2d(%x) {CONV} params(bias: f32[2] = [-0.5, -2.0], weight: f32[2,1,1,1] = [[[[1.0]]], [[[1.0]]]]) : f32[1,2,3,3]
  %output = output(%c)
}}""")


def test_batch_norm_after_a_channel_concatenation_of_convolutions_folds_into_each():
    # DARTS's FactorizedReduce: bn(cat([conv_1(x), conv_2(x[:, :, 1:, 1:])]))
    graph, _ = optimize(f"""graph {{
  %x = input() {{index=0}} : f32[1,1,4,4]
  %c1 = conv2d(%x) {{dilation=[1, 1], groups=1, padding=[0, 0], stride=[2, 2]}} params(weight: f32[1,1,1,1] = [[[[2.0]]]]) : f32[1,1,2,2]
  %s = slice(%x) {{dims=[2, 3], ends=[null, null], starts=[1, 1], steps=[1, 1]}} : f32[1,1,3,3]
  %c2 = conv2d(%s) {{dilation=[1, 1], groups=1, padding=[0, 0], stride=[2, 2]}} params(weight: f32[1,1,1,1] = [[[[1.0]]]]) : f32[1,1,2,2]
  %cat = cat(%c1, %c2) {{dim=1}} : f32[1,2,2,2]
  %bn = batch_norm(%cat) {{eps=0.0}} {BN} : f32[1,2,2,2]
  %output = output(%bn)
}}""", "fold-batch-norm")
    assert printed(graph) == ir("""graph {
  %x = input() {index=0} : f32[1,1,4,4]
  %c1 = conv2d(%x) {dilation=[1, 1], groups=1, padding=[0, 0], stride=[2, 2]} params(bias: f32[1] = [0.0], weight: f32[1,1,1,1] = [[[[1.0]]]]) : f32[1,1,2,2]
  %s = slice(%x) {dims=[2, 3], ends=[null, null], starts=[1, 1], steps=[1, 1]} : f32[1,1,3,3]
  %c2 = conv2d(%s) {dilation=[1, 1], groups=1, padding=[0, 0], stride=[2, 2]} params(bias: f32[1] = [-6.0], weight: f32[1,1,1,1] = [[[[3.0]]]]) : f32[1,1,2,2]
  %cat = cat(%c1, %c2) {dim=1} : f32[1,2,2,2]
  %output = output(%cat)
}""")


def test_a_convolution_read_elsewhere_is_not_folded():
    text = f"""graph {{
  {X}
  %c = conv2d(%x) {CONV} params(weight: f32[2,1,1,1] = [[[[2.0]]], [[[1.0]]]]) : f32[1,2,3,3]
  %bn = batch_norm(%c) {{eps=0.0}} {BN} : f32[1,2,3,3]
  %output = output(%bn, %c)
}}"""
    assert_unchanged(text, "fold-batch-norm")


def test_a_concatenation_with_anything_but_convolutions_is_not_folded():
    text = f"""graph {{
  %x = input() {{index=0}} : f32[1,1,3,3]
  %c = conv2d(%x) {CONV} params(weight: f32[1,1,1,1] = [[[[2.0]]]]) : f32[1,1,3,3]
  %r = relu(%x) : f32[1,1,3,3]
  %cat = cat(%c, %r) {{dim=1}} : f32[1,2,3,3]
  %bn = batch_norm(%cat) {{eps=0.0}} {BN} : f32[1,2,3,3]
  %output = output(%bn)
}}"""
    assert_unchanged(text, "fold-batch-norm")


def test_folded_weights_are_new_tensors_and_the_supernets_are_untouched():
    graph = parse_graph(f"""graph {{
  {X}
  %c = conv2d(%x) {CONV} params(weight: f32[2,1,1,1] = [[[[2.0]]], [[[1.0]]]]) : f32[1,2,3,3]
  %bn = batch_norm(%c) {{eps=1e-05}} {BN} : f32[1,2,3,3]
  %output = output(%bn)
}}""")
    original = graph.params("c")["weight"]
    before = original.clone()
    assert fold_batch_norm(graph, PassContext()).changed
    assert graph.params("c")["weight"] is not original and torch.equal(original, before)


def test_random_statistics_fold_within_float32_rounding():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 8, 3, padding=1)
    bn = torch.nn.BatchNorm2d(8).eval()
    bn.running_mean.normal_(0, 2)
    bn.running_var.uniform_(1e-3, 5)
    bn.weight.data.normal_(0, 2)
    bn.bias.data.normal_()
    from nascompile.ir import Graph

    graph = Graph()
    x = graph.add_op("input", name="x", attrs={"index": 0}, meta={"shape": [2, 4, 5, 5], "dtype": "f32"})
    c = graph.add_op("conv2d", [x], name="c", attrs={"stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 1},
                     params={"weight": conv.weight.detach(), "bias": conv.bias.detach()})
    b = graph.add_op("batch_norm", [c], name="bn", attrs={"eps": 1e-5},
                     params={k: getattr(bn, k).detach() for k in ("running_mean", "running_var", "weight", "bias")})
    graph.add_op("output", [b], name="output")
    inputs = (torch.randn(2, 4, 5, 5),)
    from nascompile.passes import run_pipeline

    run_pipeline(graph, "infer-shapes,fold-batch-norm", PassContext(example_inputs=inputs), verify_each=True)
    assert graph.count_ops() == {"input": 1, "conv2d": 1, "output": 1}


def test_an_unbatched_convolution_is_not_folded():
    # on C x H x W, batch norm's dim 1 is H (here 2, like the channels): folding per channel would be wrong
    text = f"""graph {{
  %x = input() {{index=0}} : f32[1,2,3]
  %c = conv2d(%x) {CONV} params(weight: f32[2,1,1,1] = [[[[2.0]]], [[[1.0]]]]) : f32[2,2,3]
  %bn = batch_norm(%c) {{eps=0.0}} {BN} : f32[2,2,3]
  %output = output(%bn)
}}"""
    assert_unchanged(text, "fold-batch-norm")

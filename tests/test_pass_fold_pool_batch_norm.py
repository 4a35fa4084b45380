"""`fold-pool-batch-norm` alone: each exact case, and the inexact ones left alone; checked by numbers."""

from __future__ import annotations

import pytest

from opt_cases import assert_unchanged, ir, optimize, printed

X = "%x = input() {index=0} : f32[1,1,4,4]"
CONV = ("%c = conv2d(%x) {dilation=[1, 1], groups=1, padding=[0, 0], stride=[1, 1]} "
        "params(weight: f32[2,1,1,1] = [[[[2.0]]], [[[1.0]]]]) : f32[1,2,4,4]")
FOLDED_CONV = ("%c = conv2d(%x) {dilation=[1, 1], groups=1, padding=[0, 0], stride=[1, 1]} "
               "params(bias: f32[2] = [0.0, -6.0], weight: f32[2,1,1,1] = [[[[1.0]]], [[[3.0]]]]) : f32[1,2,4,4]")
MAX_POOL = "max_pool2d(%c) {ceil_mode=false, dilation=[1, 1], kernel_size=[3, 3], padding=[1, 1], stride=[1, 1]}"
AVG_EXCL = ("avg_pool2d(%c) {ceil_mode=false, count_include_pad=false, divisor_override=null, kernel_size=[3, 3], "
            "padding=[1, 1], stride=[1, 1]}")


def bn(gamma: str = "[1.0, 3.0]") -> str:
    # scale = gamma / sqrt(var) = [0.5, 3.0] for the default gamma; shift = bias - mean * scale = [0.0, -6.0]
    return ("params(bias: f32[2] = [0.5, 0.0], running_mean: f32[2] = [1.0, 2.0], running_var: f32[2] = [4.0, 1.0], "
            f"weight: f32[2] = {gamma})")


@pytest.mark.parametrize("pool", [MAX_POOL, AVG_EXCL], ids=["max", "avg-count-include-pad-false"])
def test_batch_norm_commutes_with_the_pool_and_folds_into_its_convolution(pool):
    graph, _ = optimize(f"""graph {{
  {X}
  {CONV}
  %p = {pool} : f32[1,2,4,4]
  %bn = batch_norm(%p) {{eps=0.0}} {bn()} : f32[1,2,4,4]
  %output = output(%bn)
}}""", "fold-pool-batch-norm")
    assert printed(graph) == ir(f"""graph {{
  {X}
  {FOLDED_CONV}
  %p = {pool} : f32[1,2,4,4]
  %output = output(%p)
}}""")


def test_max_pool_with_a_negative_scale_is_not_folded():
    # a negative scale turns the maximum into a minimum
    text = f"""graph {{
  {X}
  {CONV}
  %p = {MAX_POOL} : f32[1,2,4,4]
  %bn = batch_norm(%p) {{eps=0.0}} {bn("[1.0, -3.0]")} : f32[1,2,4,4]
  %output = output(%bn)
}}"""
    assert_unchanged(text, "fold-pool-batch-norm")


def test_average_pool_counting_padding_becomes_one_depthwise_convolution():
    graph, _ = optimize(f"""graph {{
  %x = input() {{index=0}} : f32[1,2,4,4]
  %p = avg_pool2d(%x) {{ceil_mode=false, count_include_pad=true, divisor_override=null, kernel_size=[2, 2], padding=[1, 1], stride=[2, 2]}} : f32[1,2,3,3]
  %bn = batch_norm(%p) {{eps=0.0}} {bn()} : f32[1,2,3,3]
  %output = output(%bn)
}}""", "fold-pool-batch-norm")
    # weights scale / (2 * 2) = [0.125, 0.75], bias = shift
    assert printed(graph) == ir("""graph {
  %x = input() {index=0} : f32[1,2,4,4]
  %p = conv2d(%x) {dilation=[1, 1], groups=2, padding=[1, 1], stride=[2, 2]} params(bias: f32[2] = [0.0, -6.0], weight: f32[2,1,2,2] = [[[[0.125, 0.125], [0.125, 0.125]]], [[[0.75, 0.75], [0.75, 0.75]]]]) : f32[1,2,3,3]
  %output = output(%p)
}""")


def test_divisor_override_sets_the_kernel():
    graph, _ = optimize(f"""graph {{
  %x = input() {{index=0}} : f32[1,2,4,4]
  %p = avg_pool2d(%x) {{ceil_mode=false, count_include_pad=false, divisor_override=2, kernel_size=[2, 2], padding=[0, 0], stride=[2, 2]}} : f32[1,2,2,2]
  %bn = batch_norm(%p) {{eps=0.0}} {bn()} : f32[1,2,2,2]
  %output = output(%bn)
}}""", "fold-pool-batch-norm")
    assert graph.op("p") == "conv2d"
    assert graph.params("p")["weight"].flatten().tolist() == [0.25] * 4 + [1.5] * 4


@pytest.mark.parametrize("pool", [
    # DARTS's avg_pool_3x3: padding not counted, reading a state that is not a lone convolution
    AVG_EXCL.replace("%c", "%x"),
    MAX_POOL.replace("%c", "%x"),
    # ceil_mode windows can overhang the padded input: no fixed kernel
    "avg_pool2d(%x) {ceil_mode=true, count_include_pad=true, divisor_override=null, kernel_size=[3, 3], "
    "padding=[1, 1], stride=[2, 2]}",
], ids=["darts-avg", "max-after-input", "avg-ceil-mode"])
def test_inexact_cases_are_left_alone(pool):
    text = f"""graph {{
  %x = input() {{index=0}} : f32[1,2,5,5]
  %p = {pool}
  %bn = batch_norm(%p) {{eps=0.0}} {bn()}
  %output = output(%bn)
}}"""
    graph, _ = optimize(text, "infer-shapes,fold-pool-batch-norm")
    assert graph.count_ops()["batch_norm"] == 1


def test_a_pool_read_elsewhere_is_not_folded():
    text = f"""graph {{
  {X}
  {CONV}
  %p = {MAX_POOL} : f32[1,2,4,4]
  %bn = batch_norm(%p) {{eps=0.0}} {bn()} : f32[1,2,4,4]
  %output = output(%bn, %p)
}}"""
    assert_unchanged(text, "fold-pool-batch-norm")


def test_average_pool_counting_padding_after_a_convolution_does_not_commute():
    # the padding zeros are averaged but not shifted: it becomes a depthwise convolution instead
    graph, _ = optimize(f"""graph {{
  {X}
  {CONV}
  %p = {AVG_EXCL.replace("count_include_pad=false", "count_include_pad=true")} : f32[1,2,4,4]
  %bn = batch_norm(%p) {{eps=0.0}} {bn()} : f32[1,2,4,4]
  %output = output(%bn)
}}""", "fold-pool-batch-norm")
    assert graph.params("c")["weight"].flatten().tolist() == [2.0, 1.0]  # the first convolution is unchanged
    assert graph.op("p") == "conv2d" and graph.attrs("p")["groups"] == 2

"""The multiply-add counts behind bench_probe.py's ceiling, on worked examples."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

_spec = importlib.util.spec_from_file_location(
    "bench_probe", Path(__file__).resolve().parents[1] / "bench" / "bench_probe.py")
bench_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_probe)

CONFIG = SimpleNamespace(hidden_size=2, intermediate_size=3, num_hidden_layers=2)


def test_encoder_flops_worked_example():
    # per layer, t = 3: 2 * (3 * (4*4 + 2*2*3) + 2 * 9 * 2) = 2 * (84 + 36) = 240; two layers
    assert bench_probe.encoder_flops([3], CONFIG) == 480


def test_first_token_flops_worked_example():
    # first layer as above (240); last layer: keys and values for 3 tokens (2 * 3 * 2*4 = 48),
    # query + output projection + feed-forward for the first token (2 * (8 + 12) = 40),
    # its attention over 3 tokens (2 * 2*3*2 = 24)
    assert bench_probe.first_token_flops([3], CONFIG) == 240 + 48 + 40 + 24


def test_first_token_flops_one_token_is_the_whole_encoder():
    assert bench_probe.first_token_flops([1, 1], CONFIG) == bench_probe.encoder_flops([1, 1], CONFIG)


@pytest.mark.parametrize("lengths", [[5], [7, 30, 2]])
def test_first_token_flops_below_the_whole_encoder(lengths):
    assert bench_probe.first_token_flops(lengths, CONFIG) < bench_probe.encoder_flops(lengths, CONFIG)

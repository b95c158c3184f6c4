"""benchmarks/host_speed.py: its network is the reference one of specs/environment.md, and each line
reads as a ratio to the reference figure, or says why there is none. Speed itself is never asserted."""

from __future__ import annotations

import torch
from helpers import load_benchmark

host_speed = load_benchmark("host_speed")


def test_erfnet_lite_is_the_reference_network() -> None:
    """Section 7 gives its layers and "0.9 M params"; the forward keeps the input size."""
    model = host_speed.erfnet_lite()
    assert sum(p.numel() for p in model.parameters()) == 936_975
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 + 4 * 6 + 1  # 3 downsamplers, 6 non-bottleneck-1d blocks, the head
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 64, 128)).shape == (1, 19, 64, 128)


def test_each_line_is_a_ratio_to_the_reference_or_says_why_not() -> None:
    assert host_speed.row("import", 2.136).split()[-2:] == ["712", "3.0x"]
    assert host_speed.row("forward", 0.25).split()[-2:] == ["108-125", "2.0-2.3x"]
    skipped = host_speed.row("export", None, "skipped (--quick)")
    assert skipped.split()[-4:] == ["-", "4300-4500", "skipped", "(--quick)"]

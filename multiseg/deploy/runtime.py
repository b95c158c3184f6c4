"""ONNX Runtime CPU sessions, configured as every multiseg command and benchmark runs them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from multiseg.errors import MultisegError


def require(module: str) -> None:
    """Fail with the install hint when the optional package ``module`` is missing."""
    try:
        __import__(module)
    except ImportError as err:
        raise MultisegError(f"ONNX export needs {module!r}: pip install 'multiseg[onnx]'") from err


def ort_session(
    path: str | Path,
    threads: int | None = None,
    spinning: bool | None = None,
    optimization: str = "all",
):  # noqa: ANN201 - onnxruntime is optional
    """An ONNX Runtime CPU session for ``path``.

    ``threads``: intra-op threads (inter-op 1, sequential execution); None = ORT's default.
    ``spinning``: ``session.intra_op.allow_spinning``; None = ORT's default (on). Off lets idle worker
    threads sleep between ops instead of busy-waiting. On the project's 2-core hosts shared with
    training jobs, off was 5-45 % faster at 2 threads (ENet and ESPNet most: many short ops); on a
    momentarily idle host spinning can be faster. ``benchmarks/bench_models.py`` times both.
    ``optimization``: graph optimisation level, ``all`` (default: includes the NCHWc layout transformer
    on x86), ``extended``, ``basic`` or ``disabled``.
    """
    require("onnxruntime")
    import onnxruntime as ort

    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    if optimization not in levels:
        raise MultisegError(f"onnxruntime: optimization {optimization!r} is not one of {', '.join(levels)}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.graph_optimization_level = levels[optimization]
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_settings_text(threads: int | None, spinning: bool | None, optimization: str = "all") -> str:
    """How :func:`ort_session` was configured, for protocol lines."""
    spin = "ORT default (on)" if spinning is None else ("on" if spinning else "off")
    pool = f"intra-op threads {threads}, inter-op 1" if threads else "ORT default thread pools"
    return f"ORT {optimization.upper()} graph optimisations, {pool}, sequential, spinning {spin}"


def median_ms(session, feed: dict[str, np.ndarray], runs: int = 3) -> float:  # noqa: ANN001
    """Median latency (ms) of ``runs`` session runs after one warm-up run."""
    session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]

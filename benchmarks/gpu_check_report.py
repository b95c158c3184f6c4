"""The Markdown page of ``benchmarks/gpu_check.py``'s results (the source of docs/gpu.md)."""

from __future__ import annotations

from typing import Any

#: Published FPS at the paper's resolution (specs/models.md: recalled from each paper's table or README).
PAPER_FPS: dict[tuple[str, str], str] = {
    ("enet", "640x360"): "135 (Titan X Maxwell)",
    ("erfnet", "1024x512"): "41.7 (Titan X)",
    ("espnet", "1024x512"): "112 (Titan X)",
    ("edanet", "1024x512"): "81 (Titan X)",
    ("gunet", "1024x512"): "~33 (Titan Xp; from memory, via DFANet's table)",
}


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    """A Markdown table of ``rows`` (missing keys as "-"), or a line saying there is nothing."""
    if not rows:
        return ["(nothing measured)"]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |")
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _section(results: dict[str, Any], key: str) -> tuple[Any, list[str]]:
    """The section's value, and a line about its error or absence (else nothing)."""
    value = results.get(key)
    if value is None:
        return None, ["(not run)"]
    if isinstance(value, dict) and "error" in value:
        return None, [f"failed: `{value['error']}`"]
    return value, []


def _fps_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        row = dict(row)
        row["layout"] = "channels_last" if row.get("channels_last") else "NCHW"
        if row.get("heads") == 1 and row.get("head_mode") == "decoder":
            row["paper"] = PAPER_FPS.get((row["model"], row["size"]))
        row["note"] = row.get("skipped")
        out.append(row)
    return out


def markdown(results: dict[str, Any]) -> str:
    """The whole page: environment, FPS, compile, ONNX Runtime, training, the real run, DDP."""
    lines = ["# GPU check", ""]
    env, err = _section(results, "environment")
    lines += err or [f"- {k}: {_cell(v)}" for k, v in env.items()]
    if results.get("quick"):
        lines += ["", "**--quick: CPU at tiny sizes, a test of the script; no figure here is a GPU figure.**"]
    lines += ["", "## Inference FPS (batch 1, BN folded, synchronised, median)", ""]
    fps, err = _section(results, "inference_fps")
    lines += err or _table(_fps_rows(fps), [
        ("model", "model"), ("size", "WxH"), ("heads", "heads"), ("head_mode", "head mode"),
        ("dtype", "dtype"), ("layout", "layout"), ("median_ms", "median ms"), ("fps", "FPS"),
        ("paper", "paper FPS"), ("note", "note"),
    ])  # fmt: skip
    lines += ["", "## torch.compile (inductor), 1 head, NCHW", ""]
    comp, err = _section(results, "torch_compile")
    lines += err or _table(comp, [
        ("model", "model"), ("size", "WxH"), ("dtype", "dtype"), ("compile_s", "compile s"),
        ("median_ms", "median ms"), ("fps", "FPS"), ("skipped", "note"),
    ])  # fmt: skip
    lines += ["", "## ONNX Runtime GPU providers (1 head, fp32 graph)", ""]
    ort, err = _section(results, "onnxruntime_gpu")
    lines += err or _table(ort, [
        ("provider", "provider"), ("model", "model"), ("median_ms", "median ms"), ("fps", "FPS"),
        ("skipped", "note"),
    ])  # fmt: skip
    lines += ["", "## Training throughput (3 heads, forward + losses + backward + fused Adam)", ""]
    train, err = _section(results, "training_throughput")
    lines += err or _table(train, [
        ("model", "model"), ("crop", "crop WxH"), ("batch", "batch"), ("dtype", "autocast"),
        ("step_s", "step s"), ("images_per_s", "images/s"), ("peak_gib", "peak GiB"), ("skipped", "note"),
    ])  # fmt: skip
    lines += ["", "## A real run: configs/demo/long.yaml, then multiseg eval", ""]
    run, err = _section(results, "real_run")
    if err:
        lines += err
    else:
        lines += [f"- {k}: {_cell(v)}" for k, v in run.items() if k != "scores"]
        scores = [{"head": head, **values} for head, values in run.get("scores", {}).items()]
        lines += [""] + _table(scores, [
            ("head", "head (ground truth)"), ("miou", "mIoU"), ("sign_iou", "sign_iou"),
            ("sign_category_accuracy", "sign category acc."), ("sign_accuracy", "sign_accuracy"),
        ])  # fmt: skip
    lines += ["", "## DDP (NCCL, torchrun, 2 processes)", ""]
    ddp, err = _section(results, "ddp")
    lines += err or [f"- {k}: {_cell(v)}" for k, v in ddp.items()]
    seconds = results.get("section_seconds", {})
    lines += ["", f"Sections' wall time (s): {seconds}; total {results.get('elapsed_s')} s", ""]
    return "\n".join(lines)

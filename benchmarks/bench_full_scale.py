"""Full-scale cost on CPU, per model: a training step at the paper's setting, ``eval --full-res`` and
``predict`` on 2048x1024 frames; seconds and peak resident memory.

Protocol (printed with the results):

* Every measurement runs in its own Python process (this script with ``--case``), so its peak
  resident memory (``ru_maxrss`` of that process, read by itself at its end; imports, model, data
  and outputs included) is the case's own; no DataLoader worker processes (``--workers 0``). Cases
  run one after another, never two at once.
* **train**: the paper's training setting: batch 6 of 512x1024 crops (HxW), the network with the
  heads of ``--heads`` (default 3: Cityscapes 19, GTSDB 44, Vistas 65 classes; two samples each, the
  Cityscapes head also run on the GTSDB samples for the online box targets), forward + loss +
  backward + fused Adam, timed by ``bench_train_step.time_steps`` (the code ``bench_train_step.py``
  times); ``--warmup`` untimed steps, then ``--steps`` timed ones; the median. fp32, and bf16
  autocast (``torch.autocast("cpu", torch.bfloat16)``).
* **eval**: the real ``multiseg eval CKPT --full-res --workers 0 --device cpu`` on a Cityscapes val
  split of 2048x1024 frames: images fit 1024x512 for the network, logits upsampled to the label's
  2048x1024 (the official protocol), in a process that evaluates 1 frame (warm-up), then 1 frame,
  then 1 + ``--frames``; seconds per frame = (third run - second run) / ``--frames``, so process
  start, imports, model load and the first-call costs are left out.
* **predict**: the real ``multiseg predict CKPT FRAMES --workers 0 --batch-size 1 --device cpu``
  (network at the run's 1024x512; every output: colour maps, overlays, raw labels, unified map, at
  2048x1024), timed the same way.
* Frames: copies of the real 2048x1024 Cityscapes frame in ``../shared/fixtures`` with its real
  annotation as labelIds (synthetic photo-like frames where the fixtures are absent); untrained
  networks (random weights, BatchNorm statistics of a fresh model): the cost does not depend on
  the weights.
* torch's intra-op threads: all cores (``--threads`` to pin).

    PYTHONPATH=. python benchmarks/bench_full_scale.py                       # all six models
    PYTHONPATH=. python benchmarks/bench_full_scale.py --models erfnet enet --steps 1
    PYTHONPATH=. python benchmarks/bench_full_scale.py --quick               # seconds: ENet, tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import FIXTURES, REAL_FRAME, write_real_frames, write_synthetic_frames  # noqa: E402
from bench_train_step import HEADS, make_batch, time_steps  # noqa: E402

MODELS = ("enet", "erfnet", "espnet", "edanet", "gunet", "igumnet")
RESULT_TAG = "RESULT "


# -- the cases, each run in its own process -------------------------------------------------------


def case_train(args: argparse.Namespace) -> dict[str, Any]:
    """Median seconds of one training step of ``args.model`` (see the module docstring)."""
    from multiseg.models import create_model
    from multiseg.train.box_targets import BoxTargetOptions
    from multiseg.train.engine import JointModule
    from multiseg.train.loss_weights import UncertaintyWeighting

    height, width = (int(v) for v in args.size.split("x"))
    names = list(HEADS)[: args.heads]
    torch.manual_seed(0)
    net = create_model(args.model, heads={n: HEADS[n] for n in names})
    module = JointModule(net, UncertaintyWeighting(names), names, BoxTargetOptions(policy="merge"))
    batch = make_batch(args.batch, height, width, three_heads=args.heads == 3)
    if args.heads == 2:
        batch["dataset_index"] = torch.tensor([0, 1] * (args.batch // 2) + [0] * (args.batch % 2))
    amp = torch.bfloat16 if args.amp == "bf16" else None
    times, first = time_steps(module, batch, args.steps, args.warmup, amp)
    return {"step_s": statistics.median(times), "first_s": first, "steps": len(times)}


def timed_cli(argv_for: Any, frames: list[Path], out: Path) -> dict[str, Any]:
    """Run the CLI on 1 frame (warm-up), on 1 frame and on all ``frames``: seconds per extra frame."""
    from multiseg.cli import main

    seconds = []
    for k, subset in enumerate((frames[:1], frames[:1], frames)):  # warm-up, then 1 and 1 + N frames
        t0 = time.perf_counter()
        code = main(argv_for(subset, out / f"run{k}"))
        seconds.append(time.perf_counter() - t0)
        if code:
            raise SystemExit(f"multiseg exited {code}")
    extra = len(frames) - 1
    return {"s_per_frame": (seconds[2] - seconds[1]) / extra, "warm_up_s": seconds[0], "frames": extra}


def case_eval(args: argparse.Namespace) -> dict[str, Any]:
    """``multiseg eval --full-res`` on the val frames under ``args.data``."""
    frames = sorted(Path(args.data).glob("cityscapes/leftImg8bit/val/*/*.png"))

    def argv(subset: list[Path], out: Path) -> list[str]:
        return [
            "eval", args.ckpt, "--full-res", "--data", f"cityscapes={Path(args.data) / 'cityscapes'}",
            "--workers", "0", "--device", "cpu", "--max-samples", str(len(subset)), "--out", str(out),
        ]  # fmt: skip

    return timed_cli(argv, frames, Path(args.work))


def case_predict(args: argparse.Namespace) -> dict[str, Any]:
    """``multiseg predict`` on the val frames under ``args.data``."""
    frames = sorted(Path(args.data).glob("cityscapes/leftImg8bit/val/*/*.png"))

    def argv(subset: list[Path], out: Path) -> list[str]:
        return [
            "predict", args.ckpt, *map(str, subset), "--out", str(out), "--workers", "0",
            "--batch-size", "1", "--device", "cpu",
        ]  # fmt: skip

    return timed_cli(argv, frames, Path(args.work))


CASES = {"train": case_train, "eval": case_eval, "predict": case_predict}


# -- the parent: data, checkpoints, one process per case, the table -------------------------------


def write_checkpoint(path: Path, model_name: str, data_root: Path, fit: tuple[int, int]) -> Path:
    """An untrained Cityscapes checkpoint of ``model_name`` that ``multiseg eval`` and ``predict`` read."""
    from multiseg.config import config_to_dict
    from multiseg.models import create_model
    from multiseg.train.config import TrainConfig

    torch.manual_seed(0)
    model = create_model(model_name, heads={"cityscapes": 19}, pad_to_stride=True).eval()
    cfg = TrainConfig(
        datasets=["cityscapes"], data_root=data_root, model=model_name, resize_width=fit[0],
        resize_height=fit[1], crop_width=fit[0], crop_height=fit[1],
    )  # fmt: skip
    blob = {"model": model.state_dict(), "model_config": model.config, "config": config_to_dict(cfg)}
    torch.save(blob, path)
    return path


def write_val_frames(data_root: Path, n: int, quick: bool) -> str:
    """``n`` Cityscapes val frames under ``data_root/cityscapes``; returns what they are."""
    tmp = data_root / "cityscapes" / "_train"
    if quick:
        write_synthetic_frames(tmp, n, 128, 256)
        what = "synthetic 256x128 frames (--quick)"
    elif (FIXTURES / REAL_FRAME).is_file():
        write_real_frames(tmp, n)
        what = "copies of the real 2048x1024 Cityscapes frame with its real annotation"
    else:
        write_synthetic_frames(tmp, n)
        what = "synthetic photo-like 2048x1024 frames (../shared/fixtures absent)"
    for kind in ("leftImg8bit", "gtFine"):
        target = data_root / "cityscapes" / kind / "val"
        target.parent.mkdir(parents=True, exist_ok=True)
        (tmp / kind / "train").rename(target)
    return what


def run_case(argv: list[str], timeout: float) -> tuple[dict[str, Any] | None, float, str]:
    """One case in a fresh process: (its result or None, peak RSS in MiB, error text)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None, float("nan"), f"timed out after {timeout:.0f} s"
    result = None
    for line in output.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG) :])
    if result is None:
        tail = output.strip().splitlines()[-1:] or ["no output"]
        return None, float("nan"), f"exit {proc.returncode}: {tail[0]}"
    return result, result["peak_rss_mib"], ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--what", nargs="+", default=["train", "eval", "predict"], choices=list(CASES))
    parser.add_argument("--amp", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--size", default="512x1024", help="HxW of the training crops (default 512x1024)")
    parser.add_argument("--batch", type=int, default=6, help="training batch (default 6, the paper's)")
    parser.add_argument("--heads", type=int, default=3, choices=[1, 2, 3], help="heads trained (default 3)")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps first (default 1)")
    parser.add_argument("--frames", type=int, default=2, help="timed eval/predict frames (default 2)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: all cores)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per case (default 1200)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: ENet at tiny sizes, seconds")
    # one case, in a child process:
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--amp-one", dest="amp_one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.case:
        args.amp = args.amp_one
        result = CASES[args.case](args)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["threads"] = torch.get_num_threads()
        print(RESULT_TAG + json.dumps(result), flush=True)
        return
    if args.quick:
        args.models, args.size, args.batch, args.steps, args.frames = ["enet"], "64x128", 2, 1, 1
        args.warmup = 0
        args.threads = args.threads or 1  # tiny work: more threads only wait on each other
    run_all(args)


def run_all(args: argparse.Namespace) -> None:
    """Every requested case in its own process; prints rows as they finish, then the table."""
    started = time.perf_counter()
    common = [*(["--threads", str(args.threads)] if args.threads else [])]
    with tempfile.TemporaryDirectory(prefix="bench-full-scale-") as tmp:
        work = Path(tmp)
        data = work / "data"
        needs_frames = bool({"eval", "predict"} & set(args.what))
        frames_what = write_val_frames(data, args.frames + 1, args.quick) if needs_frames else "none"
        fit = (256, 128) if args.quick else (1024, 512)
        print("protocol: see the module docstring of benchmarks/bench_full_scale.py; here:")
        print(
            f"  machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"{args.threads or torch.get_num_threads()} threads, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()} (bf16 is emulated without AVX512-BF16/AMX); "
            f"load average before: {os.getloadavg()}"
        )
        print(
            f"  train: batch {args.batch} of {args.size} (HxW) crops, {args.heads} heads, {args.warmup} "
            f"warm-up + {args.steps} timed steps, median; eval/predict: {frames_what}, network fit "
            f"{fit[0]}x{fit[1]}, 1 warm-up frame + {args.frames} timed"
        )
        print(f"  command: {' '.join([Path(sys.executable).name, *sys.argv])}")
        rows: list[dict[str, Any]] = []
        for model in args.models:
            ckpt = write_checkpoint(work / f"{model}.pt", model, data, fit) if needs_frames else None
            cases: list[tuple[str, str, list[str]]] = []
            for amp in args.amp if "train" in args.what else []:
                train = ["--case", "train", "--model", model, "--amp-one", amp, "--size", args.size,
                         "--batch", str(args.batch), "--heads", str(args.heads), "--steps", str(args.steps),
                         "--warmup", str(args.warmup)]  # fmt: skip
                cases.append(("train", amp, train))
            for what in ("eval", "predict"):
                if what in args.what:
                    argv = ["--case", what, "--model", model, "--ckpt", str(ckpt), "--data", str(data),
                            "--work", str(work / f"{model}-{what}")]  # fmt: skip
                    cases.append((what, "fp32", argv))
            for what, amp, argv in cases:
                result, rss, error = run_case([*argv, *common], args.timeout)
                row = {
                    "model": model,
                    "case": what,
                    "dtype": amp,
                    "result": result,
                    "rss": rss,
                    "error": error,
                }
                rows.append(row)
                print(format_row(row), flush=True)
        print(f"\nload average after: {os.getloadavg()}; whole run {time.perf_counter() - started:.0f} s\n")
        print(markdown(rows, args))


def seconds_of(row: dict[str, Any]) -> float | None:
    """The row's headline seconds: per training step, or per frame."""
    result = row["result"]
    if result is None:
        return None
    return result["step_s"] if row["case"] == "train" else result["s_per_frame"]


def format_row(row: dict[str, Any]) -> str:
    what = {"train": "s/step", "eval": "s/frame", "predict": "s/frame"}[row["case"]]
    seconds = seconds_of(row)
    if seconds is None:
        return f"{row['model']:8s} {row['case']:8s} {row['dtype']:5s} failed: {row['error']}"
    return (
        f"{row['model']:8s} {row['case']:8s} {row['dtype']:5s} {seconds:8.2f} {what:8s} "
        f"peak RSS {row['rss']:8.0f} MiB"
    )


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The table for docs/reproduce.md: one line per model."""
    amps = args.amp if "train" in args.what else []
    head = ["model"]
    for amp in amps:
        head += [f"train step {amp} (s)", f"peak RSS {amp} (GiB)"]
    for what in ("eval", "predict"):
        if what in args.what:
            label = "eval --full-res" if what == "eval" else "predict"
            head += [f"{label} (s/frame)", "peak RSS (GiB)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in args.models:
        cells = [model]
        keys = [("train", amp) for amp in amps] + [(w, "fp32") for w in ("eval", "predict") if w in args.what]
        for case, amp in keys:
            row = next(r for r in rows if r["model"] == model and r["case"] == case and r["dtype"] == amp)
            seconds = seconds_of(row)
            if seconds is None:
                cells += ["failed", "-"]
            else:
                cells += [f"{seconds:.2f}", f"{row['rss'] / 1024:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""The GPU check in one call: the paper's speed protocol, training throughput and a real run (issue 20).

A GPU is lent now and then for about 15 minutes in all, so everything runs from one prepared command
that brings its results back at once (``bash benchmarks/gpu_check.sh OUT``): environment, inference FPS
of the six networks (1 and 3 heads, decoder and last_conv, fp32/fp16, NCHW/channels_last,
torch.compile where it compiles in time), ONNX Runtime's CUDA/TensorRT providers, training
throughput at 1024x512 batch 6 (fp16 and bf16 autocast, peak memory), a real run of
``configs/demo/long.yaml`` sized to about 4 minutes and its ``multiseg eval``, and DDP over 2 GPUs
where there are 2. Each section has a time budget; what does not fit is recorded as skipped.
``results.json`` and ``results.md`` in OUT are rewritten after every section, so a run cut short still
returns what it measured.

``--quick`` runs the same code on CPU at tiny sizes in about a minute, so CI tests the script.

FPS protocol (the paper's): batch 1, eval mode, inference_mode, BatchNorm folded, random input,
warm-up runs, the device synchronised after every forward, median latency; FPS = 1000 / median ms.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_step import HEADS, make_batch, time_steps  # noqa: E402
from gpu_check_report import markdown  # noqa: E402

from multiseg.config import load_config  # noqa: E402
from multiseg.data.sampler import samples_per_dataset  # noqa: E402
from multiseg.deploy.bench import time_callable  # noqa: E402
from multiseg.models import HeadsAsTuple, create_model, fold_batchnorm, list_models  # noqa: E402
from multiseg.train.box_targets import BoxTargetOptions  # noqa: E402
from multiseg.train.config import TrainConfig  # noqa: E402
from multiseg.train.data import build_train_datasets  # noqa: E402
from multiseg.train.device import autocast_dtype, to_device  # noqa: E402
from multiseg.train.engine import JointModule  # noqa: E402
from multiseg.train.loss_weights import UncertaintyWeighting  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LONG_CONFIG = REPO / "configs" / "demo" / "long.yaml"
DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class Budget:
    """Wall-clock deadlines: the whole check and the section running now."""

    def __init__(self, total_s: float) -> None:
        self.start = time.perf_counter()
        self.total_s = total_s
        self.section_end = math.inf

    def section(self, seconds: float) -> None:
        self.section_end = min(time.perf_counter() + seconds, self.start + self.total_s)

    def left(self) -> float:
        return self.section_end - time.perf_counter()


class Check:
    """The settings of one check and the results gathered so far (saved after every section)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick: bool = args.quick
        self.device = torch.device("cpu" if self.quick or not torch.cuda.is_available() else "cuda")
        self.out: Path = args.out
        self.budget = Budget(args.budget_s)
        self.results: dict[str, Any] = {"quick": self.quick, "device": self.device.type}
        self.out.mkdir(parents=True, exist_ok=True)
        self.world = _start_world(self)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.results["elapsed_s"] = round(time.perf_counter() - self.budget.start, 1)
        (self.out / "results.json").write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        (self.out / "results.md").write_text(markdown(self.results))

    def run_section(self, name: str, seconds: float, fn: Callable[[], Any]) -> None:
        """Run one section under its budget; an exception is recorded, not fatal (the others still run)."""
        self.budget.section(seconds)
        t0 = time.perf_counter()
        print(f"== {name} (budget {seconds:.0f} s)", flush=True)
        try:
            self.results[name] = fn()
        except Exception as err:  # noqa: BLE001 - one broken section must not lose the others' results
            self.results[name] = {"error": f"{type(err).__name__}: {err}"}
            print(f"   {name} failed: {type(err).__name__}: {err}", flush=True)
        self.results.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 1)
        self.save()


# ------------------------------------------------------------------------------------ sections


def environment(check: Check) -> dict[str, Any]:
    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "git_commit": _git_commit(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
            capability=f"{props.major}.{props.minor}", gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(), driver=_nvidia_smi("driver_version"),
        )  # fmt: skip
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
        env["ort_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        env["onnxruntime"] = None
    return env


def inference_fps(check: Check) -> list[dict[str, Any]]:
    """The paper's FPS protocol over models x heads x head mode x dtype x layout (batch 1)."""
    size = (64, 128) if check.quick else (512, 1024)
    runs: list[tuple[str, tuple[int, int], int, str, str, bool]] = []
    for name in check.args.models:
        for dtype in ("fp32", "fp16"):
            runs += [(name, size, 1, "decoder", dtype, cl) for cl in (False, True)]
        runs += [(name, size, 3, mode, "fp16", True) for mode in ("decoder", "last_conv")]
    if "enet" in check.args.models:
        small = (64, 128) if check.quick else (360, 640)
        runs += [("enet", small, 1, "decoder", dtype, True) for dtype in ("fp32", "fp16")]
    rows = []
    for name, hw, n_heads, mode, dtype, cl in runs:
        row = {"model": name, "size": f"{hw[1]}x{hw[0]}", "heads": n_heads, "head_mode": mode,
               "dtype": dtype, "channels_last": cl}  # fmt: skip
        if check.budget.left() < 3:
            rows.append({**row, "skipped": "time budget"})
            continue
        run = _forward_runner(check, name, hw, n_heads, mode, dtype, cl, compiled=False)
        rows.append({**row, **_time_forward(check, run)})
        print(f"   {row} -> {rows[-1].get('fps')} FPS", flush=True)
    return rows


def compiled_fps(check: Check) -> list[dict[str, Any]]:
    """torch.compile (inductor) for the models that compile within the section's budget, fp16 NCHW."""
    size = (64, 128) if check.quick else (512, 1024)
    rows = []
    for name in check.args.compile_models:
        row: dict[str, Any] = {"model": name, "size": f"{size[1]}x{size[0]}", "dtype": "fp16"}
        if check.budget.left() < 30 and not check.quick:
            rows.append({**row, "skipped": "time budget"})
            continue
        t0 = time.perf_counter()
        run = _forward_runner(check, name, size, 1, "decoder", "fp16", False, compiled=True)
        run()
        check.sync()
        row["compile_s"] = round(time.perf_counter() - t0, 1)
        rows.append({**row, **_time_forward(check, run)})
    return rows


def ort_providers(check: Check) -> list[dict[str, Any]]:
    """ONNX Runtime's CUDA and TensorRT providers for ERFNet and ENet, where this onnxruntime has them."""
    import onnxruntime as ort

    from multiseg.deploy.export import export_onnx

    available = ort.get_available_providers()
    size = (64, 128) if check.quick else (512, 1024)
    rows = []
    for provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        if provider not in available:
            rows.append(
                {"provider": provider, "skipped": f"not in this onnxruntime ({', '.join(available)})"}
            )
            continue
        for name in ("erfnet", "enet"):
            path = export_onnx(create_model(name, heads={"cityscapes": 19}), check.out / f"{name}.onnx",
                               sample_size=size, dynamic=False)  # fmt: skip
            session = ort.InferenceSession(str(path), providers=[provider, "CPUExecutionProvider"])
            feed = {"input": torch.randn(1, 3, *size).numpy()}
            times = time_callable(
                lambda s=session, f=feed: s.run(None, f), 20, check.args.min_time, lambda: None
            )
            median = statistics.median(times)
            rows.append({"provider": provider, "model": name, "median_ms": round(median, 3),
                         "fps": round(1e3 / median, 1), "runs": len(times)})  # fmt: skip
    return rows


def training_throughput(check: Check) -> list[dict[str, Any]]:
    """Images/s of a 3-head training step at batch 6 (forward, losses, backward, fused Adam), peak memory."""
    height, width = (64, 128) if check.quick else (512, 1024)
    batch_size = 2 if check.quick else 6
    rows = []
    for name in check.args.models:
        for dtype in ("fp16", "bf16"):
            row: dict[str, Any] = {
                "model": name,
                "crop": f"{width}x{height}",
                "batch": batch_size,
                "dtype": dtype,
            }
            if check.budget.left() < 5:
                rows.append({**row, "skipped": "time budget"})
                continue
            step = _step_seconds(check, name, (height, width), batch_size, DTYPES[dtype], channels_last=False)
            rows.append({**row, **step, "images_per_s": round(batch_size / step["step_s"], 1)})
            print(f"   {row} -> {rows[-1]['images_per_s']} images/s", flush=True)
    return rows


def real_run(check: Check) -> dict[str, Any]:
    """``configs/demo/long.yaml`` with as many epochs as fit the budget, then ``multiseg eval --full-res``."""
    world = _demo_world(check)
    workers = 0 if check.quick else min(12, (os.cpu_count() or 2) - 2)
    overrides = [f"data_root={world}", f"workers={workers}", f"out_dir={check.out / 'run'}"]
    if check.quick:
        overrides += ["crop_height=64", "crop_width=64", "resize_width=128", "resize_height=64",
                      "batch_size=3", "dataset_resize={gtsdb: [128, 64]}", "amp=none",
                      "channels_last=false"]  # fmt: skip
    cfg = load_config(TrainConfig, LONG_CONFIG, overrides)
    steps_per_epoch = _steps_per_epoch(cfg)
    amp = autocast_dtype(cfg.amp, check.device)
    crop = (cfg.crop_height, cfg.crop_width)
    step = _step_seconds(check, cfg.model, crop, cfg.batch_size, amp, channels_last=cfg.channels_last)
    loader_s = _loader_seconds_per_batch(cfg, workers, batches=4 if check.quick else 60)
    per_step = max(step["step_s"], loader_s) * 1.25  # + validation and logging
    epochs = (
        1 if check.quick else max(2, min(cfg.epochs, int(check.args.run_s / (per_step * steps_per_epoch))))
    )
    overrides += [f"epochs={epochs}", f"val_every={max(1, epochs // 5)}"]
    result: dict[str, Any] = {
        "config": str(LONG_CONFIG.relative_to(REPO)), "overrides": overrides,
        "steps_per_epoch": steps_per_epoch, "step_s": step["step_s"], "loader_workers": workers,
        "loader_s_per_batch": round(loader_s, 4), "gpu_waits_for_data": loader_s > step["step_s"],
    }  # fmt: skip
    sampler = _GpuBusy() if check.device.type == "cuda" else None
    t0 = time.perf_counter()
    train = _multiseg(["train", str(LONG_CONFIG), *sum((["--set", o] for o in overrides), [])], check)
    result["train_s"] = round(time.perf_counter() - t0, 1)
    if sampler is not None:
        result["gpu_busy_percent"] = sampler.stop()
    result["train_rc"] = train.returncode
    if train.returncode != 0:
        result["train_stderr"] = train.stderr[-2000:]
        return result
    run_dir = max((check.out / "run").iterdir(), key=lambda p: p.stat().st_mtime)
    eval_args = ["eval", str(run_dir), "--out", str(check.out / "eval")]
    t0 = time.perf_counter()
    ev = _multiseg([*eval_args, *([] if check.quick else ["--full-res"])], check)
    result["eval_s"], result["eval_rc"] = round(time.perf_counter() - t0, 1), ev.returncode
    if ev.returncode != 0:
        result["eval_stderr"] = ev.stderr[-2000:]
        return result
    result["scores"] = _eval_scores(check.out / "eval" / "eval.json")
    return result


def ddp(check: Check) -> dict[str, Any]:
    """Two training processes over NCCL (torchrun), one epoch of the tiny world, where 2 GPUs exist."""
    if check.device.type != "cuda" or torch.cuda.device_count() < 2:
        return {"skipped": f"needs 2 GPUs; this machine has {torch.cuda.device_count()}"}
    world = _demo_world(check)
    overrides = [f"data_root={world}", "epochs=1", "val_every=1", f"out_dir={check.out / 'ddp'}"]
    torchrun = shutil.which("torchrun") or "torchrun"
    cmd = [torchrun, "--nproc_per_node=2", "-m", "multiseg.cli", "train", str(LONG_CONFIG)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd + sum((["--set", o] for o in overrides), []), capture_output=True, text=True)
    return {"rc": res.returncode, "seconds": round(time.perf_counter() - t0, 1), "stderr": res.stderr[-1500:]}


# ------------------------------------------------------------------------------------ helpers


def _forward_runner(
    check: Check,
    name: str,
    hw: tuple[int, int],
    n_heads: int,
    mode: str,
    dtype: str,
    cl: bool,
    compiled: bool,
) -> Callable[[], object]:
    heads = dict(list(HEADS.items())[:n_heads])
    net = fold_batchnorm(create_model(name, heads=heads, head_mode=mode))
    fmt = torch.channels_last if cl else torch.contiguous_format
    torch_dtype = DTYPES[dtype] or torch.float32
    if check.device.type == "cpu" and torch_dtype == torch.float16:
        torch_dtype = torch.bfloat16  # --quick: the CPU path of the same code
    wrapper = HeadsAsTuple(net).eval().to(check.device, torch_dtype, memory_format=fmt)
    x = torch.randn(1, 3, *hw, device=check.device, dtype=torch_dtype).contiguous(memory_format=fmt)
    forward = torch.compile(wrapper) if compiled else wrapper

    def run() -> object:
        with torch.inference_mode():
            return forward(x)

    return run


def _time_forward(check: Check, run: Callable[[], object]) -> dict[str, Any]:
    warmup = 2 if check.quick else 20
    times = time_callable(run, warmup, check.args.min_time, check.sync)
    median = statistics.median(times)
    return {"median_ms": round(median, 3), "fps": round(1e3 / median, 1), "runs": len(times)}


def _step_seconds(
    check: Check, name: str, hw: tuple[int, int], batch: int, amp: torch.dtype | None, channels_last: bool
) -> dict[str, Any]:
    torch.manual_seed(0)
    names = list(HEADS)
    net = create_model(name, heads=HEADS)
    module = JointModule(net, UncertaintyWeighting(names), names, BoxTargetOptions(policy="merge"))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    module = module.to(check.device, memory_format=fmt)
    data = to_device(make_batch(batch, *hw, three_heads=True), check.device)
    data["image"] = data["image"].contiguous(memory_format=fmt)
    if check.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, first = time_steps(
        module, data, steps=2 if check.quick else 6, warmup=1 if check.quick else 3, amp=amp
    )
    out = {"step_s": round(statistics.median(times), 4), "first_step_s": round(first, 2)}
    if check.device.type == "cuda":
        out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def _steps_per_epoch(cfg: TrainConfig) -> int:
    """Steps of one epoch, counted in the reference dataset as the trainer counts them."""
    sizes = [len(d) for d in build_train_datasets(cfg)]
    counts = samples_per_dataset(sizes, cfg.balance, [cfg.balance_weights[n] for n in cfg.datasets]
                                 if cfg.balance == "weighted" else None)  # fmt: skip
    ref = cfg.datasets.index(cfg.reference_dataset)
    return max(1, math.ceil(sum(counts) * sizes[ref] / counts[ref] / cfg.batch_size))


def _loader_seconds_per_batch(cfg: TrainConfig, workers: int, batches: int) -> float:
    """Seconds per batch of the real training loader alone (decode, augment, collate)."""
    from multiseg.data.pipeline import build_train_loader

    loader, _, _ = build_train_loader(build_train_datasets(cfg), cfg.batch_size, num_workers=workers,
                                      policy=cfg.balance, seed=0)  # fmt: skip
    batches_left = batches + 1
    t0 = 0.0
    while batches_left:  # a small dataset's pass may hold fewer batches than asked for: go round again
        for _ in loader:
            batches_left -= 1
            if batches_left == batches:  # the first batch waits for the workers to start: not timed
                t0 = time.perf_counter()
            if not batches_left:
                break
    return (time.perf_counter() - t0) / batches


def _start_world(check: Check) -> subprocess.Popen[bytes]:
    """Write the medium demo world in a background process while the GPU sections run (CPU work)."""
    frames = 6 if check.quick else None
    code = (
        "import sys; from pathlib import Path; from multiseg.demo.world import write_demo_world; "
        f"write_demo_world(Path(sys.argv[1]), seed=0, size='medium', n_frames={frames})"
    )
    log = (check.out / "world.log").open("wb")
    return subprocess.Popen([sys.executable, "-c", code, str(check.out / "world")], stdout=log, stderr=log)


def _demo_world(check: Check) -> Path:
    """The medium demo world, once its background process is done."""
    if check.world.wait() != 0:
        raise RuntimeError(f"writing the demo world failed: see {check.out / 'world.log'}")
    return check.out / "world"


def _multiseg(args: list[str], check: Check) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "multiseg.cli", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    (check.out / f"{args[0]}.log").write_text(res.stdout[-20000:] + res.stderr[-20000:])
    return res


def _eval_scores(path: Path) -> dict[str, dict[str, float | None]]:
    data = json.loads(path.read_text())
    keys = ("miou", "sign_iou", "sign_category_accuracy", "sign_accuracy")
    return {f"{r['head']} ({r['target']})": {k: r[k] for k in keys if k in r} for r in data["results"]}


class _GpuBusy:
    """Samples ``nvidia-smi``'s GPU utilisation every 0.5 s in a thread; ``stop`` returns the mean."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            value = _nvidia_smi("utilization.gpu")
            if value is not None and value.strip().isdigit():
                self.samples.append(float(value))
            self._stop.wait(0.5)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return round(statistics.fmean(self.samples), 1) if self.samples else None


def _nvidia_smi(query: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def _git_commit() -> str | None:
    res = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return res.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    parser.add_argument("--quick", action="store_true", help="CPU, tiny sizes: test the script itself")
    parser.add_argument("--budget-s", type=float, default=450, help="the whole check, s (default: 450)")
    parser.add_argument(
        "--run-s", type=float, default=210, help="training time of the real run (default: 210)"
    )
    parser.add_argument("--min-time", type=float, default=0.5, help="timed seconds per FPS setting")
    parser.add_argument("--models", nargs="+", help="default: all six (--quick: enet)")
    parser.add_argument("--compile-models", nargs="*", help="default: erfnet enet (--quick: none)")
    args = parser.parse_args(argv)
    args.models = args.models or (["enet"] if args.quick else list_models())
    if args.compile_models is None:  # compiling takes a minute on CPU: --quick leaves it out unless asked
        args.compile_models = [] if args.quick else ["erfnet", "enet"]
    if args.quick:
        args.min_time, args.run_s = min(args.min_time, 0.05), 30
    check = Check(args)
    if check.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    check.run_section("environment", 10, lambda: environment(check))
    check.run_section("inference_fps", 90, lambda: inference_fps(check))
    check.run_section("training_throughput", 60, lambda: training_throughput(check))
    check.run_section("real_run", args.run_s + 60, lambda: real_run(check))
    check.run_section("torch_compile", 50, lambda: compiled_fps(check))
    check.run_section("onnxruntime_gpu", 20, lambda: ort_providers(check))
    check.run_section("ddp", 60, lambda: ddp(check))
    print((check.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

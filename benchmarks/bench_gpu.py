"""The GPU check: one command for whoever is lent an NVIDIA GPU (``make bench-gpu``), < 5 minutes.

    python benchmarks/bench_gpu.py                     # CUDA: bf16 + fp16, eager vs CUDA graphs, batch sweep
    python benchmarks/bench_gpu.py --compile           # + torch.compile (max-autotune-no-cudagraphs), one batch
    python benchmarks/bench_gpu.py --device cpu --quick   # dry run of the same code on the CPU (CI)

Without a GPU it prints one line and exits 0. With a GPU but a CPU-only torch it installs a CUDA
build of the same torch version that the driver runs (PyTorch's wheel index for the newest CUDA the driver
supports, ``--torch-index-url`` to use a mirror) into ``var/gpu-site`` (the shared venv is left alone) and
re-runs itself with it; a later run reuses that install. If nothing installs (no network, a driver too old)
it says why in one line.

Per (dtype, mode, batch size): messages/s of the model on pre-tokenized, length-sorted batches padded
to a length bucket (16/32/64/128, so CUDA graphs are captured once per shape), p50/p99 latency per
batch, and achieved TFLOP/s (useful FLOPs from real token counts, benchmarks/work.py) against the
device peak (``--peak-tflops``, else a table of dense bf16/fp16 tensor-core peaks by device name) and
against a large matmul measured in the same run. One last row runs the product path
(``TransformerClassifier.predict``, tokenization included) at the largest batch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_classifier import load_texts, valid_csv
from benchmarks.stats import percentile
from benchmarks.work import gemm_gflops, model_flops

ROOT = Path(__file__).resolve().parent.parent
GPU_SITE = ROOT / "var" / "gpu-site"
LENGTH_BUCKETS = (16, 32, 64, 128)
PEAK_TFLOPS = {  # dense bf16/fp16 tensor-core peak (no sparsity), by a substring of the device name
    "H200": 989.0, "H100": 989.0, "GH200": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H200 NVL": 835.0,
    "B200": 2250.0, "A100": 312.0, "A10G": 125.0, "A10": 125.0,
    "L40S": 362.0, "L40": 181.0, "L4": 121.0, "4090": 165.0, "3090": 71.0, "V100": 125.0, "T4": 65.0,
}
CUDA_INDEXES = (("cu130", 580), ("cu129", 525), ("cu128", 525), ("cu126", 525))
"""PyTorch's CUDA wheel indexes, newest first, with the oldest NVIDIA driver (major version) each one runs on:
CUDA 13 needs R580, CUDA 12.x runs on R525+ (minor-version compatibility). A CUDA build newer than the driver
installs fine and then cannot use the GPU, after gigabytes of download."""
TORCH_INDEX = "https://download.pytorch.org/whl/{}"


def peak_tflops(device_name: str) -> float:
    """The table's peak for ``device_name``, by its longest matching key ("H100 PCIe" before "H100"), 0 if none."""
    keys = sorted((k for k in PEAK_TFLOPS if k in device_name), key=len, reverse=True)
    return PEAK_TFLOPS[keys[0]] if keys else 0.0


def nvidia_present() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


def driver_major() -> int | None:
    """The NVIDIA driver's major version (``580`` of 580.65.06), None when nvidia-smi cannot say."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=False).stdout
        return int(out.split()[0].split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def cuda_indexes(driver: int | None) -> list[str]:
    """The CUDA wheel indexes this driver runs, newest first (all of them when the driver is unknown)."""
    return [name for name, least in CUDA_INDEXES if driver is None or driver >= least]


def site_cuda(site: Path, version: str) -> str | None:
    """torch's CUDA version when ``site`` holds torch ``version`` (its base version: ``2.13.0`` of ``2.13.0+cu128``)
    that can use the GPU here, else None (none installed, another version left by an earlier venv, a CPU build, a
    cut-off copy, a CUDA build newer than the driver). Asked in a child: this process has its torch."""
    if not (site / "torch").is_dir():
        return None
    probe = ("import sys, torch; sys.stdout.write(torch.__version__ + ' ' + "
             "(torch.version.cuda if torch.cuda.is_available() else ''))")
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(site)}, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    installed, _, cuda = done.stdout.strip().partition(" ")
    if installed.split("+")[0] != version:  # a site left by a venv with another torch: its CUDA build is stale
        return None
    return cuda.strip() or None


def pip_install(target: Path, index_url: str, requirement: str) -> subprocess.CompletedProcess[str]:
    """pip into ``target`` from ``index_url`` (dependencies from PyPI), quietly and without retrying for minutes.
    ``--isolated``: pip's own configuration (a local find-links holding a ``+cpu`` wheel, which outranks the CUDA
    one for ``==``) must not pick the build."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--isolated", "--disable-pip-version-check", "--retries", "1",
         "--timeout", "20", "--target", str(target), "--index-url", index_url,
         "--extra-index-url", "https://pypi.org/simple", requirement],
        capture_output=True, text=True, check=False,
    )


def install_cuda_torch(version: str, index_urls: Sequence[str]) -> str | None:
    """Install ``torch==version`` from the first index whose build can use the GPU here into ``GPU_SITE``; None
    on success, else one line saying what each index answered. A partial install never replaces a good one."""
    partial = GPU_SITE.with_name(GPU_SITE.name + ".partial")
    answers = []
    for url in index_urls:
        shutil.rmtree(partial, ignore_errors=True)
        done = pip_install(partial, url, f"torch=={version}")
        if done.returncode == 0 and site_cuda(partial, version):
            shutil.rmtree(GPU_SITE, ignore_errors=True)
            partial.rename(GPU_SITE)
            return None
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        answers.append(f"{url}: {lines[-1].strip() if lines else 'installed, but that build cannot use this GPU'}")
    shutil.rmtree(partial, ignore_errors=True)
    return f"could not install a CUDA build of torch=={version} that runs here ({'; '.join(answers)})"


def ensure_cuda_torch(argv: Sequence[str], index_url: str | None = None) -> str | None:
    """None when CUDA is usable here; else the one line explaining why not (after trying to fix a
    CPU-only torch on a GPU host by installing a CUDA build into ``GPU_SITE`` and re-running)."""
    if torch.cuda.is_available():
        return None
    if not nvidia_present():
        return "no NVIDIA GPU on this machine (no nvidia-smi, no /dev/nvidia0): nothing to measure"
    if torch.version.cuda is not None or os.environ.get("FINSENT_GPU_REEXEC"):
        return f"an NVIDIA GPU is present but torch {torch.__version__} cannot use it (driver? CUDA_VISIBLE_DEVICES?)"
    version = torch.__version__.split("+")[0]
    if site_cuda(GPU_SITE, version) is None:
        driver = driver_major()
        urls = [index_url] if index_url else [TORCH_INDEX.format(name) for name in cuda_indexes(driver)]
        if not urls:
            least = min(least for _, least in CUDA_INDEXES)
            return f"the NVIDIA driver ({driver}) is older than any CUDA build of torch {version} runs on (R{least})"
        print(f"torch {torch.__version__} is CPU-only: installing a CUDA build of torch=={version} into {GPU_SITE} "
              f"(driver {driver or 'unknown'})")
        started = time.perf_counter()
        why = install_cuda_torch(version, urls)
        if why is not None:
            return why
        print(f"installed in {time.perf_counter() - started:.0f} s; the next run reuses it")
    env = {**os.environ, "FINSENT_GPU_REEXEC": "1", "PYTHONPATH": f"{GPU_SITE}{os.pathsep}{ROOT}"}
    os.execve(sys.executable, [sys.executable, __file__, *argv], env)
    return None  # not reached


@dataclass
class Row:
    dtype: str
    mode: str
    batch: int
    messages: int
    seconds: float
    latencies_ms: list[float]
    flops: float


def bucket(length: int) -> int:
    return next((b for b in LENGTH_BUCKETS if length <= b), LENGTH_BUCKETS[-1])


def padded_batches(
    encoded: list[list[int]], batch: int, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor, list[int]]]:
    """Length-sorted batches of ids/mask on ``device``, each padded to its length bucket."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = []
    for start in range(0, len(order), batch):
        rows = [encoded[i][: LENGTH_BUCKETS[-1]] for i in order[start : start + batch]]
        width = bucket(max(len(r) for r in rows))
        ids = torch.zeros((batch, width), dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        out.append((ids.to(device), mask.to(device), [len(r) for r in rows]))
    return out


def graphed(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``forward`` replayed from a CUDA graph captured once per input shape (static buffers)."""
    graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def run(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        key = tuple(ids.shape)
        if key not in graphs:
            static_ids, static_mask = ids.clone(), mask.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):
                    forward(static_ids, static_mask)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = forward(static_ids, static_mask)
            graphs[key] = (graph, static_ids, static_mask, out)
        graph, static_ids, static_mask, out = graphs[key]
        static_ids.copy_(ids)
        static_mask.copy_(mask)
        graph.replay()
        return out

    return run


def measure(forward: Callable[..., object], batches: list[tuple[torch.Tensor, torch.Tensor, list[int]]],
            sync: Callable[[], None], flops: Callable[[list[int]], float], label: tuple[str, str, int]) -> Row:
    # counted before the clock: one FLOP count costs ~0.5 ms on the CPU, as much as a GPU batch (found by review)
    work = flops([n for _ids, _mask, lengths in batches for n in lengths])
    with torch.inference_mode():
        # every shape once before the clock starts: a shape first met in the timed loop timed its CUDA graph
        # capture (or torch.compile's compilation) as a batch (found by review)
        for ids, mask, _ in {tuple(b[0].shape): b for b in batches}.values():
            forward(ids, mask)
        sync()
        latencies = []
        started = time.perf_counter()
        for ids, mask, _lengths in batches:
            t0 = time.perf_counter()
            forward(ids, mask)
            sync()
            latencies.append((time.perf_counter() - t0) * 1000)
        seconds = time.perf_counter() - started
    messages = sum(len(b[2]) for b in batches)
    return Row(label[0], label[1], label[2], messages, seconds, latencies, work)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--model", default=None, help="model dir; default: the bundled model")
    p.add_argument("--texts", type=int, default=8192, help="messages (sent_valid.csv cycled, else synthetic)")
    p.add_argument("--batch-sizes", default="32,64,128,256,512,1024")
    p.add_argument("--dtypes", default="bfloat16,float16")
    p.add_argument("--peak-tflops", type=float, default=0.0, help="device peak; default: by device name")
    p.add_argument("--compile", action="store_true", help="add torch.compile at the largest batch size")
    p.add_argument("--budget-s", type=float, default=240.0, help="skip the remaining configurations after this")
    p.add_argument("--quick", action="store_true", help="256 texts, batches 16,64, one dtype")
    p.add_argument("--torch-index-url", default=None,
                   help="wheel index for the CUDA build of torch (a mirror); default: PyTorch's, by driver")
    args = p.parse_args(list(argv))
    if args.device != "cpu":
        why = ensure_cuda_torch(argv, args.torch_index_url)
        if why is not None:
            print(f"bench-gpu: {why}")
            return 0
    return run(args)


def run(args: argparse.Namespace) -> int:
    from monitor.classify.artifact import load_model, tokenize
    from monitor.classify.transformer import TransformerClassifier
    from monitor.config import ClassifierSettings

    began = time.perf_counter()
    device = torch.device("cuda" if args.device != "cpu" else "cpu")
    cuda = device.type == "cuda"
    if args.quick:
        args.texts, args.batch_sizes, args.dtypes = min(args.texts, 256), "16,64", args.dtypes.split(",")[0]
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    base, origin = load_texts(valid_csv(None), min(args.texts, 2388))
    texts = [base[i % len(base)] for i in range(args.texts)]
    model, tokenizer = load_model(args.model)
    model.train(False)
    encoded = tokenize(tokenizer, texts, 128)
    cfg = model.config.encoder_config()
    layers, hidden = int(cfg.num_hidden_layers), int(cfg.hidden_size)

    def flops(lengths: list[int]) -> float:
        return model_flops(model, layers, hidden, lengths)

    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    peak = args.peak_tflops or peak_tflops(name)
    matmul = {dt: gemm_gflops(getattr(torch, dt), *((8192,) * 3 if cuda else (1024,) * 3), device=device.type) / 1e3
              for dt in args.dtypes.split(",")}
    print(f"device {name}, torch {torch.__version__}, {len(texts)} texts ({origin}), "
          f"{sum(map(len, encoded)):,} real tokens; peak {peak or '?'} TFLOP/s; "
          + ", ".join(f"{dt} matmul {t:,.1f} TFLOP/s" for dt, t in matmul.items()))
    rows: list[Row] = []
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    for dt in args.dtypes.split(","):
        dtype = getattr(torch, dt)
        typed = load_model(args.model)[0].to(device=device, dtype=dtype)  # fresh: no bf16 -> fp16 round trip
        typed.train(False)

        def forward(ids: torch.Tensor, mask: torch.Tensor, m: torch.nn.Module = typed) -> torch.Tensor:
            return m.probabilities(m(input_ids=ids, attention_mask=mask))[1]

        modes: list[tuple[str, Callable[..., object]]] = [("eager", forward)]
        if cuda:
            modes.append(("cuda graphs", graphed(forward)))
        for batch in sizes:
            batches = padded_batches(encoded, batch, device)
            for mode, fn in modes:
                if time.perf_counter() - began > args.budget_s:
                    print(f"budget of {args.budget_s:.0f} s spent: skipping {dt} {mode} batch {batch}")
                    continue
                rows.append(measure(fn, batches, sync, flops, (dt, mode, batch)))
        if args.compile and time.perf_counter() - began < args.budget_s:
            compiled = torch.compile(forward, mode="max-autotune-no-cudagraphs", dynamic=False)
            rows.append(measure(compiled, padded_batches(encoded, sizes[-1], device), sync, flops,
                                (dt, "torch.compile", sizes[-1])))
    product = TransformerClassifier(ClassifierSettings(model_path=args.model, device=device.type))
    chunks = [texts[i : i + sizes[-1]] for i in range(0, len(texts), sizes[-1])]
    product.predict(chunks[0])
    t0 = time.perf_counter()
    latencies = []
    for chunk in chunks:
        t1 = time.perf_counter()
        product.predict(chunk)
        latencies.append((time.perf_counter() - t1) * 1000)
    rows.append(Row(product.precision.label, "product path (tokenize+predict)", sizes[-1], len(texts),
                    time.perf_counter() - t0, latencies, flops([len(e) for e in encoded])))
    print_rows(rows, peak, matmul)
    print(f"total {time.perf_counter() - began:.0f} s")
    return 0


def print_rows(rows: list[Row], peak: float, matmul: dict[str, float]) -> None:
    print("\n| dtype | mode | batch | msg/s | p50 ms/batch | p99 ms/batch | TFLOP/s | of peak | of matmul |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        tflops = r.flops / r.seconds / 1e12
        of_peak = f"{100 * tflops / peak:.1f}%" if peak else "-"
        ref = matmul.get(r.dtype.split("+")[0])
        of_matmul = f"{100 * tflops / ref:.1f}%" if ref else "-"
        print(f"| {r.dtype} | {r.mode} | {r.batch} | {r.messages / r.seconds:,.0f} | "
              f"{percentile(r.latencies_ms, 0.5):.2f} | {percentile(r.latencies_ms, 0.99):.2f} | "
              f"{tflops:.2f} | {of_peak} | {of_matmul} |")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

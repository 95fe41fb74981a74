"""Naive per-message inference vs the batched ``TransformerClassifier`` -- same model, same texts.

    python benchmarks/bench_classifier.py                 # bundled model, 512 texts from sent_valid
    python benchmarks/bench_classifier.py --model DIR --texts 1024 --batch-size 64 --device cuda

(a) naive: one ``model(**tokenizer(text))`` call per message under ``no_grad`` (what a plain
    transformers pipeline loop does); (b) ``TransformerClassifier.predict`` on micro-batches (URL
    stripping, length bucketing, inference_mode; fp16/bf16 on CUDA); (c) the same with int8 dynamic
    quantization (CPU only); (d)/(e) the same micro-batches through ONNX Runtime, fp32 and int8
    (CPU only; ``--skip-onnx`` to leave them out; the first run exports the graph into
    ``var/onnx-cache``). Prints messages/s, p50/p99 latency and the speed-up; on CUDA also the
    achieved FLOP/s against ``--peak-tflops``. Default runtime: well under 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import percentile
from monitor.classify.dataset import DATASET_DIR, read_csv
from monitor.classify.topics import load_taxonomy
from monitor.classify.transformer import BucketedClassifier, TransformerClassifier, available_cpus
from monitor.config import ClassifierSettings


@dataclass(frozen=True)
class Result:
    name: str
    messages: int
    seconds: float
    latencies_ms: list[float]
    unit: str
    tokens: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def timed(calls: Sequence[Callable[[], object]], sync: Callable[[], None]) -> tuple[float, list[float]]:
    latencies = []
    started = time.perf_counter()
    for call in calls:
        t0 = time.perf_counter()
        call()
        sync()
        latencies.append((time.perf_counter() - t0) * 1000)
    return time.perf_counter() - started, latencies


def flops_per_token(clf: TransformerClassifier, seq_len: float) -> float:
    """~2 FLOPs per weight per token in the encoder's Linear layers + attention's 4·L·d per layer."""
    cfg = clf.model.config.encoder_config()
    layers, hidden = int(cfg.num_hidden_layers), int(cfg.hidden_size)
    linear = sum(m.weight.numel() for m in clf.model.modules() if isinstance(m, torch.nn.Linear))
    return 2.0 * linear + 4.0 * layers * seq_len * hidden


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model dir or hub id; default: the bundled model")
    p.add_argument("--texts", type=int, default=512, help="messages from sent_valid.csv")
    p.add_argument("--batch-size", type=int, default=64, help="micro-batch size for (b) and (c)")
    p.add_argument("--repeat", type=int, default=3, help="runs per variant; the fastest is reported")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--peak-tflops", type=float, default=0.0, help="device peak for the FLOP/s ratio (CUDA)")
    p.add_argument("--valid-csv", type=Path, default=DATASET_DIR / "sent_valid.csv")
    p.add_argument("--skip-onnx", action="store_true", help="leave out the ONNX Runtime variants")
    args = p.parse_args(list(argv))

    texts = read_csv(args.valid_csv, load_taxonomy()).texts[: args.texts]
    settings = ClassifierSettings(model_path=args.model, device=args.device)
    batched = TransformerClassifier(settings)
    cuda = batched.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    print(
        f"{len(texts)} texts (naive: raw text; ours: URLs stripped), batch {args.batch_size}, "
        f"device {batched.device}, dtype {batched.dtype}, "
        f"torch threads {torch.get_num_threads()} (of {available_cpus()} cpus)"
    )

    # (a) naive: fp32, one text per forward, raw text, no bucketing -- a per-message pipeline loop.
    naive_model = TransformerClassifier(settings.model_copy(update={"dtype": "float32"})).model
    tokenizer = batched.tokenizer

    def naive_one(text: str) -> object:
        enc = tokenizer(text, truncation=True, max_length=settings.max_length_tokens, return_tensors="pt")
        with torch.no_grad():
            out = naive_model(
                input_ids=enc["input_ids"].to(batched.device),
                attention_mask=enc["attention_mask"].to(batched.device),
            )
            return naive_model.probabilities(out)[1].cpu()

    batches = [texts[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    naive_tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"])
    our_tokens = sum(len(ids) for ids in batched._encode(texts))
    variants: list[tuple[str, BucketedClassifier | None, str, int]] = [
        ("(a) naive per-message", None, "message", naive_tokens),
        ("(b) TransformerClassifier batched", batched, "batch", our_tokens),
    ]
    if not cuda:
        int8 = TransformerClassifier(settings.model_copy(update={"quantize_int8": True}))
        variants.append(("(c) batched + int8 dynamic", int8, "batch", our_tokens))
    if not cuda and not args.skip_onnx:
        from monitor.classify.onnx_runtime import OnnxClassifier

        onnx = settings.model_copy(update={"runtime": "onnxruntime", "device": "cpu"})
        variants.append(("(d) ONNX Runtime batched", OnnxClassifier(onnx), "batch", our_tokens))
        onnx_int8 = OnnxClassifier(onnx.model_copy(update={"quantize_int8": True}))
        variants.append(("(e) ONNX Runtime batched + int8", onnx_int8, "batch", our_tokens))

    results = []
    for name, clf, unit, tokens in variants:
        if clf is None:
            for t in texts[:8]:
                naive_one(t)  # warm-up
            calls: list[Callable[[], object]] = [partial(naive_one, t) for t in texts]
        else:
            clf.predict(batches[0])  # warm-up
            calls = [partial(clf.predict, b) for b in batches]
        # Best of N: on a shared machine the slowest runs measure the neighbours, not the code.
        runs = [timed(calls, sync) for _ in range(max(1, args.repeat))]
        seconds, lat = min(runs, key=lambda run: run[0])
        results.append(Result(name, len(texts), seconds, lat, unit, tokens))

    base = results[0].rate
    print("\n| variant | messages/s | p50 latency | p99 latency | speed-up vs (a) |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.name} | {r.rate:,.0f} | {r.pct(0.5):.1f} ms/{r.unit} | {r.pct(0.99):.1f} ms/{r.unit} | "
            f"{r.rate / base:.1f}x |"
        )
    mean_len = our_tokens / len(texts)
    work = flops_per_token(batched, mean_len)
    for r in results:
        achieved = r.tokens * work / r.seconds
        kind = "effective (int8 ops)" if "int8" in r.name else "achieved"
        line = f"{r.name}: ~{achieved / 1e9:.1f} GFLOP/s {kind} ({r.tokens} tokens)"
        if cuda and args.peak_tflops:
            line += f", {100 * achieved / (args.peak_tflops * 1e12):.2f}% of {args.peak_tflops} TFLOP/s peak"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

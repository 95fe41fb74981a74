"""The classifier against a plain ``transformers.pipeline`` peer and against the hardware, in ONE run.

    python benchmarks/bench_classifier.py                  # bundled model, 512 texts from sent_valid.csv
    python benchmarks/bench_classifier.py --quick          # 128 texts, 2 rounds (a smoke run)
    python benchmarks/bench_classifier.py --onnx           # + ONNX Runtime fp32/int8 (exports once)

Variants, all in one process, on the same texts, with the same torch intra-op thread count:

* peer: ``transformers.pipeline("text-classification", batch_size=64)`` over a sequence-classification
  model with the same encoder architecture (BertForSequenceClassification from our encoder config, 3
  labels; weights do not change the speed), raw texts, fp32 -- what a team gets out of the box;
* peer (same normalised texts): the same pipeline on the texts ours tokenizes (``normalize_text``: URLs
  dropped, ~30% fewer tokens), so "vs peer, same texts" is inference alone and "vs peer, raw texts" also
  counts the URL stripping;
* naive: one ``model(**tokenizer(text))`` per message (fp32, no batching), on the first 128 texts;
* ours, ``TransformerClassifier.predict`` on micro-batches of 64 in fp32, int8, bf16 weights, bf16
  autocast, and **the default** (``dtype = "auto"``: what the load-time probe picked on this host).

Noise: the host is shared, so measurements are interleaved (round r runs every variant once) and the
best round per variant is reported next to the median. Ratios within one run are what count.
Compute: useful model FLOPs from real token counts (benchmarks/work.py) over the best round's time,
against GEMM ceilings measured in the same run, after every round, best kept: a 2048³ matmul and a
1024x384x1536 one (best 4-call window: the optimistic ceiling), and the model's own Linear layers at the
default's median sub-batch rows, timed over whole passes (the sustained one, closer to what a forward pass
can get on a shared host).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import percentile
from benchmarks.work import gemm_gflops, linear_mix_gflops, linear_shapes, model_flops
from monitor.classify.artifact import normalize_text
from monitor.classify.cpu_features import available_cpus
from monitor.classify.precision import Precision
from monitor.classify.training.dataset import DATASET_DIR, read_csv
from monitor.classify.transformer import BucketedClassifier, TransformerClassifier, split_sorted
from monitor.config import REPO_ROOT, ClassifierSettings

SHARED_VALID_CSV = REPO_ROOT.parent / "shared" / "datasets" / "twitter-financial-news-sentiment" / "sent_valid.csv"
PEER_RAW = "peer: transformers.pipeline"
PEER_SAME = "peer (same normalised texts): transformers.pipeline"

SYNTHETIC = [
    "Acme shares plunge after fraud probe https://t.co/abc123",
    "$TSLA beats estimates and raises guidance, stock jumps 8% premarket",
    "Fed holds rates steady; markets await the jobs report later this week",
    "Analysts downgrade Foo Corp to underperform on weak cloud growth and rising costs",
    "Oil slips as inventories build",
]


def valid_csv(given: Path | None) -> Path | None:
    """sent_valid.csv: ``--valid-csv``, else $MONITOR_DATASET_DIR (or the working directory), else
    ../shared/datasets next to the repo -- so that the documented command finds the real texts."""
    candidates = [given] if given is not None else [DATASET_DIR / "sent_valid.csv", SHARED_VALID_CSV]
    return next((path for path in candidates if path.is_file()), None)


def load_texts(path: Path | None, count: int) -> tuple[list[str], str]:
    """``count`` held-out texts from sent_valid.csv when there is one, else synthetic ones, said loudly:
    their lengths and URLs are not the real mix, so every number changes."""
    if path is not None and path.is_file():
        from monitor.classify.topics import load_taxonomy

        return read_csv(path, load_taxonomy()).texts[:count], path.name
    print("warning: no sent_valid.csv found (--valid-csv, $MONITOR_DATASET_DIR, ../shared/datasets): "
          "measuring SYNTHETIC texts", file=sys.stderr)
    return [f"{SYNTHETIC[i % len(SYNTHETIC)]} #{i}" for i in range(count)], "SYNTHETIC texts"


@dataclass
class Variant:
    name: str
    precision: str
    calls: list[Callable[[], object]]
    messages: int
    lengths: list[int]
    """Real token count of every message this variant processes (for the FLOP count)."""
    padded_tokens: int
    ceiling: str
    unit: str = "batch"
    rounds_s: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    forward_rows: list[int] = field(default_factory=list)
    """Padded tokens of each forward pass (ours only: the peer's batching is the pipeline's)."""

    def run_once(self) -> None:
        started = time.perf_counter()
        latencies = []
        for call in self.calls:
            t0 = time.perf_counter()
            call()
            latencies.append((time.perf_counter() - t0) * 1000)
        self.rounds_s.append(time.perf_counter() - started)
        if self.rounds_s[-1] == min(self.rounds_s):
            self.latencies_ms = latencies

    def rate(self) -> float:
        return self.messages / min(self.rounds_s)

    def median_rate(self) -> float:
        return self.messages / statistics.median(self.rounds_s)


def bucketed_forward_rows(lengths: Sequence[int], batch: int, clf: BucketedClassifier) -> list[int]:
    """Padded tokens (the GEMMs' rows) of every forward pass a micro-batched, length-sorted run makes,
    cut the way ``predict`` cuts them."""
    rows: list[int] = []
    for start in range(0, len(lengths), batch):
        ordered = sorted(lengths[start : start + batch])
        begin = 0
        for end in split_sorted(ordered, clf.sub_batch_size, clf.overhead_tokens):
            longest = ordered[end - 1] + -ordered[end - 1] % clf.pad_multiple  # as ``_pad`` rounds it
            rows.append((end - begin) * longest)
            begin = end
    return rows


def ours(name: str, clf: BucketedClassifier, texts: list[str], batch: int, ceiling: str, label: str) -> Variant:
    lengths = [len(ids) for ids in clf._encode(texts)]
    batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    clf.predict(batches[0])  # warm-up (oneDNN primitives, allocator)
    calls: list[Callable[[], object]] = [lambda b=b: clf.predict(b) for b in batches]
    rows = bucketed_forward_rows(lengths, batch, clf)
    return Variant(name, label, calls, len(texts), lengths, sum(rows), ceiling, forward_rows=rows)


def peer(clf: TransformerClassifier, texts: list[str], batch: int, max_length: int, name: str = PEER_RAW) -> Variant:
    """``transformers.pipeline`` over BertForSequenceClassification with our encoder's architecture."""
    from transformers import AutoModelForSequenceClassification, pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    config = clf.model.config.encoder_config()
    config.num_labels = 3
    model = AutoModelForSequenceClassification.from_config(config)
    model.train(False)
    pipe = pipeline("text-classification", model=model, tokenizer=clf.tokenizer, device="cpu")
    kwargs = {"batch_size": batch, "truncation": True, "max_length": max_length}
    pipe(texts[:batch], **kwargs)
    encoded = clf.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    padded = sum(len(lengths[i : i + batch]) * max(lengths[i : i + batch]) for i in range(0, len(lengths), batch))
    call: Callable[[], object] = lambda: pipe(texts, **kwargs)  # noqa: E731 -- one call = the whole list
    return Variant(f"{name}(batch_size={batch})", "float32", [call], len(texts),
                   lengths, padded, "float32", unit="run")


def naive(clf: TransformerClassifier, texts: list[str], max_length: int) -> Variant:
    tokenizer, model = clf.tokenizer, clf.model

    def one(text: str) -> object:
        enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            return model.probabilities(model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]))

    for text in texts[:4]:
        one(text)
    lengths = [len(tokenizer(t, truncation=True, max_length=max_length)["input_ids"]) for t in texts]
    calls: list[Callable[[], object]] = [lambda t=t: one(t) for t in texts]
    return Variant("naive: one model(**tokenizer(text)) per message", "float32", calls, len(texts), lengths,
                   sum(lengths), "float32", unit="message")


def classifier(settings: ClassifierSettings, precision: Precision | None = None) -> TransformerClassifier:
    clf = TransformerClassifier(settings)
    if precision is not None:  # a mode the setting cannot name (bf16 autocast on fp32 weights)
        clf.precision = precision
    return clf


def variants(args: argparse.Namespace, texts: list[str]) -> tuple[list[Variant], TransformerClassifier]:
    base = ClassifierSettings(model_path=args.model, device="cpu", num_threads=args.threads)
    default = classifier(base)
    fp32 = classifier(base.model_copy(update={"dtype": "float32"}))
    bf16 = classifier(base.model_copy(update={"dtype": "bfloat16"}))
    autocast = classifier(base.model_copy(update={"dtype": "float32"}), Precision(torch.float32, True, "bench"))
    int8 = classifier(base.model_copy(update={"quantize_int8": True}))
    b = args.batch_size
    out = [
        peer(fp32, texts, b, base.max_length_tokens),
        peer(fp32, [normalize_text(t) for t in texts], b, base.max_length_tokens, PEER_SAME),  # as ours tokenizes
        naive(fp32, texts[: args.naive_texts], base.max_length_tokens),
        ours("ours: fp32", fp32, texts, b, "float32", "float32"),
        ours("ours: int8 dynamic (quantize_int8)", int8, texts, b, "", "int8"),
        ours("ours: bf16 weights", bf16, texts, b, "bfloat16", "bfloat16"),
        ours("ours: bf16 autocast, fp32 weights", autocast, texts, b, "bfloat16", "float32+autocast-bf16"),
    ]
    chosen = "bfloat16" if default.precision.dtype == torch.bfloat16 or default.precision.autocast else "float32"
    out.append(ours("**ours: default (dtype=auto)**", default, texts, b, chosen, default.precision.label))
    if args.onnx:
        from monitor.classify.onnx_runtime import OnnxClassifier

        onnx = base.model_copy(update={"runtime": "onnxruntime"})
        out.append(ours("ours: ONNX Runtime fp32", OnnxClassifier(onnx), texts, b, "float32", "float32"))
        int8_onnx = OnnxClassifier(onnx.model_copy(update={"quantize_int8": True}))
        out.append(ours("ours: ONNX Runtime int8", int8_onnx, texts, b, "", "int8"))
    return out, default


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model dir or hub id; default: the bundled model")
    p.add_argument("--texts", type=int, default=512, help="messages from sent_valid.csv")
    p.add_argument("--naive-texts", type=int, default=128, help="messages for the (slow) per-message loop")
    p.add_argument("--batch-size", type=int, default=64, help="micro-batch size (ours and the peer)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best and median reported")
    p.add_argument("--quick", action="store_true", help="128 texts, 32 naive, 2 rounds")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads for every variant; 0 = all cores")
    p.add_argument("--onnx", action="store_true", help="add the ONNX Runtime variants (export on first use)")
    p.add_argument("--valid-csv", type=Path, default=None,
                   help="default: $MONITOR_DATASET_DIR/sent_valid.csv, else ../shared/datasets/.../sent_valid.csv")
    args = p.parse_args(list(argv))
    if args.quick:
        args.texts, args.naive_texts, args.rounds = 128, 32, 2

    texts, origin = load_texts(valid_csv(args.valid_csv), args.texts)
    all_variants, default = variants(args, texts)
    threads = torch.get_num_threads()
    print(f"{len(texts)} texts ({origin}), batch {args.batch_size}, torch {torch.__version__}, "
          f"{threads} intra-op threads of {available_cpus()} cpus, load average {os.getloadavg()[0]:.1f}")
    print(f"default precision: {default.precision.label} -- {default.precision.reason}")
    ceilings = {"float32": 0.0, "bfloat16": 0.0}
    square, sustained = dict(ceilings), dict(ceilings)
    shapes = linear_shapes(default.model)
    rows = int(statistics.median(next(v for v in all_variants if "default" in v.name).forward_rows))
    for r in range(max(1, args.rounds)):
        for v in all_variants:
            v.run_once()
        for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):  # best over rounds too
            ceilings[name] = max(ceilings[name], gemm_gflops(dtype, 1024, 384, 1536))
            square[name] = max(square[name], gemm_gflops(dtype, 2048, 2048, 2048, seconds=0.3))
            sustained[name] = max(sustained[name], linear_mix_gflops(shapes, rows, dtype))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print_tables(all_variants, default, texts, Ceilings(ceilings, square, sustained, rows))
    return 0


@dataclass
class Ceilings:
    """GFLOP/s per dtype name: best short window of one matmul, of a 2048³ one, and the model's own
    Linears sustained at ``rows`` rows."""

    model_shaped: dict[str, float]
    square: dict[str, float]
    sustained: dict[str, float]
    rows: int


def print_tables(
    all_variants: list[Variant], default: TransformerClassifier, texts: list[str], ceilings: Ceilings
) -> None:
    cfg = default.model.config.encoder_config()
    layers, hidden = int(cfg.num_hidden_layers), int(cfg.hidden_size)
    raw_rate = next(v for v in all_variants if v.name.startswith(PEER_RAW)).rate()
    same_rate = next(v for v in all_variants if v.name.startswith(PEER_SAME)).rate()
    print("\n| variant | precision | msg/s (best) | msg/s (median) | p50 | p99 | vs peer, raw texts "
          "| vs peer, same normalised texts | useful GFLOP/s | of ceiling | of sustained | tokens (real / padded) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v in all_variants:
        gflops = model_flops(default.model, layers, hidden, v.lengths) / min(v.rounds_s) / 1e9
        share = f"{100 * gflops / ceilings.model_shaped[v.ceiling]:.0f}%" if v.ceiling else "(int8 ops)"
        held = f"{100 * gflops / ceilings.sustained[v.ceiling]:.0f}%" if v.ceiling else "(int8 ops)"
        print(
            f"| {v.name} | {v.precision} | {v.rate():,.0f} | {v.median_rate():,.0f} | "
            f"{percentile(v.latencies_ms, 0.5):.1f} ms/{v.unit} | {percentile(v.latencies_ms, 0.99):.1f} ms/{v.unit} | "
            f"{v.rate() / raw_rate:.1f}x | {v.rate() / same_rate:.1f}x | {gflops:,.0f} | {share} | {held} | "
            f"{sum(v.lengths):,} / {v.padded_tokens:,} |"
        )
    print("\nGEMM ceilings measured in this run (GFLOP/s): " + ", ".join(
        f"{k} {ceilings.model_shaped[k]:,.0f} at 1024x384x1536, {ceilings.square[k]:,.0f} at 2048³, "
        f"sustained {ceilings.sustained[k]:,.0f} (the model's Linears at {ceilings.rows} rows)"
        for k in ceilings.model_shaped
    ))
    stripped = sum(1 for t in texts if normalize_text(t) != t.strip())
    print(f"URL/whitespace normalisation changed {stripped} of {len(texts)} texts before tokenization "
          "(ours and the peer on the same normalised texts).")
    best = next(v for v in all_variants if "default" in v.name).rate()
    print(f"default vs peer on raw texts (what a user would run): {best / raw_rate:.1f}x; "
          f"vs peer on the same normalised texts (inference alone): {best / same_rate:.1f}x")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

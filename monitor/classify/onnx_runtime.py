"""``OnnxClassifier``: the same two-head model, run by ONNX Runtime on CPU.

Why: ONNX Runtime fuses attention and layer-norm kernels that eager torch runs op by op, which pays
on small CPU hosts (numbers in benchmarks/RESULTS.md). The graph is exported from the loaded torch
model once (``torch.onnx.export`` with the dynamo exporter: dynamic batch and sequence axes, the
calibrated probabilities inside the graph) and cached under ``classifier.onnx_cache_dir``, keyed by a
fingerprint of the weights, the config and the library versions, so a retrained model or an upgrade
re-exports and a restart does not. ``quantize_int8`` adds ONNX Runtime's dynamic int8 quantization
of the exported graph (cached too). Tokenization and length bucketing are shared with the torch path.
A cached graph ONNX Runtime cannot load (left damaged by a full disk or a bad copy) is deleted and
exported again, once, instead of failing every start.

Needs the ``onnx`` extra (``pip install 'finsent-monitor[onnx]'``); without it, start-up fails with a
message naming ``classifier.runtime``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from torch import nn

from monitor.classify import ModelLoadError
from monitor.classify.artifact import load_model
from monitor.classify.model import FinSentModel
from monitor.classify.transformer import DEFAULT_SUB_BATCH_SIZE, BucketedClassifier, cpu_threads
from monitor.config import ClassifierSettings

log = structlog.get_logger(__name__)

OPSET = 18
EXPORT_FORMAT = "finsent-onnx-1"
"""Bump when the exported graph's inputs/outputs change, so old cache entries are not reused."""
_EXAMPLE_TEXTS = ["shares plunge after the fraud probe", "ok"]


class _Probabilities(nn.Module):
    """The graph we export: token ids + mask -> calibrated (topic, sentiment) probabilities."""

    def __init__(self, model: FinSentModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.probabilities(self.model(input_ids=input_ids, attention_mask=attention_mask))


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelLoadError(
            "classifier.runtime = 'onnxruntime' needs the onnx extra: pip install 'finsent-monitor[onnx]' "
            "(or set classifier.runtime = 'torch')"
        ) from exc
    return onnxruntime


def _session_errors(ort: Any) -> tuple[type[Exception], ...]:
    """ONNX Runtime's load errors (its own classes, not OSError/RuntimeError subclasses)."""
    state = ort.capi.onnxruntime_pybind11_state
    return tuple(getattr(state, name) for name in ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf",
                                                   "NoSuchFile", "RuntimeException"))


def fingerprint(model: FinSentModel) -> str:
    """Weights, config and exporter/runtime versions: equal fingerprints mean an equal graph."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    digest.update(model.config.to_json_string().encode())
    for dist in ("torch", "onnxruntime", "onnxscript"):
        digest.update(f"{dist}={_version(dist)}".encode())
    digest.update(EXPORT_FORMAT.encode())
    return digest.hexdigest()[:24]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _atomic_target(path: Path) -> Path:
    """A temporary sibling of ``path``; renamed over it once complete, so a concurrent or crashed
    export never leaves a half-written graph that the next start would load."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.onnx", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def export_onnx(model: FinSentModel, example: tuple[torch.Tensor, torch.Tensor], path: Path) -> None:
    tmp = _atomic_target(path)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    axes = {0: batch, 1: seq}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter deprecation chatter
            torch.onnx.export(
                _Probabilities(model).eval(), example, str(tmp), input_names=["input_ids", "attention_mask"],
                output_names=["topic", "sentiment"], dynamic_shapes={"input_ids": axes, "attention_mask": axes},
                opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def quantize_onnx(source: Path, path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _atomic_target(path)
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # the quantizer logs one root INFO line per tensor
    try:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8)
        os.replace(tmp, path)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)


class OnnxClassifier(BucketedClassifier):
    """Implements ``Classifier`` with an ONNX Runtime CPU session over the exported two-head graph."""

    def __init__(self, settings: ClassifierSettings, sub_batch_size: int = DEFAULT_SUB_BATCH_SIZE) -> None:
        ort = _require_onnxruntime()
        if settings.device == "cuda":
            raise ModelLoadError("classifier.runtime = 'onnxruntime' runs on CPU here -- set classifier.device "
                                 "= 'cpu' (or 'auto'), or classifier.runtime = 'torch' for CUDA")
        model, tokenizer = load_model(settings.model_path)
        model.train(False)
        super().__init__(tokenizer, model, settings.max_length_tokens, sub_batch_size)
        options = ort.SessionOptions()
        options.intra_op_num_threads = cpu_threads(settings.num_threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = self._session(ort, options, model, Path(settings.onnx_cache_dir), settings.quantize_int8)
        self.quantized = settings.quantize_int8
        self.name = f"onnxruntime:{settings.model_path or 'default'}{'-int8' if self.quantized else ''}"
        log.info("classifier_loaded", name=self.name, graph=str(self.graph_path), exported=self.exported,
                 threads=options.intra_op_num_threads)

    def _session(self, ort: Any, options: Any, model: FinSentModel, cache_dir: Path, quantize: bool) -> Any:
        """A session over this model's cached graph; a cached graph that fails to load is deleted and built
        again once (a graph built now that fails would fail again: that is a one-line ModelLoadError)."""
        key = fingerprint(model)
        errors: tuple[type[Exception], ...] = (OSError, *_session_errors(ort))
        while True:
            self.graph_path, self.exported = self._graph(model, cache_dir, key, quantize)
            try:
                return ort.InferenceSession(str(self.graph_path), options, providers=["CPUExecutionProvider"])
            except errors as exc:
                reason = " ".join(str(exc).split())[:200]
                if self.exported:
                    raise ModelLoadError(
                        f"ONNX Runtime cannot load {self.graph_path} ({reason}) (classifier.onnx_cache_dir) -- check "
                        "the disk space and that the directory is writable, or set classifier.runtime = 'torch'"
                    ) from exc
                log.warning("onnx_cache_unreadable", path=str(self.graph_path), error=reason)
                for name in (f"{key}.onnx", f"{key}-int8.onnx"):
                    (cache_dir / name).unlink(missing_ok=True)

    def _graph(self, model: FinSentModel, cache_dir: Path, key: str, quantize: bool) -> tuple[Path, bool]:
        """The cached graph for this model (exporting and quantizing it if missing); True if it was built now."""
        fp32 = cache_dir / f"{key}.onnx"
        built = False
        if not fp32.is_file():
            log.info("onnx_export_started", path=str(fp32))
            export_onnx(model, self._pad(self._encode(_EXAMPLE_TEXTS)), fp32)
            built = True
        if not quantize:
            return fp32, built
        int8 = cache_dir / f"{key}-int8.onnx"
        if not int8.is_file():
            quantize_onnx(fp32, int8)
            built = True
        return int8, built

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        topic, sentiment = self.session.run(
            None, {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()}
        )
        return torch.from_numpy(np.asarray(topic, dtype=np.float32)), torch.from_numpy(
            np.asarray(sentiment, dtype=np.float32)
        )


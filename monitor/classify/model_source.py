"""Which directory ``classifier.model_path`` names: a local directory, or a hub id's cached snapshot.

Why not hand the string to ``from_pretrained``: a mistyped path is then taken for a hub id, and on a
host without network the hub client retries for minutes before it blames the network. So a value that
looks like a path is a path (and a missing one says so at once), and a hub id is read from the local
hub cache only, unless the user opted in to downloads with ``HF_HUB_OFFLINE=0``: the daemon must start
the same way with or without a network. Imports no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.classify import ModelLoadError

SETTING = "classifier.model_path"
HUB_FILES = ["*.json", "*.safetensors", "pytorch_model*.bin", "*.txt", "*.model"]
"""What a hub snapshot needs: configs, weights (safetensors, or torch's format where that is all a repo has),
tokenizer vocabularies (no .onnx copies)."""
_OFF = ("0", "false", "no", "off")


def is_local_path(value: str) -> bool:
    """True when ``value`` can only be a path: hub ids are ``name`` or ``org/name``, so an absolute,
    ``./``, ``../`` or ``~`` path, one with two separators, or anything that exists on disk is local."""
    return (
        os.path.isabs(value)
        or value.startswith(("./", "../", "~", f".{os.sep}", f"..{os.sep}"))
        or value.count(os.sep) > 1
        or os.path.exists(value)
    )


def downloads_allowed() -> bool:
    """Hub downloads only where ``HF_HUB_OFFLINE`` is set to a false value (``0``) explicitly."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _OFF


def locate_model(value: str, setting: str = SETTING) -> Path:
    """The local directory ``value`` (a path or a hub id) names; a one-line ModelLoadError otherwise, naming
    ``setting`` (a command's flag, e.g. ``monitor eval --model``, where the configuration key was named)."""
    if is_local_path(value):
        directory = Path(value).expanduser()
        if not directory.is_dir():
            raise ModelLoadError(
                f"directory not found: {value} ({setting}) -- point it at a directory written by "
                "`monitor train --output DIR` (or empty for the bundled model)"
            )
        return directory
    return hub_snapshot(value, setting)


def hub_snapshot(repo_id: str, setting: str = SETTING) -> Path:
    """The cached snapshot of hub model ``repo_id`` (downloaded first only where downloads are allowed)."""
    from huggingface_hub import snapshot_download

    online = downloads_allowed()
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=not online))
    except (OSError, ValueError) as exc:
        if online:
            reason = " ".join(str(exc).split())[:200]
            raise ModelLoadError(
                f"cannot download hub id {repo_id!r} ({setting}): {reason} -- check the id and the network, "
                "or point it at a local directory"
            ) from exc
        raise ModelLoadError(
            f"hub id {repo_id!r} is not in the local hub cache ({setting}) -- set HF_HUB_OFFLINE=0 to download "
            f"it, or point it at a local directory (./{repo_id} if that is a relative path)"
        ) from exc

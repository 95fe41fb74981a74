"""The built wheel runs anywhere: installed outside the repository and run from an empty directory,
it finds its configs, taxonomy, demo data and model inside the package.

One module-scoped build (``pip wheel --no-deps`` on a copy of the source tree, so a stale ``build/``
in the checkout cannot leak into it), installed with ``pip install --no-deps --target``; the
dependencies come from this interpreter's environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("pyproject.toml", "README.md", "monitor", "consumers", "alerts", "configs", "data")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, symlinks=False, ignore=skip)  # symlinks become real files
        else:
            shutil.copy2(source, src / name)
    out = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    [built] = out.glob("finsent_monitor-*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return target


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """An empty working directory with no repository around it."""
    cwd = tmp_path / "anywhere"
    cwd.mkdir()
    yield cwd


def monitor(site: Path, cwd: Path, *argv: str, timeout_s: float = 300, **env: str
            ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    clean.update(PYTHONPATH=str(site), **env)
    return subprocess.run([sys.executable, "-m", "monitor.cli", *argv], cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=timeout_s)


def test_wheel_carries_the_configs_taxonomy_demo_data_and_model(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for packaged in ("monitor/configs/default.toml", "monitor/configs/production.toml",
                     "monitor/configs/taxonomy.toml", "monitor/data/demo_stream.jsonl",
                     "monitor/data/demo_incidents.csv", "monitor/classify/default_model/delta.safetensors"):
        assert packaged in names, packaged
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("monitor/configs/default.toml") == (ROOT / "configs" / "default.toml").read_bytes()


def test_installed_wheel_replays_the_packaged_demo_from_an_empty_directory_and_prints_alerts(
    site: Path, elsewhere: Path,
) -> None:
    probe = subprocess.run([sys.executable, "-c", "import monitor; print(monitor.__file__)"], cwd=elsewhere,
                           env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, check=True)
    assert probe.stdout.strip().startswith(str(site)), "the test must exercise the installed copy"
    # the lexicon classifier keeps this fast; the bundled model's files are checked in the wheel above
    result = monitor(site, elsewhere, "run", MONITOR_CLASSIFIER__KIND="lexicon")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "processed 4230 messages" in result.stderr
    assert "[FIRING] negative sentiment spike" in result.stderr and "ticker:BA" in result.stderr
    alerts = [json.loads(line) for line in (elsewhere / "var" / "alerts.jsonl").read_text().splitlines()]
    assert any(a["status"] == "firing" for a in alerts)  # outputs land in the working directory


def test_version_and_init_work_from_the_wheel_and_the_starter_config_loads(site: Path, elsewhere: Path) -> None:
    version = monitor(site, elsewhere, "--version")
    assert version.returncode == 0 and version.stdout.startswith("monitor 0.")
    init = monitor(site, elsewhere, "init", "cfg")
    assert init.returncode == 0, init.stderr
    assert (elsewhere / "cfg" / "monitor.toml").is_file() and (elsewhere / "cfg" / "production.toml").is_file()
    shown = monitor(site, elsewhere, "--config", "cfg/monitor.toml", "config")
    assert shown.returncode == 0, shown.stderr
    [replayed] = json.loads(shown.stdout)["source"]["replay_paths"]
    assert replayed.startswith(str(site)) and replayed.endswith("demo_stream.jsonl")  # the packaged demo
    again = monitor(site, elsewhere, "init", "cfg")
    assert again.returncode == 1 and "--force" in again.stderr


def test_eval_from_the_wheel_without_a_dataset_is_one_line_naming_the_variable(site: Path, elsewhere: Path) -> None:
    result = monitor(site, elsewhere, "eval", "--skip-int8")
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert err[-1].startswith("error: dataset file") and "MONITOR_DATASET_DIR" in err[-1]
    assert "Traceback" not in result.stderr

"""The labelled CSV reader fails with a message that says what to fix (never a KeyError traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.classify.topics import load_taxonomy
from monitor.classify.training.dataset import DatasetError, read_csv
from monitor.cli import main


def test_reads_text_and_label_through_the_taxonomy_label_map(tmp_path: Path) -> None:
    csv = tmp_path / "v.csv"
    csv.write_text('text,label\n"Stocks slump",0\n"Shares jump",1\n"Board meets",2\n')
    data = read_csv(csv, load_taxonomy())
    assert data.texts == ["Stocks slump", "Shares jump", "Board meets"]
    assert data.sentiments == [0, 2, 1]  # negative, positive, neutral in SENTIMENT_LABELS order


def test_missing_file_names_the_environment_variable(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="MONITOR_DATASET_DIR"):
        read_csv(tmp_path / "sent_valid.csv", load_taxonomy())


def test_csv_without_label_column_says_which_header_is_needed(tmp_path: Path) -> None:
    csv = tmp_path / "v.csv"
    csv.write_text("text,sentiment\nhello,0\n")
    with pytest.raises(DatasetError, match=r"no \['label'\] column.*'text,label'"):
        read_csv(csv, load_taxonomy())


def test_unknown_label_names_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "v.csv"
    csv.write_text("text,label\nhello,0\nworld,7\n")
    with pytest.raises(DatasetError, match=r"v\.csv:3: label '7'"):
        read_csv(csv, load_taxonomy())


def test_monitor_eval_on_a_csv_without_label_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    csv = tmp_path / "v.csv"
    csv.write_text("text\nhello\n")
    assert main(["eval", "--valid-csv", str(csv), "--skip-int8"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "'label'" in err

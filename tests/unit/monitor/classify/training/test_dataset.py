"""The labelled CSV reader fails with a message that says what to fix (never a KeyError traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.classify.topics import load_taxonomy
from monitor.classify.training.dataset import DatasetError, read_csv, read_topic_csv, read_unlabelled
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


def _csv(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "v.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_row_with_more_cells_than_the_header_is_refused_naming_the_line_and_the_quoting_fix(tmp_path: Path) -> None:
    """Found by review: an unquoted comma in ``Sales up 10,1,2`` trained as ('Sales up 10', positive)."""
    csv = _csv(tmp_path, 'text,label\n"Shares jump",1\nSales up 10,1,2\n')
    with pytest.raises(DatasetError, match=r"v\.csv:3: 1 cell\(s\) more than the header's columns -- quote") as err:
        read_csv(csv, load_taxonomy())
    assert "\n" not in str(err.value)


def test_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    """Found by review: csv.DictReader silently kept the last of two ``label`` columns."""
    with pytest.raises(DatasetError, match=r"v\.csv:1: column\(s\) \['label'\] named twice"):
        read_csv(_csv(tmp_path, "text,label,label\nhello,1,2\n"), load_taxonomy())


@pytest.mark.parametrize("content", ["\ufefftext,label\nShares jump,1\n", "\ufefflabel,text\n1,Shares jump\n"])
def test_excel_csv_utf8_with_a_byte_order_mark_is_read(tmp_path: Path, content: str) -> None:
    data = read_csv(_csv(tmp_path, content), load_taxonomy())
    assert (data.texts, data.sentiments) == (["Shares jump"], [2])


def test_bytes_that_are_not_utf8_are_a_dataset_error_naming_the_line(tmp_path: Path) -> None:
    csv = _csv(tmp_path, "text,label\nShares jump,1\nNestl\xe9 up,1\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"v\.csv:3: bytes that are not UTF-8 .* save the file as UTF-8"):
        read_csv(csv, load_taxonomy())


@pytest.mark.parametrize(("content", "message"), [("text,label\n", "no data rows"), ("", "is empty")])
def test_csv_without_data_rows_is_refused(tmp_path: Path, content: str, message: str) -> None:
    """Found by review: ``monitor train`` / ``eval`` failed after loading the model with a torch.cat error."""
    with pytest.raises(DatasetError, match=message):
        read_csv(_csv(tmp_path, content), load_taxonomy())


def test_monitor_eval_on_a_csv_without_data_rows_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    csv = _csv(tmp_path, "text,label\n")
    assert main(["eval", "--valid-csv", str(csv), "--skip-int8"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "no data rows" in err


@pytest.mark.parametrize("text", ["", "   "])
def test_row_with_an_empty_text_is_refused_naming_the_line(tmp_path: Path, text: str) -> None:
    """Refused, not skipped, like a bad label: a blank labelled row is a broken export, and skipping it would
    silently change the row count an evaluation reports."""
    with pytest.raises(DatasetError, match=r"v\.csv:3: empty text"):
        read_csv(_csv(tmp_path, f"text,label\nShares jump,1\n{text},0\n"), load_taxonomy())


def test_error_after_a_quoted_multiline_text_names_that_rows_own_line(tmp_path: Path) -> None:
    csv = _csv(tmp_path, 'text,label\n"Shares jump,\nagain",1\n\nhello,7\n')
    with pytest.raises(DatasetError, match=r"v\.csv:5: label '7'"):
        read_csv(csv, load_taxonomy())


def test_unlabelled_csv_with_a_byte_order_mark_keeps_its_text_column(tmp_path: Path) -> None:
    csv = _csv(tmp_path, "\ufefftext\nShares jump\n")
    assert read_unlabelled(csv, 0, 13, set()) == ["Shares jump"]


def test_unknown_label_error_lists_the_id_to_name_map(tmp_path: Path) -> None:
    # the sentiment ids are 0=negative, 1=positive, 2=neutral (not the natural order): 0/1/2 written in the natural
    # order trained positive and neutral swapped, and the error did not show the map
    csv = _csv(tmp_path, "text,label\nhello,bearish\n")
    with pytest.raises(DatasetError, match=r"v\.csv:2: label 'bearish' .*\(0=negative, 1=positive, 2=neutral\)"):
        read_csv(csv, load_taxonomy())


def test_sentiment_labels_written_as_names_in_any_case_are_read(tmp_path: Path) -> None:
    csv = _csv(tmp_path, "text,label\nStocks slump,negative\nShares jump,Positive\nBoard meets, NEUTRAL\n")
    assert read_csv(csv, load_taxonomy()).sentiments == [0, 2, 1]  # SENTIMENT_LABELS order, as for ids 0, 1, 2


def test_topic_labels_written_as_names_in_any_case_are_read(tmp_path: Path) -> None:
    taxonomy = load_taxonomy()
    csv = _csv(tmp_path, "text,label\nFed holds,Central_Banks\nEPS beat,earnings\nEPS miss,5\n")
    index = taxonomy.names.index
    assert read_topic_csv(csv, taxonomy).labels == [index("central_banks"), index("earnings"), index("earnings")]


def test_unknown_topic_label_error_lists_the_id_to_name_map(tmp_path: Path) -> None:
    csv = _csv(tmp_path, "text,label\nFed holds,fed\n")
    with pytest.raises(DatasetError, match=r"v\.csv:2: label 'fed' .*\[topic_labels\] ids \(0=analyst_update, "):
        read_topic_csv(csv, load_taxonomy())


@pytest.mark.parametrize("header", ["Text,Label", " text , LABEL ", "TEXT,label"])
def test_header_names_are_read_without_case_and_surrounding_spaces(tmp_path: Path, header: str) -> None:
    # replay CSVs accept them; 'Text,Label' was refused here
    csv = _csv(tmp_path, f"{header}\nStocks slump,0\n")
    assert read_csv(csv, load_taxonomy()).texts == ["Stocks slump"]


def test_header_naming_a_column_twice_in_different_case_is_refused(tmp_path: Path) -> None:
    csv = _csv(tmp_path, "text,label,Label\nStocks slump,0,1\n")
    with pytest.raises(DatasetError, match=r"v\.csv:1: column\(s\) \['label'\] named twice"):
        read_csv(csv, load_taxonomy())


def test_unlabelled_csv_text_column_is_read_without_case(tmp_path: Path) -> None:
    csv = _csv(tmp_path, " Text \nShares jump\n")
    assert read_unlabelled(csv, 0, 13, set()) == ["Shares jump"]


@pytest.mark.parametrize(("line", "shown"), [("not json", "not a JSON object"), ('["a list"]', "a JSON list")])
def test_unlabelled_jsonl_line_that_is_not_an_object_is_refused_naming_file_and_line(
    tmp_path: Path, line: str, shown: str,
) -> None:
    # it was a bare "JSONDecodeError: Expecting value: line 1 column 1" with no file or line
    path = tmp_path / "u.jsonl"
    path.write_text(f'{{"text": "Shares jump"}}\n\n{line}\n')
    with pytest.raises(DatasetError, match=rf"u\.jsonl:3: {shown}"):
        read_unlabelled(path, 0, 13, set())


def test_monitor_pretrain_on_a_bad_jsonl_line_is_a_one_line_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "u.jsonl"
    path.write_text("{oops\n")
    assert main(["pretrain", "--text", str(path), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}:1: not a JSON object") and "\n" not in err

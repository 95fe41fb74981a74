from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from monitor.classify import ModelLoadError
from monitor.classify.artifact import DELTA_WEIGHTS, load_model, pad, tokenize
from monitor.classify.topics import load_taxonomy
from monitor.classify.training.dataset import SENTIMENT_LABELS
from monitor.classify.training.distill import soft_cross_entropy, teacher_probabilities
from monitor.classify.training.train import IGNORE, Trainer, build_parser, train_command
from tests.unit.monitor.classify.training.test_train import _train

from ..conftest import save_tiny_two_head


def _args(base: Path, csv: Path, topic_csv: Path, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args(
        ["--output", "unused", "--base-model", str(base), "--train-csv", str(csv), "--topic-csv", str(topic_csv),
         "--train-layers", "1", *extra]
    )


def test_soft_cross_entropy_of_one_hot_targets_is_the_usual_cross_entropy() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    labels = torch.tensor([0, 2])
    one_hot = nn.functional.one_hot(labels, 3).float()
    expected = nn.functional.cross_entropy(logits, labels).item()
    assert soft_cross_entropy(logits, one_hot).item() == pytest.approx(expected)


def test_a_teacher_labels_every_row_for_both_heads(
    tiny_base_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher"
    assert _train(tiny_base_dir, tiny_csv, teacher, topic_csv=tiny_topic_csv) == 0
    trainer = Trainer(_args(tiny_base_dir, tiny_csv, tiny_topic_csv, "--teacher", str(teacher)))
    assert trainer.soft is not None
    sentiment, topic = trainer.soft
    rows = len(trainer.corpus.texts)
    assert sentiment.shape == (rows, len(SENTIMENT_LABELS))
    assert topic.shape == (rows, len(load_taxonomy(None).names))
    assert torch.allclose(sentiment.sum(-1), torch.ones(rows), atol=1e-4)
    # the topic tweets (no sentiment label) get the teacher's sentiment, and the other way round
    assert any(s == IGNORE for s in trainer.corpus.sentiments) and any(t == IGNORE for t in trainer.corpus.topics)
    batch = trainer.batches(trainer.corpus.train, 4, None)[0]
    assert batch[4] is not None and batch[5] is not None and batch[4].shape[0] == batch[0].shape[0]


def test_a_student_of_a_teacher_trains_differently_from_one_without(
    tiny_base_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher"
    _train(tiny_base_dir, tiny_csv, teacher, topic_csv=tiny_topic_csv)
    _train(tiny_base_dir, tiny_csv, tmp_path / "plain", topic_csv=tiny_topic_csv)
    _train(tiny_base_dir, tiny_csv, tmp_path / "student", "--teacher", str(teacher), topic_csv=tiny_topic_csv)
    plain = load_file(str(tmp_path / "plain" / DELTA_WEIGHTS))
    student = load_file(str(tmp_path / "student" / DELTA_WEIGHTS))
    assert not all(torch.equal(plain[k], student[k]) for k in plain)


def test_moving_average_weights_are_the_ones_validated_and_kept(
    tiny_base_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path
) -> None:
    _train(tiny_base_dir, tiny_csv, tmp_path / "raw", topic_csv=tiny_topic_csv)
    _train(tiny_base_dir, tiny_csv, tmp_path / "ema", "--ema-decay", "0.9", topic_csv=tiny_topic_csv)
    raw = load_file(str(tmp_path / "raw" / DELTA_WEIGHTS))
    ema = load_file(str(tmp_path / "ema" / DELTA_WEIGHTS))
    assert raw.keys() == ema.keys()
    assert not all(torch.equal(raw[k], ema[k]) for k in raw)


def test_split_seed_fixes_the_validation_slices_whatever_the_seed(
    tiny_base_dir: Path, tiny_csv: Path, tiny_topic_csv: Path
) -> None:
    same = Trainer(_args(tiny_base_dir, tiny_csv, tiny_topic_csv, "--seed", "5", "--split-seed", "13")).corpus
    default = Trainer(_args(tiny_base_dir, tiny_csv, tiny_topic_csv)).corpus
    assert same.sentiment_val == default.sentiment_val and same.topic_val == default.topic_val


def test_unlabelled_texts_train_only_through_the_teachers_and_never_repeat_a_labelled_row(
    tiny_base_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher"
    _train(tiny_base_dir, tiny_csv, teacher, topic_csv=tiny_topic_csv)
    labelled = Trainer(_args(tiny_base_dir, tiny_csv, tiny_topic_csv, "--teacher", str(teacher))).corpus
    extra = tmp_path / "tweets.jsonl"
    texts = ["RT @desk: $XYZ halts trading after fraud probe", "$XYZ halts trading after fraud probe",
             "Quiet day for bonds", labelled.texts[0], ""]
    lines = [json.dumps({"text": t}) for t in texts]
    extra.write_text("\n".join(lines) + "\n", encoding="utf-8")
    trainer = Trainer(
        _args(tiny_base_dir, tiny_csv, tiny_topic_csv, "--teacher", str(teacher), "--unlabelled", str(extra))
    )
    added = trainer.corpus.texts[len(labelled.texts):]
    # the retweet prefix goes, the copy it makes, the labelled row and the empty text are left out
    assert sorted(added) == ["$XYZ halts trading after fraud probe", "Quiet day for bonds"]
    new_rows = range(len(labelled.texts), len(trainer.corpus.texts))
    assert all(trainer.corpus.sentiments[i] == IGNORE and trainer.corpus.topics[i] == IGNORE for i in new_rows)
    assert set(new_rows) <= set(trainer.corpus.train)
    assert trainer.corpus.sentiment_val == labelled.sentiment_val and trainer.corpus.topic_val == labelled.topic_val
    assert trainer.soft is not None and trainer.soft[0].shape[0] == len(trainer.corpus.texts)


def test_unlabelled_texts_without_a_teacher_are_refused(tiny_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--unlabelled needs --teacher"):
        train_command(["--output", str(tmp_path / "m"), "--train-csv", str(tiny_csv), "--unlabelled", str(tiny_csv)])


def test_teachers_label_in_exact_fp32_unless_the_student_trains_in_bf16(tiny_model_dir: Path) -> None:
    texts = ["shares plunge after fraud probe", "apple beats estimates", "ok"]
    model, tokenizer = load_model(str(tiny_model_dir))
    model.train(False)
    ids, mask = pad(tokenize(tokenizer, texts, 32), int(tokenizer.pad_token_id or 0))
    with torch.no_grad():
        topic, sentiment = model.probabilities(model(input_ids=ids, attention_mask=mask))
    labels = (list(model.config.topic_labels), list(model.config.sentiment_labels))
    soft_sentiment, soft_topic = teacher_probabilities([tiny_model_dir], texts, 32, *labels, bf16=False)
    assert torch.allclose(soft_sentiment, sentiment, atol=1e-6) and torch.allclose(soft_topic, topic, atol=1e-6)


def _teacher(tmp_path: Path, **recorded: object) -> Path:
    """A random teacher of the shipped taxonomy whose training_summary.json records ``recorded``."""
    teacher = save_tiny_two_head(tmp_path / "teacher", list(load_taxonomy().names), seed=2)
    summary = {"split_seed": recorded.pop("split_seed", 13), "valid_fraction": 0.1, "args": recorded}
    (teacher / "training_summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return teacher


def test_a_teacher_trained_on_another_split_is_refused(
    tiny_base_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path
) -> None:
    """Found by review: a teacher of --split-seed 5 had trained on 26 of the student's 30 validation rows."""
    teacher = _teacher(tmp_path, split_seed=5)
    with pytest.raises(SystemExit, match=r"^error: --teacher \S*teacher was trained with --split-seed 5, this run has "
                                         r"13 -- .* pass --split-seed 5 \(or retrain"):
        Trainer(_args(tiny_base_dir, tiny_csv, tiny_topic_csv, "--teacher", str(teacher)))
    (tmp_path / "other.csv").write_text("text,label\nanother file,1\n", encoding="utf-8")
    other = _teacher(tmp_path / "b", train_csv=str(tmp_path / "other.csv"), topic_csv=str(tiny_topic_csv))
    with pytest.raises(SystemExit, match=r"trained with --train-csv \S*other\.csv, this run has \S*train\.csv"):
        Trainer(_args(tiny_base_dir, tiny_csv, tiny_topic_csv, "--teacher", str(other)))
    # the same split; an older summary's relative path (to an unknown working directory) is not compared
    same = _teacher(tmp_path / "c", train_csv="data/sent.csv", topic_csv=str(tiny_topic_csv), max_examples="None")
    assert Trainer(_args(tiny_base_dir, tiny_csv, tiny_topic_csv, "--teacher", str(same))).soft is not None


def test_a_teacher_trained_on_the_same_file_under_another_path_or_a_gone_one_is_accepted(
    tiny_base_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by the regression review: paths were compared, so a teacher trained on an identical copy (another
    machine, a moved dataset folder) was refused, with a fix naming a path that may not exist."""
    copy = tmp_path / "copies" / "sent_train.csv"
    copy.parent.mkdir()
    copy.write_bytes(tiny_csv.read_bytes())
    same = _teacher(tmp_path / "a", train_csv=str(copy), topic_csv=str(tiny_topic_csv))
    assert Trainer(_args(tiny_base_dir, tiny_csv, tiny_topic_csv, "--teacher", str(same))).soft is not None
    gone = _teacher(tmp_path / "b", train_csv=str(tmp_path / "gone" / "sent_train.csv"), topic_csv=str(tiny_topic_csv))
    assert Trainer(_args(tiny_base_dir, tiny_csv, tiny_topic_csv, "--teacher", str(gone))).soft is not None
    assert "gone/sent_train.csv is gone: its split cannot be compared" in capsys.readouterr().err


def test_a_missing_teacher_is_an_error_naming_the_teacher_flag(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"hub id 'nope' .*\(--teacher\)"):
        teacher_probabilities([Path("nope")], ["ok"], 32, ["a"], SENTIMENT_LABELS, bf16=False)

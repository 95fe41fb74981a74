from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from torch import nn

from monitor.classify.artifact import DELTA_WEIGHTS, load_model, new_model, normalize_text
from monitor.classify.topics import load_taxonomy
from monitor.classify.training import train
from monitor.classify.training.dataset import DatasetError, is_headline_style, read_csv, topic_holdout
from monitor.classify.training.train import (
    IGNORE,
    Trainer,
    build_parser,
    frozen_states,
    load_corpus,
    masked_loss,
    pad,
    tokenize,
    top_forward,
    train_command,
)
from monitor.classify.transformer import TransformerClassifier
from monitor.config import ClassifierSettings


@pytest.fixture
def topic_csv(tiny_topic_csv: Path) -> Path:
    return tiny_topic_csv


def _train(base: Path, csv: Path, out: Path, *extra: str, topic_csv: Path | None = None) -> int:
    topic = topic_csv or csv.parent / "topic.csv"
    return train_command(
        [
            "--output",
            str(out),
            "--base-model",
            str(base),
            "--train-csv",
            str(csv),
            "--topic-csv",
            str(topic),
            "--epochs",
            "2",
            "--train-layers",
            "1",
            "--batch-size",
            "8",
            *extra,
        ]
    )


def test_cached_lower_layers_plus_top_layers_equal_the_full_forward(tiny_base_dir: Path) -> None:
    model, tokenizer = new_model(str(tiny_base_dir), ["a", "b"], ["negative", "neutral", "positive"])
    model.eval()
    ids = tokenize(
        tokenizer, ["shares plunge after fraud probe", "ok", "apple beats estimates on strong profit"], 32
    )
    states = frozen_states(model, ids, 1, 0)
    input_ids, mask = pad(ids, 0)
    hidden = torch.zeros((len(ids), input_ids.shape[1], states[0].shape[1]))
    for row, state in enumerate(states):
        hidden[row, : state.shape[0]] = state
    with torch.no_grad():
        topic, sentiment = top_forward(model, hidden, mask, 1)
        full = model(input_ids=input_ids, attention_mask=mask)
    assert torch.allclose(sentiment, full.sentiment_logits, atol=1e-5)
    assert torch.allclose(topic, full.topic_logits, atol=1e-5)


def test_delta_artifact_holds_only_heads_and_trained_layers_and_loads(
    tiny_base_dir: Path, tiny_csv: Path, topic_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "delta"
    assert _train(tiny_base_dir, tiny_csv, out) == 0
    names = set(load_file(str(out / DELTA_WEIGHTS)))
    assert any(n.startswith("encoder.encoder.layer.1.") for n in names)
    assert not any(n.startswith(("encoder.encoder.layer.0.", "encoder.embeddings.")) for n in names)
    assert {"topic_head.weight", "sentiment_head.weight"} <= names
    model, _ = load_model(str(out))
    assert model.config.trained_layers == [1]
    assert model.config.topic_labels == list(load_taxonomy().names)
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["best_epoch"] in (1, 2)
    assert (summary["split_seed"], summary["valid_fraction"]) == (13, 0.1)  # what monitor eval reads back
    assert summary["topic_validation_rows"] == 5 and summary["held_out"]["topic"]["rows"] == 5
    prediction = TransformerClassifier(ClassifierSettings(model_path=str(out))).predict(["shares plunge"])[0]
    assert sum(prediction.sentiment_probs) == pytest.approx(1.0, abs=1e-5)


def test_training_is_deterministic_for_a_fixed_seed(
    tiny_base_dir: Path, tiny_csv: Path, topic_csv: Path, tmp_path: Path
) -> None:
    _train(tiny_base_dir, tiny_csv, tmp_path / "one")
    _train(tiny_base_dir, tiny_csv, tmp_path / "two")
    one, two = (
        load_file(str(tmp_path / "one" / DELTA_WEIGHTS)),
        load_file(str(tmp_path / "two" / DELTA_WEIGHTS)),
    )
    assert one.keys() == two.keys()
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_full_export_is_a_standard_save_pretrained_directory(
    tiny_base_dir: Path, tiny_csv: Path, topic_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "full"
    assert _train(tiny_base_dir, tiny_csv, out, "--full") == 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not (out / DELTA_WEIGHTS).exists()
    assert len(TransformerClassifier(ClassifierSettings(model_path=str(out))).predict(["apple beats"])) == 1


def test_normalize_text_drops_urls_and_squeezes_whitespace() -> None:
    assert normalize_text("  $AAPL up  https://t.co/xyz  now\n") == "$AAPL up now"


def test_normalize_text_unescapes_html_entities_as_in_the_topic_dataset() -> None:
    assert normalize_text("Exxon &amp; more  https://t.co/QPN8Gwl7Uh") == "Exxon & more"


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="&"), max_size=80))
def test_normalize_text_is_idempotent_and_leaves_no_urls(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert "http://" not in once and "https://" not in once


def test_masked_loss_ignores_rows_without_the_heads_label() -> None:
    ce = nn.CrossEntropyLoss(ignore_index=IGNORE)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, IGNORE, 2])
    expected = nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([0, 2]))
    assert masked_loss(ce, logits, labels).item() == pytest.approx(expected.item())
    none = masked_loss(ce, logits, torch.tensor([IGNORE] * 3))
    assert none.item() == 0.0 and none.requires_grad


def _args(csv: Path, topic_csv: Path, *extra: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(
        ["--output", "x", "--train-csv", str(csv), "--topic-csv", str(topic_csv), *extra]
    )


def test_corpus_carries_one_label_per_row_and_holds_out_both_files(tiny_csv: Path, topic_csv: Path) -> None:
    corpus = load_corpus(_args(tiny_csv, topic_csv))
    assert len(corpus.texts) == 135
    sentiment_rows = [i for i in range(135) if corpus.sentiments[i] != IGNORE]
    topic_rows = [i for i in range(135) if corpus.topics[i] != IGNORE]
    assert (len(sentiment_rows), len(topic_rows)) == (60, 75) and not set(sentiment_rows) & set(topic_rows)
    assert (len(corpus.sentiment_val), len(corpus.topic_val)) == (6, 5)  # 10% of each class
    assert not set(corpus.train) & (set(corpus.sentiment_val) | set(corpus.topic_val))
    assert set(corpus.sentiment_val) <= set(sentiment_rows) and set(corpus.topic_val) <= set(topic_rows)


def test_eval_topic_slice_is_exactly_the_rows_training_held_out(tiny_csv: Path, topic_csv: Path) -> None:
    corpus = load_corpus(_args(tiny_csv, topic_csv))
    held = topic_holdout(topic_csv, load_taxonomy(), 0.1, 13)
    assert held.texts == [corpus.texts[i] for i in corpus.topic_val]
    assert held.labels == [corpus.topics[i] for i in corpus.topic_val]


def test_ood_headline_rows_never_reach_training_and_are_scored(
    tiny_base_dir: Path, tmp_path: Path, topic_csv: Path
) -> None:
    csv_path = tmp_path / "mixed.csv"
    rows = [("$ACME shares plunge after fraud probe", 0), ("$ACME beats estimates", 1), ("$ACME reports", 2)]
    rows += [("company reports bankruptcy", 0), ("strong quarter results", 1), ("ceo of the company", 2)]
    csv_path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows * 8), encoding="utf-8")
    corpus = load_corpus(_args(csv_path, topic_csv, "--ood-style", "headline"))
    assert len(corpus.ood) == 24 and all(is_headline_style(corpus.texts[i]) for i in corpus.ood)
    assert not set(corpus.ood) & (set(corpus.train) | set(corpus.sentiment_val))
    out = tmp_path / "ood"
    assert _train(tiny_base_dir, csv_path, out, "--ood-style", "headline", topic_csv=topic_csv) == 0
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["ood_rows"] == 24 and summary["held_out"]["ood_headline_sentiment"]["rows"] == 24


def test_missing_dataset_is_a_one_line_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope\.csv not found") as err:
        read_csv(tmp_path / "nope.csv", load_taxonomy())
    assert "\n" not in str(err.value)


def test_csv_without_label_column_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "unlabelled.csv"
    path.write_text("text\nhello\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"no \['label'\] column") as err:
        read_csv(path, load_taxonomy())
    assert "\n" not in str(err.value)


def test_missing_training_csvs_name_the_flag_and_the_environment_variable(
    tmp_path: Path, tiny_csv: Path, topic_csv: Path
) -> None:
    absent = str(tmp_path / "absent.csv")
    with pytest.raises(DatasetError, match=r"absent\.csv not found -- pass --train-csv PATH, or set MONITOR_DATASET"):
        train_command(["--output", str(tmp_path / "m"), "--train-csv", absent, "--topic-csv", str(topic_csv)])
    with pytest.raises(DatasetError, match=r"pass --topic-csv PATH, or set MONITOR_TOPIC_DATASET_DIR"):
        load_corpus(_args(tiny_csv, tmp_path / "absent.csv"))


def test_training_refuses_a_sentiment_file_missing_a_class(tmp_path: Path, tiny_csv: Path, topic_csv: Path) -> None:
    """Found by review: a 50-row all-positive file trained and reported macro-F1 1.0; eval may score such a file."""
    one_class = tmp_path / "positive.csv"
    one_class.write_text("text,label\n" + "shares jump,1\n" * 50, encoding="utf-8")
    with pytest.raises(DatasetError, match=r"positive\.csv has no \['negative', 'neutral'\] rows to train on"):
        load_corpus(_args(one_class, topic_csv))
    assert len(read_csv(one_class, load_taxonomy()).texts) == 50  # the reader (and so eval) still accepts it
    with pytest.raises(DatasetError, match=r"train\.csv \(first 3 rows\) has no \['neutral', 'positive'\] rows"):
        load_corpus(_args(tiny_csv, topic_csv, "--max-examples", "3"))


def test_auto_precision_trains_in_fp32_on_a_cpu_without_native_bf16(
    tiny_base_dir: Path, tiny_csv: Path, topic_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train, "cpu_bf16_flag", lambda: None)
    assert Trainer(_args(tiny_csv, topic_csv, "--base-model", str(tiny_base_dir))).precision == "fp32"
    monkeypatch.setattr(train, "cpu_bf16_flag", lambda: "amx_bf16")
    assert Trainer(_args(tiny_csv, topic_csv, "--base-model", str(tiny_base_dir))).precision == "bf16"


def test_training_draws_no_progress_bars_when_stderr_is_not_a_terminal(
    tiny_base_dir: Path, tiny_csv: Path, topic_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(tiny_base_dir, tiny_csv, tmp_path / "quiet", "--epochs", "1") == 0
    err = capsys.readouterr().err
    assert "frozen layers" not in err and "epoch 1/1" not in err


def test_a_trained_delta_carries_a_neighbour_memory_of_its_labelled_training_rows(
    tiny_base_dir: Path, tiny_csv: Path, topic_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "delta"
    assert _train(tiny_base_dir, tiny_csv, out) == 0
    tensors = load_file(str(out / DELTA_WEIGHTS))
    summary = json.loads((out / "training_summary.json").read_text())
    topic_rows, sentiment_rows = summary["neighbours"]["topic_rows"], summary["neighbours"]["sentiment_rows"]
    assert topic_rows + sentiment_rows == summary["train_rows"] and "heads_only" in summary["held_out"]
    assert tensors["memory.sentiment.vectors"].shape[0] == sentiment_rows
    assert tensors["memory.topic.labels"].shape[0] == topic_rows
    assert tensors["memory.sentiment.labels"].dtype == torch.int16
    model, _ = load_model(str(out))
    assert model.memory is not None
    assert (model.config.neighbour_topic_rows, model.config.neighbour_sentiment_rows) == (topic_rows, sentiment_rows)
    vectors = model.memory.sentiment.vectors
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(sentiment_rows), atol=1e-2)
    assert set(model.memory.sentiment.labels.tolist()) == {0, 1, 2}


def test_neighbour_weight_zero_trains_a_delta_without_memory(
    tiny_base_dir: Path, tiny_csv: Path, topic_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plain"
    assert _train(tiny_base_dir, tiny_csv, out, "--neighbour-weight", "0") == 0
    assert not any(n.startswith("memory.") for n in load_file(str(out / DELTA_WEIGHTS)))
    model, _ = load_model(str(out))
    assert model.memory is None and model.config.neighbour_topic_rows == model.config.neighbour_sentiment_rows == 0


def test_add_neighbours_gives_a_trained_delta_the_memory_training_would_have_given(
    tiny_base_dir: Path, tiny_csv: Path, topic_csv: Path, tmp_path: Path
) -> None:
    """The bundled model got its memory this way: same rows (the summary's split), same labels, no training."""
    plain, trained = tmp_path / "plain", tmp_path / "trained"
    assert _train(tiny_base_dir, tiny_csv, plain, "--neighbour-weight", "0") == 0
    assert _train(tiny_base_dir, tiny_csv, trained) == 0
    before = load_file(str(plain / DELTA_WEIGHTS))
    assert train_command(["--add-neighbours", "--output", str(plain), "--train-csv", str(tiny_csv),
                          "--topic-csv", str(topic_csv)]) == 0
    added, expected = load_file(str(plain / DELTA_WEIGHTS)), load_file(str(trained / DELTA_WEIGHTS))
    assert all(torch.equal(added[k], before[k]) for k in before)  # the trained weights are untouched
    for head in ("topic", "sentiment"):
        assert torch.equal(added[f"memory.{head}.labels"], expected[f"memory.{head}.labels"])
        assert torch.allclose(added[f"memory.{head}.vectors"].float(), expected[f"memory.{head}.vectors"].float(),
                              atol=2e-2)
    summary = json.loads((plain / "training_summary.json").read_text())
    assert summary["neighbours"] == json.loads((trained / "training_summary.json").read_text())["neighbours"]
    assert "heads_only" in summary["held_out"]


def test_add_neighbours_without_a_training_summary_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--add-neighbours: cannot read .*training_summary\.json"):
        train_command(["--add-neighbours", "--output", str(tmp_path / "nothing")])


def test_training_refuses_a_topic_without_training_rows(tmp_path: Path, tiny_csv: Path) -> None:
    """Found by review: a missing sentiment class was refused, a missing topic trained silently."""
    few = tmp_path / "few_topics.csv"
    few.write_text("text,label\n" + "fed rates rise,1\nearnings beat,5\n" * 10, encoding="utf-8")
    with pytest.raises(DatasetError, match=r"few_topics\.csv \(training rows\) has no \['analyst_update', "):
        load_corpus(_args(tiny_csv, few))


def test_max_examples_takes_a_label_sorted_topic_file_and_a_topic_only_held_out_is_refused(
    tmp_path: Path, tiny_csv: Path
) -> None:
    """Found by the regression review: topic_train.csv is sorted by label (all 20 topics from row 16,670), so the
    first change refused every --max-examples quick run; and it checked all rows, so a topic whose only row went
    to validation still trained silently."""
    few = tmp_path / "few_topics.csv"
    few.write_text("text,label\n" + "fed rates rise,1\nearnings beat,5\n" * 10, encoding="utf-8")
    assert load_corpus(_args(tiny_csv, few, "--max-examples", "20")).train
    lone = tmp_path / "lone_topic.csv"
    lone.write_text("text,label\n" + "".join(f"topic {label} row {i},{label}\n" for label in range(20) for i in
                                            range(1 if label == 4 else 5)), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"lone_topic\.csv \(training rows\) has no \['dividend'\]"):
        load_corpus(_args(tiny_csv, lone, "--valid-fraction", "0.6"))


def test_a_delta_over_a_hub_id_is_refused_before_any_work(tmp_path: Path, topic_csv: Path) -> None:
    """Found by review: a delta records the hub id as its base, and a delta loads only over a local base."""
    with pytest.raises(SystemExit, match=r"^error: --base-model org/encoder: .*delta artifacts need a local base"):
        train_command(["--output", str(tmp_path / "m"), "--base-model", "org/encoder",
                       "--train-csv", str(tmp_path / "absent.csv"), "--topic-csv", str(topic_csv)])


def test_add_neighbours_takes_the_files_and_taxonomy_the_model_was_trained_with(
    tiny_base_dir: Path, tiny_csv: Path, topic_csv: Path, tmp_path: Path
) -> None:
    """Found by review: it read the default files (the full datasets put 27 of the model's 30 held-out rows in the
    memory), and the default taxonomy (a size-mismatch traceback for a model of another taxonomy)."""
    model = tmp_path / "model"
    assert _train(tiny_base_dir, tiny_csv, model, "--neighbour-weight", "0", "--epochs", "1") == 0
    summary_file = model / "training_summary.json"
    summary = json.loads(summary_file.read_text())
    assert summary["args"]["train_csv"] == str(tiny_csv.resolve())
    other = tmp_path / "other.csv"
    other.write_text(tiny_csv.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"^error: --add-neighbours: --train-csv \S*other\.csv is not \S*train\.csv, "
                                         r"the file the model was trained with .* -- drop --train-csv$"):
        train_command(["--add-neighbours", "--output", str(model), "--train-csv", str(other)])
    assert train_command(["--add-neighbours", "--output", str(model)]) == 0  # no flags: the recorded files
    added = json.loads(summary_file.read_text())
    assert added["neighbours"]["sentiment_rows"] + added["neighbours"]["topic_rows"] == summary["train_rows"]
    assert added["held_out"]["sentiment"]["rows"] == summary["sentiment_validation_rows"]
    taxonomy = tmp_path / "four.toml"
    taxonomy.write_text("\n".join(
        ["version = 2", 'default_topic = "other"', "[sentiment_labels]", '0 = "negative"', '1 = "positive"',
         '2 = "neutral"', "[topic_labels]", *(f'{i} = "{("fed", "company", "markets")[i % 3]}"' for i in range(20)),
         *(f'[[topics]]\nname = "{name}"\nkeywords = []' for name in ("fed", "company", "markets", "other"))]
    ) + "\n", encoding="utf-8")
    summary_file.write_text(json.dumps({**added, "args": {**added["args"], "taxonomy": str(taxonomy)}}))
    with pytest.raises(SystemExit, match=r"^error: --add-neighbours: the model's 20 topic labels are not the 4 of "
                                         r"--taxonomy \S*four\.toml -- pass the taxonomy it was trained with$"):
        train_command(["--add-neighbours", "--output", str(model)])
    summary_file.write_text(json.dumps({**added, "sentiment_validation_rows": 7}))
    with pytest.raises(SystemExit, match=r"give 6 sentiment validation rows, the model's training_summary\.json 7"):
        train_command(["--add-neighbours", "--output", str(model)])

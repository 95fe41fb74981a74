"""Training flags are checked when parsed, and bf16 is chosen only where the CPU runs it natively."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.classify.training import evaluate, pretrain, train
from monitor.classify.training.arguments import training_precision


@pytest.mark.parametrize(("flag", "precision"), [(None, "fp32"), ("avx512_bf16", "bf16"), ("amx_bf16", "bf16")])
def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(flag: str | None, precision: str) -> None:
    assert training_precision("auto", flag) == precision


@pytest.mark.parametrize("requested", ["bf16", "fp32"])
def test_explicit_precision_is_kept_whatever_the_cpu(requested: str) -> None:
    assert training_precision(requested, None) == training_precision(requested, "amx_bf16") == requested


def test_train_and_pretrain_default_to_auto_precision() -> None:
    pretrain_args = ["--output", "x", "--text", "t.csv"]
    assert train.build_parser().parse_args(["--output", "x"]).precision == "auto"
    assert pretrain.build_parser().parse_args(pretrain_args).precision == "auto"
    assert pretrain.build_parser().parse_args([*pretrain_args, "--precision", "fp32"]).precision == "fp32"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--valid-fraction", "0"),
        ("--valid-fraction", "1"),
        ("--valid-fraction", "1.5"),
        ("--valid-fraction", "a tenth"),
        ("--batch-size", "0"),
        ("--epochs", "0"),
        ("--patience", "0"),
        ("--patience", "-1"),
        ("--lr", "-1"),
        ("--lr", "nan"),
        ("--head-lr", "-0.1"),
        ("--max-length", "0"),
        ("--train-layers", "-3"),
        ("--topic-loss-weight", "-1"),
        ("--topic-loss-weight", "inf"),
        ("--distill-weight", "-2"),
        ("--ema-decay", "1.5"),
        ("--ema-decay", "1"),
        ("--ema-decay", "-0.1"),
        ("--warmup-fraction", "7"),
        ("--warmup-fraction", "-0.1"),
        ("--layer-decay", "-0.85"),
        ("--layer-decay", "0"),
        ("--layer-decay", "1.5"),
        ("--max-examples", "-5"),
        ("--max-examples", "0"),
        ("--unlabelled-max", "-1"),
        ("--num-threads", "-2"),
    ],
)
def test_train_rejects_out_of_range_values_when_parsing(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        train.build_parser().parse_args(["--output", "x", flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}:" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "value"), [
    ("--max-texts", "-1"), ("--max-length", "0"), ("--mask-probability", "0"), ("--mask-probability", "1"),
    ("--lr", "-5e-5"), ("--head-lr", "nan"), ("--warmup-fraction", "2"), ("--num-threads", "-1"),
])
def test_pretrain_rejects_out_of_range_values_when_parsing(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        pretrain.build_parser().parse_args(["--output", "x", "--text", "t.csv", flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}:" in capsys.readouterr().err


def test_train_accepts_the_edges_of_each_range(tmp_path: Path) -> None:
    args = train.build_parser().parse_args(
        ["--output", str(tmp_path), "--ema-decay", "0", "--warmup-fraction", "1", "--layer-decay", "1",
         "--topic-loss-weight", "0", "--distill-weight", "0", "--max-examples", "1", "--unlabelled-max", "0"]
    )
    assert (args.ema_decay, args.warmup_fraction, args.layer_decay) == (0.0, 1.0, 1.0)
    assert (args.topic_loss_weight, args.distill_weight, args.max_examples, args.unlabelled_max) == (0.0, 0.0, 1, 0)


def test_train_uses_every_row_unless_max_examples_is_given() -> None:
    assert train.build_parser().parse_args(["--output", "x"]).max_examples is None


def test_eval_rejects_a_topic_fraction_outside_zero_to_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        evaluate.build_parser().parse_args(["--topic-valid-fraction", "0"])
    assert "argument --topic-valid-fraction:" in capsys.readouterr().err


def test_train_accepts_in_range_values(tmp_path: Path) -> None:
    args = train.build_parser().parse_args(
        ["--output", str(tmp_path), "--valid-fraction", "0.2", "--batch-size", "1", "--epochs", "1", "--patience", "1"]
    )
    assert (args.valid_fraction, args.batch_size, args.epochs, args.patience) == (0.2, 1, 1, 1)


def test_an_output_that_is_a_file_or_under_one_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: training wrote its output only after the last epoch (20 minutes) and failed there."""
    afile = tmp_path / "afile"
    afile.write_text("")
    for parser, flag, extra in ((train.build_parser(), "--output", []),
                                (pretrain.build_parser(), "--output", ["--text", "t.csv"]),
                                (evaluate.build_parser(), "--report-dir", [])):
        for output in (afile, afile / "model"):
            with pytest.raises(SystemExit):
                parser.parse_args([flag, str(output), *extra])
            assert f"argument {flag}:" in capsys.readouterr().err
    missing = tmp_path / "new" / "model"
    assert train.build_parser().parse_args(["--output", str(missing)]).output == missing
    assert not missing.parent.exists(), "parsing makes nothing"

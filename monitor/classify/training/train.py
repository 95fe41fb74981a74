"""``monitor train``: fine-tune the encoder and both heads on the two labelled CSVs at once.

One model, two heads, trained together: every row of ``sent_train.csv`` carries a sentiment label and
every row of ``topic_train.csv`` a human topic label; the batches mix both and each head's loss skips
the rows without its label (``-100``), so the topic data (17k finance headlines) also teaches the
encoder financial language. Generalisation over memorisation: all encoder layers train (the token
embeddings stay frozen, so their output is computed ONCE and cached, and the delta artifact stays
small) with a low, layer-wise decayed learning rate (lower layers move least), linear warmup + linear
decay, class-weighted losses and, where the CPU has native bf16 (AVX512-BF16/AMX), bf16 autocast (about
2x faster than fp32 there; ``--precision auto`` keeps fp32 elsewhere, where bf16 is emulated and slow).
Early stopping watches sentiment macro-F1 + topic accuracy on stratified slices of the TRAIN files
(the evaluation files stay untouched); temperatures for both heads are then fitted on those slices.
``--ood-style headline`` trains sentiment on cashtag tweets only and scores the headline-style rows it
never saw (an out-of-distribution check). Same seed, data, thread count and CPU type -> the same artifact.

    monitor train --output monitor/classify/default_model          # the bundled delta artifact
    monitor train --output DIR --full --base-model <local dir|hub id>  # a full save_pretrained dir
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm
from transformers.masking_utils import create_bidirectional_mask

from monitor.classify.artifact import (
    FULL_WEIGHTS,
    PACKAGED_BASE,
    init_encoder_from,
    load_model,
    new_model,
    pad,
    save_delta,
    save_full,
    tokenize,
)
from monitor.classify.cpu_features import cpu_bf16_flag
from monitor.classify.model import FinSentModel, TwoHeadOutput, fit_temperature, mean_pool
from monitor.classify.model_source import locate_model
from monitor.classify.neighbours import NeighbourMemory
from monitor.classify.topics import DEFAULT_TAXONOMY, load_taxonomy
from monitor.classify.training.arguments import (
    add_precision_argument,
    fraction,
    layer_decay,
    learning_rate,
    loss_weight,
    moving_average_decay,
    non_negative_int,
    open_fraction,
    output_dir,
    positive_int,
    training_precision,
)
from monitor.classify.training.dataset import (
    DATASET_DIR,
    SENTIMENT_LABELS,
    TOPIC_DATASET_DIR,
    is_headline_style,
    read_csv,
    read_topic_csv,
    read_unlabelled,
    require_every_class,
    stratified_split,
)
from monitor.classify.training.distill import soft_cross_entropy, teacher_probabilities
from monitor.classify.training.metrics import Report, classification_report
from monitor.classify.transformer import cpu_threads

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]
"""(hidden states at the first trained layer, attention mask, sentiment ids, topic ids, and the
teachers' sentiment and topic probabilities when distilling)."""
IGNORE = -100
"""Label id of 'this row has no label for this head' (masked out of that head's loss)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor train", description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=output_dir, required=True, help="directory to write the model to")
    p.add_argument("--full", action="store_true", help="write a full save_pretrained directory, not a delta")
    p.add_argument("--train-csv", type=Path, default=DATASET_DIR / "sent_train.csv", help="sentiment CSV")
    p.add_argument("--topic-csv", type=Path, default=TOPIC_DATASET_DIR / "topic_train.csv", help="topic CSV")
    p.add_argument("--taxonomy", type=Path, default=None, help="default: configs/taxonomy.toml")
    p.add_argument("--base-model", default=None, help="encoder dir or hub id; default: packaged MiniLM")
    p.add_argument(
        "--init-encoder", type=Path, default=None,
        help="start the encoder layers from `monitor pretrain --output DIR` (same base; all layers train)",
    )
    p.add_argument(
        "--valid-fraction", type=open_fraction, default=0.1, help="stratified slice of each TRAIN file held out"
    )
    p.add_argument("--max-length", type=positive_int, default=64, help="tokens per text (after URL removal)")
    p.add_argument("--train-layers", type=non_negative_int, default=6,
                   help="top encoder layers to fine-tune (0 = heads)")
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument(
        "--patience", type=positive_int, default=2, help="epochs without a validation gain before stopping"
    )
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--lr", type=learning_rate, default=1e-4,
                   help="top encoder layer; each lower layer x --layer-decay")
    p.add_argument("--layer-decay", type=layer_decay, default=0.85, help="layer-wise learning-rate decay, in (0, 1]")
    p.add_argument("--head-lr", type=learning_rate, default=1e-3, help="learning rate of both heads")
    p.add_argument("--warmup-fraction", type=fraction, default=0.06, help="share of all steps, in [0, 1]")
    p.add_argument("--topic-loss-weight", type=loss_weight, default=1.0, help=">= 0 (0 = sentiment loss only)")
    p.add_argument(
        "--ema-decay",
        type=moving_average_decay,
        default=0.0,
        help="validate and keep an exponential moving average of the weights (per step, in [0, 1); 0 = off)",
    )
    add_precision_argument(p)
    p.add_argument(
        "--ood-style",
        choices=["none", "headline"],
        default="none",
        help="headline: keep headline-style (no cashtag) sentiment rows out of training and score them",
    )
    p.add_argument("--seed", type=int, default=13, help="initialisation and batch order")
    p.add_argument(
        "--split-seed", type=int, default=None, help="validation slices (default: --seed); teachers must share it"
    )
    p.add_argument(
        "--teacher", type=Path, action="append", default=[],
        help="trained model dir whose calibrated probabilities label every row for both heads (repeat: mean)",
    )
    p.add_argument(
        "--unlabelled", type=Path, action="append", default=[],
        help="extra texts (.jsonl/.csv with a 'text' field) labelled only by the teachers (repeatable)",
    )
    p.add_argument(
        "--unlabelled-max", type=non_negative_int, default=20_000, help="texts drawn from --unlabelled (0 = all)"
    )
    p.add_argument("--distill-weight", type=loss_weight, default=1.0, help="weight of the teachers' soft-label loss")
    p.add_argument("--neighbour-weight", type=fraction, default=0.5,
                   help="share of the k nearest labelled training texts' vote in the labels, in [0, 1] (0 = none)")
    p.add_argument("--neighbour-k", type=positive_int, default=10, help="nearest labelled texts that vote, per head")
    p.add_argument("--add-neighbours", action="store_true",
                   help="no training: give the delta model in --output the neighbour memory of the rows it was "
                        "trained on (its training_summary.json's files and split) and rewrite its held-out numbers")
    p.add_argument("--num-threads", type=non_negative_int, default=0, help="0 = all available cores")
    p.add_argument(
        "--max-examples", type=positive_int, default=None, help="use only the first N rows of each CSV (default: all)"
    )
    return p


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def encoder_layers(model: FinSentModel) -> nn.ModuleList:
    layers = getattr(getattr(model.encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise SystemExit(
            "monitor train supports BERT-style encoders (encoder.encoder.layer); pick another base"
        )
    return layers


def frozen_states(model: FinSentModel, ids: list[list[int]], start: int, pad_id: int) -> list[torch.Tensor]:
    """Per text, the (length, hidden) input of encoder layer ``start`` -- computed once, no grad."""
    model.train(False)
    embeddings = getattr(model.encoder, "embeddings", None)
    if not isinstance(embeddings, nn.Module):
        raise SystemExit("monitor train supports BERT-style encoders (encoder.embeddings); pick another base")
    out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    with torch.no_grad():
        for s in tqdm(range(0, len(order), 64), desc="frozen layers", unit="batch", leave=False, disable=None):
            chunk = order[s : s + 64]
            input_ids, mask = pad([ids[i] for i in chunk], pad_id)
            states = embeddings(input_ids=input_ids)
            attn = create_bidirectional_mask(
                config=model.encoder.config, inputs_embeds=states, attention_mask=mask
            )
            for layer in encoder_layers(model)[:start]:
                result = layer(states, attention_mask=attn)
                states = result[0] if isinstance(result, tuple) else result
            for row, i in enumerate(chunk):
                out[i] = states[row, : len(ids[i])].clone()
    return out


def top_pooled(model: FinSentModel, hidden: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
    """The pooled vector from cached layer-``start`` inputs: the rest of ``FinSentModel.pool``."""
    attn = create_bidirectional_mask(config=model.encoder.config, inputs_embeds=hidden, attention_mask=mask)
    for layer in encoder_layers(model)[start:]:
        result = layer(hidden, attention_mask=attn)
        hidden = result[0] if isinstance(result, tuple) else result
    return mean_pool(hidden, mask)


def top_forward(
    model: FinSentModel, hidden: torch.Tensor, mask: torch.Tensor, start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Heads' logits from cached layer-``start`` inputs: the rest of ``FinSentModel.forward``."""
    topic_logits, sentiment_logits = model.heads(top_pooled(model, hidden, mask, start))
    return topic_logits, sentiment_logits


def make_batches(
    states: list[torch.Tensor],
    sentiments: list[int],
    topics: list[int],
    index: list[int],
    size: int,
    generator: torch.Generator | None,
    soft: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[Batch]:
    """Length-grouped batches (shuffled within pools of 50 batches when ``generator`` is given)."""
    order = list(index)
    if generator is not None:
        order = [order[i] for i in torch.randperm(len(order), generator=generator).tolist()]
    pool = size * 50
    groups: list[list[int]] = []
    for s in range(0, len(order), pool):
        sorted_pool = sorted(order[s : s + pool], key=lambda i: states[i].shape[0])
        groups += [sorted_pool[b : b + size] for b in range(0, len(sorted_pool), size)]
    if generator is not None:
        groups = [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]
    batches = []
    for g in groups:
        width = max(states[i].shape[0] for i in g)
        hidden = torch.zeros((len(g), width, states[g[0]].shape[1]))
        mask = torch.zeros((len(g), width), dtype=torch.long)
        for row, i in enumerate(g):
            hidden[row, : states[i].shape[0]] = states[i]
            mask[row, : states[i].shape[0]] = 1
        rows = torch.tensor(g)
        batches.append(
            (hidden, mask, torch.tensor([sentiments[i] for i in g]), torch.tensor([topics[i] for i in g]),
             soft[0][rows] if soft else None, soft[1][rows] if soft else None)
        )
    return batches


def predict(model: FinSentModel, batches: list[Batch], start: int) -> TwoHeadOutput:
    """Both heads' logits and the pooled vectors of ``batches``, in their order (no grad)."""
    model.train(False)
    pooled = []
    with torch.no_grad():
        for hidden, mask, *_ in batches:
            pooled.append(top_pooled(model, hidden, mask, start))
        vectors = torch.cat(pooled)
        topic, sentiment = model.heads(vectors)
    return TwoHeadOutput(topic_logits=topic, sentiment_logits=sentiment, pooled=vectors)


def warmup_linear_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps, then linear decay to zero."""
    warmup = max(1, round(total_steps * warmup_fraction))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    )


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the parameters training changes (the best epoch's, or the raw ones while the
    moving average is validated)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def class_weights(labels: Sequence[int], n: int, power: float = 0.5) -> torch.Tensor:
    """Inverse-frequency weights to the ``power`` (0.5 = square root): helps the minority classes
    (macro-F1) without overshooting; mean weight 1."""
    counts = torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=n).float().clamp(min=1)
    weights = (counts.sum() / counts) ** power
    return weights / weights.mean()


def masked_loss(loss: nn.CrossEntropyLoss, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The head's loss over the rows that carry its label; a zero that keeps the graph when none do."""
    if bool((labels != IGNORE).any()):
        value: torch.Tensor = loss(logits.float(), labels)
        return value
    return logits.float().sum() * 0.0


@dataclass
class Corpus:
    """Both CSVs as one list of rows; a row has a sentiment label, a topic label, or (rarely) neither."""

    texts: list[str]
    sentiments: list[int]
    topics: list[int]
    train: list[int]
    sentiment_val: list[int]
    topic_val: list[int]
    ood: list[int]
    """Sentiment rows kept out of training for the out-of-distribution check (``--ood-style``)."""


def load_corpus(args: argparse.Namespace) -> Corpus:
    taxonomy = load_taxonomy(args.taxonomy)
    sent = read_csv(args.train_csv, taxonomy, "--train-csv")
    topic = read_topic_csv(args.topic_csv, taxonomy)
    limit = args.max_examples
    s_texts, s_labels = sent.texts[:limit], sent.labels[:limit]
    t_texts, t_labels = topic.texts[:limit], topic.labels[:limit]
    ood = [i for i, t in enumerate(s_texts) if args.ood_style == "headline" and is_headline_style(t)]
    in_domain = sorted(set(range(len(s_texts))) - set(ood))
    rows = f" (first {limit} rows)" if limit else ""
    kept = " (cashtag rows: --ood-style headline)" if ood else ""
    require_every_class([s_labels[i] for i in in_domain], SENTIMENT_LABELS, f"{args.train_csv}{rows}{kept}")
    split_seed = args.seed if args.split_seed is None else args.split_seed
    s_train, s_val = stratified_split([s_labels[i] for i in in_domain], args.valid_fraction, split_seed)
    t_train, t_val = stratified_split(t_labels, args.valid_fraction, split_seed)
    if not limit:  # --max-examples is for quick runs: topic_train.csv is sorted by label (all 20 from row 16,670)
        require_every_class([t_labels[i] for i in t_train], taxonomy.names, f"{args.topic_csv} (training rows)")
    offset = len(s_texts)
    extra: list[str] = []
    for path in args.unlabelled:
        extra += read_unlabelled(path, args.unlabelled_max, split_seed, {*s_texts, *t_texts, *extra})
    if extra and args.unlabelled_max:
        extra = extra[: args.unlabelled_max]
    first_extra = offset + len(t_texts)
    return Corpus(
        texts=s_texts + t_texts + extra,
        sentiments=s_labels + [IGNORE] * (len(t_texts) + len(extra)),
        topics=[IGNORE] * len(s_texts) + t_labels + [IGNORE] * len(extra),
        train=[in_domain[i] for i in s_train] + [offset + i for i in t_train]
        + list(range(first_extra, first_extra + len(extra))),
        sentiment_val=[in_domain[i] for i in s_val],
        topic_val=[offset + i for i in t_val],
        ood=ood,
    )


def layer_groups(model: FinSentModel, args: argparse.Namespace) -> list[dict[str, Any]]:
    """AdamW parameter groups: heads at ``--head-lr``; encoder layer i at ``lr * decay**(top - i)``."""
    n_layers = len(encoder_layers(model))
    groups: list[dict[str, Any]] = [
        {"params": [p for n, p in model.named_parameters() if not n.startswith("encoder.")], "lr": args.head_lr}
    ]
    for i in model.config.trained_layers:
        prefix = f"encoder.encoder.layer.{i}."
        params = [p for n, p in model.named_parameters() if n.startswith(prefix)]
        groups.append({"params": params, "lr": args.lr * args.layer_decay ** (n_layers - 1 - i)})
    return groups


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "rows": sum(map(sum, report.confusion)),
        "accuracy": round(report.accuracy, 4),
        "macro_f1": round(report.macro_f1, 4),
        "f1": {c.label: round(c.f1, 4) for c in report.per_class},
    }


class Trainer:
    """One training run: cached frozen states, batches, the optimiser and the validation reports."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        if args.teacher:
            check_teachers(args)
        self.precision = training_precision(args.precision, cpu_bf16_flag())
        """``bf16`` or ``fp32``: the autocast dtype of the training steps and of the teachers."""
        taxonomy = load_taxonomy(args.taxonomy)
        self.topic_names = list(taxonomy.names)
        self.corpus = load_corpus(args)
        self.model, self.tokenizer = new_model(args.base_model, self.topic_names, SENTIMENT_LABELS)
        layers = encoder_layers(self.model)
        self.start = len(layers) - max(0, min(args.train_layers, len(layers)))
        if args.init_encoder is not None:
            if self.start != 0:
                raise SystemExit("error: --init-encoder trains every encoder layer (the delta stores them all): "
                                 f"drop --train-layers {args.train_layers}")
            init_encoder_from(self.model, args.init_encoder)
        self.model.config.trained_layers = list(range(self.start, len(layers)))
        for name, param in self.model.named_parameters():
            param.requires_grad = not name.startswith("encoder.") or any(
                name.startswith(f"encoder.encoder.layer.{i}.") for i in self.model.config.trained_layers
            )
        pad_id = int(self.tokenizer.pad_token_id or 0)
        ids = tokenize(self.tokenizer, self.corpus.texts, args.max_length)
        self.states = frozen_states(self.model, ids, self.start, pad_id)
        self.soft: tuple[torch.Tensor, torch.Tensor] | None = None
        """Teachers' (sentiment, topic) probabilities per corpus row, when distilling."""
        if args.teacher:
            self.soft = teacher_probabilities(
                args.teacher, self.corpus.texts, args.max_length, self.topic_names, SENTIMENT_LABELS,
                bf16=self.precision == "bf16",
            )

    def batches(self, index: list[int], size: int, generator: torch.Generator | None) -> list[Batch]:
        c = self.corpus
        return make_batches(self.states, c.sentiments, c.topics, index, size, generator, self.soft)

    def sentiment_report(self, index: list[int]) -> tuple[Report, torch.Tensor, torch.Tensor]:
        """The report of the model's labels (neighbour memory included), its raw logits and the gold labels."""
        batches = self.batches(index, 128, None)
        gold = torch.cat([b[2] for b in batches])
        output = predict(self.model, batches, self.start)
        labels = self.model.probabilities(output)[1].argmax(-1)
        assert output.sentiment_logits is not None
        return classification_report(gold.tolist(), labels.tolist(), SENTIMENT_LABELS), output.sentiment_logits, gold

    def topic_report(self) -> tuple[Report, torch.Tensor, torch.Tensor]:
        batches = self.batches(self.corpus.topic_val, 128, None)
        gold = torch.cat([b[3] for b in batches])
        output = predict(self.model, batches, self.start)
        labels = self.model.probabilities(output)[0].argmax(-1)
        assert output.topic_logits is not None
        return classification_report(gold.tolist(), labels.tolist(), self.topic_names), output.topic_logits, gold

    def attach_memory(self) -> int:
        """Give the model a neighbour memory of its labelled training rows (``--neighbour-weight`` 0: none);
        the number of rows stored."""
        c, model = self.corpus, self.model
        model.memory = None
        model.config.neighbour_topic_rows = model.config.neighbour_sentiment_rows = 0
        rows = [i for i in c.train if c.sentiments[i] != IGNORE or c.topics[i] != IGNORE]
        if not self.args.neighbour_weight or not rows:
            return 0
        model.config.neighbour_k, model.config.neighbour_weight = self.args.neighbour_k, self.args.neighbour_weight
        batches = self.batches(rows, 128, None)
        pooled = predict(model, batches, self.start).pooled
        assert pooled is not None
        topics, sentiments = torch.cat([b[3] for b in batches]), torch.cat([b[2] for b in batches])
        has_topic, has_sentiment = topics != IGNORE, sentiments != IGNORE
        memory = model.new_memory(int(has_topic.sum()), int(has_sentiment.sum()))
        memory.topic.fill(pooled[has_topic], topics[has_topic].to(torch.int16))
        memory.sentiment.fill(pooled[has_sentiment], sentiments[has_sentiment].to(torch.int16))
        model.memory = memory
        model.config.neighbour_topic_rows, model.config.neighbour_sentiment_rows = memory_rows(memory)
        return len(rows)

    def fit(self) -> tuple[int, list[dict[str, Any]]]:
        args, c, model = self.args, self.corpus, self.model
        generator = torch.Generator().manual_seed(args.seed)
        total_steps = -(-len(c.train) // args.batch_size) * args.epochs
        optimizer = torch.optim.AdamW(layer_groups(model, args), weight_decay=0.01)
        scheduler = warmup_linear_schedule(optimizer, total_steps, args.warmup_fraction)
        sent_labels = [c.sentiments[i] for i in c.train if c.sentiments[i] != IGNORE]
        topic_labels = [c.topics[i] for i in c.train if c.topics[i] != IGNORE]
        sentiment_loss = nn.CrossEntropyLoss(weight=class_weights(sent_labels, 3), ignore_index=IGNORE)
        topic_loss = nn.CrossEntropyLoss(
            weight=class_weights(topic_labels, len(self.topic_names), 0.3), ignore_index=IGNORE
        )
        params = [p for p in model.parameters() if p.requires_grad]
        ema = (
            AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay))  # type: ignore[no-untyped-call]
            if args.ema_decay
            else None
        )
        best_score, best_epoch, history = -1.0, 0, []
        best_state = trainable_state(model)
        for epoch in range(1, args.epochs + 1):
            epoch_started = time.perf_counter()
            model.train()
            batches = self.batches(c.train, args.batch_size, generator)
            bar = tqdm(batches, desc=f"epoch {epoch}/{args.epochs}", disable=None)
            for hidden, mask, sent, topic, soft_sent, soft_topic in bar:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    topic_logits, sentiment_logits = top_forward(model, hidden, mask, self.start)
                loss = masked_loss(sentiment_loss, sentiment_logits, sent) + args.topic_loss_weight * masked_loss(
                    topic_loss, topic_logits, topic
                )
                if soft_sent is not None and soft_topic is not None:
                    loss = loss + args.distill_weight * (
                        soft_cross_entropy(sentiment_logits, soft_sent)
                        + args.topic_loss_weight * soft_cross_entropy(topic_logits, soft_topic)
                    )
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
                bar.set_postfix(loss=f"{loss.item():.3f}")
            raw = trainable_state(model) if ema is not None else None
            if ema is not None:
                print(f"epoch {epoch} raw weights: val sentiment macro-F1 "
                      f"{self.sentiment_report(c.sentiment_val)[0].macro_f1:.4f}, "
                      f"topic accuracy {self.topic_report()[0].accuracy:.4f}")
                model.load_state_dict(trainable_state(ema.module), strict=False)
            sent_report = self.sentiment_report(c.sentiment_val)[0]
            topic_report = self.topic_report()[0]
            score = sent_report.macro_f1 + topic_report.accuracy
            history.append(
                {
                    "epoch": epoch,
                    "seconds": round(time.perf_counter() - epoch_started, 1),
                    "val_sentiment_macro_f1": round(sent_report.macro_f1, 4),
                    "val_topic_accuracy": round(topic_report.accuracy, 4),
                }
            )
            print(
                f"epoch {epoch}: val sentiment macro-F1 {sent_report.macro_f1:.4f}, "
                f"topic accuracy {topic_report.accuracy:.4f} ({history[-1]['seconds']:.0f}s)"
            )
            if score > best_score:
                best_score, best_epoch, best_state = score, epoch, trainable_state(model)
            if raw is not None:  # back to the raw weights: training goes on from them, not the average
                model.load_state_dict(raw, strict=False)
            if epoch - best_epoch >= args.patience:
                print(f"early stop: no validation gain for {args.patience} epochs (best epoch {best_epoch})")
                break
        model.load_state_dict(best_state, strict=False)
        return best_epoch, history

    def held_out(self) -> dict[str, Any]:
        """Calibrate the heads on the held-out slices, add the neighbour memory, and report on the slices (the
        heads alone too, under ``heads_only``)."""
        c = self.corpus
        sent_report, sent_logits, sent_gold = self.sentiment_report(c.sentiment_val)
        topic_report, topic_logits, topic_gold = self.topic_report()
        self.model.config.sentiment_temperature = fit_temperature(sent_logits, sent_gold)
        self.model.config.topic_temperature = fit_temperature(topic_logits, topic_gold)
        heads_only = {"sentiment": report_dict(sent_report), "topic": report_dict(topic_report)}
        if self.attach_memory():
            sent_report, topic_report = self.sentiment_report(c.sentiment_val)[0], self.topic_report()[0]
        out: dict[str, Any] = {"sentiment": report_dict(sent_report), "topic": report_dict(topic_report)}
        if self.model.memory is not None:
            out["heads_only"] = heads_only
        for style, rows in (
            ("headline", [i for i in c.sentiment_val if is_headline_style(c.texts[i])]),
            ("cashtag", [i for i in c.sentiment_val if not is_headline_style(c.texts[i])]),
        ):
            if rows:
                out[f"sentiment_{style}_style"] = report_dict(self.sentiment_report(rows)[0])
        if c.ood:
            out["ood_headline_sentiment"] = report_dict(self.sentiment_report(c.ood)[0])
        return out


SPLIT_ARGUMENTS = {"seed": int, "split_seed": int, "valid_fraction": float, "max_length": int, "train_layers": int,
                   "ood_style": str, "max_examples": int, "base_model": str}
"""What ``--add-neighbours`` takes from the model's training_summary.json: the rows it trained on, and so the
held-out slices the memory must leave out."""
RECORDED_FILES = ("train_csv", "topic_csv", "taxonomy")
"""The files a training_summary.json records (absolute paths; older summaries kept them as given, relative to the
run's working directory): the rows, labels and split are only the model's with these files."""
SPLIT_FLAGS = {"split_seed": "--split-seed", "valid_fraction": "--valid-fraction", "max_examples": "--max-examples",
               "ood_style": "--ood-style", "train_csv": "--train-csv", "topic_csv": "--topic-csv"}
"""What decides which rows a run trains on and holds out (keys of :func:`split_record`), and the flag of each."""


def summary_args(args: argparse.Namespace) -> dict[str, str]:
    """The run's arguments as training_summary.json records them: the files resolved, so that ``--add-neighbours``,
    ``monitor eval`` and a student's teacher check find the same files from any working directory."""
    out = {k: str(v) for k, v in sorted(vars(args).items()) if k not in ("output", "num_threads")}
    for name in RECORDED_FILES:
        if getattr(args, name) is not None:
            out[name] = str(Path(getattr(args, name)).resolve())
    return out


def split_record(summary: dict[str, Any]) -> dict[str, str]:
    """What ``summary`` (a training_summary.json) records of the split, as strings keyed as :data:`SPLIT_FLAGS` (the
    files as recorded); what an older summary lacks is left out (not recorded: nothing to compare)."""
    args = summary.get("args", {})
    out: dict[str, str] = {}
    seed = summary.get("split_seed", args.get("split_seed"))
    if seed in (None, "None"):  # older summaries: --split-seed unset means --seed
        seed = args.get("seed", summary.get("seed"))
    if seed is not None:
        out["split_seed"] = str(int(seed))
    fraction = summary.get("valid_fraction", args.get("valid_fraction"))
    if fraction is not None:
        out["valid_fraction"] = str(float(fraction))
    if "max_examples" in args:  # "0" in summaries before --max-examples took only positive counts: all rows
        out["max_examples"] = "None" if args["max_examples"] in ("None", "0") else str(int(args["max_examples"]))
    if "ood_style" in args:
        out["ood_style"] = str(args["ood_style"])
    for name in ("train_csv", "topic_csv"):
        if name in args:
            out[name] = str(args[name])
    return out


def read_summary(directory: Path, flag: str) -> dict[str, Any] | None:
    """``directory``'s training_summary.json (None where it has none); one-line error naming ``flag`` if unreadable."""
    summary_file = directory / "training_summary.json"
    if not summary_file.is_file():
        return None
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        if not isinstance(summary, dict) or not isinstance(summary.get("args", {}), dict):
            raise ValueError("not a JSON object with an 'args' object")
        return summary
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {flag} {directory}: cannot read {summary_file} ({exc}) -- restore it") from None


def check_teachers(args: argparse.Namespace) -> None:
    """Refuse a teacher trained on another split than this run's (where its summary records it): its training rows
    then hold this run's validation rows, and its soft labels leak them into early stopping and the held-out
    numbers -- 26 of 30 with --split-seed 5 against 13 (found by review)."""
    student = split_record({"args": summary_args(args)})
    for path in args.teacher:
        summary = read_summary(locate_model(str(path), "--teacher"), "--teacher")
        try:
            recorded = split_record(summary or {})
        except (TypeError, ValueError, AttributeError) as exc:
            raise SystemExit(f"error: --teacher {path}: its training_summary.json is unreadable ({exc})") from None
        for key, flag in SPLIT_FLAGS.items():
            kept = recorded.get(key)
            if kept is None or (key.endswith("_csv") and not Path(kept).is_absolute()):
                continue  # not recorded, or a relative path of an older summary (to an unknown directory)
            kept = str(Path(kept).resolve()) if key.endswith("_csv") else kept
            if key.endswith("_csv") and kept != student[key] and _same_file_contents(Path(kept), Path(student[key])):
                continue  # the same file under another path (a copy, a moved dataset folder)
            if kept != student[key]:
                fix = f"drop {flag}" if kept == "None" else f"pass {flag} {kept}"
                raise SystemExit(
                    f"error: --teacher {path} was trained with {flag} {kept}, this run has {student[key]} -- its "
                    f"training rows hold this run's validation rows; {fix} (or retrain the teacher with this run's)"
                )


def _same_file_contents(recorded: Path, current: Path) -> bool:
    """Whether the teacher's recorded file and this run's hold the same bytes; a recorded file that is gone (trained
    on another machine, the dataset folder moved) cannot be compared and is taken as the same, with a warning:
    comparing paths refused identical copies (found by the regression review)."""
    if not recorded.is_file():
        print(f"warning: the teacher's {recorded} is gone: its split cannot be compared with {current}",
              file=sys.stderr)
        return True
    if not current.is_file() or recorded.stat().st_size != current.stat().st_size:
        return False
    return hashlib.sha256(recorded.read_bytes()).digest() == hashlib.sha256(current.read_bytes()).digest()


def given_options(argv: Sequence[str], names: Sequence[str]) -> set[str]:
    """Which of the options ``names`` (dests) the command line sets: a default is no choice of the user's."""
    unset = object()  # not a string: argparse converts a string default with the option's type
    parser = build_parser()
    parser.set_defaults(**dict.fromkeys(names, unset))
    parsed = vars(parser.parse_args(list(argv)))
    return {name for name in names if parsed[name] is not unset}


def recorded_file(trained: dict[str, str], name: str, current: Path | None, given: bool) -> Path | None:
    """The file ``name`` for ``--add-neighbours``: the one the model was trained with (its summary), since only its
    rows give the model's split; an older summary without it, or a recorded file that is gone: ``current``."""
    flag = "--" + name.replace("_", "-")
    if name not in trained:
        return current
    recorded = None if trained[name] == "None" else Path(trained[name])
    if recorded is not None and not recorded.is_file():
        print(f"warning: {flag} {recorded} (the model's training_summary.json) is gone: reading {current}",
              file=sys.stderr)
        return current
    if given and (current or DEFAULT_TAXONOMY).resolve() != (recorded or DEFAULT_TAXONOMY).resolve():
        raise SystemExit(f"error: --add-neighbours: {flag} {current} is not {recorded or DEFAULT_TAXONOMY}, the file "
                         f"the model was trained with (its training_summary.json) -- drop {flag}")
    return recorded


def add_neighbours(args: argparse.Namespace, given: set[str]) -> int:
    """``given``: the options of :data:`RECORDED_FILES` the command line sets (each must be the recorded file)."""
    summary_file = args.output / "training_summary.json"
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        trained = summary["args"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"error: --add-neighbours: cannot read {summary_file} ({exc}) -- it needs the directory "
                         "`monitor train --output DIR` wrote") from None
    for name, kind in SPLIT_ARGUMENTS.items():
        value = trained.get(name, "None")
        setattr(args, name, None if value == "None" or (name == "max_examples" and value == "0") else kind(value))
    args.split_seed = summary.get("split_seed", args.split_seed)  # summaries before 2026-12 kept it only here
    for name in RECORDED_FILES:
        setattr(args, name, recorded_file(trained, name, getattr(args, name), name in given))
    loaded, _ = load_model(str(args.output))
    names = list(load_taxonomy(args.taxonomy).names)
    if list(loaded.config.topic_labels) != names:
        raise SystemExit(f"error: --add-neighbours: the model's {len(loaded.config.topic_labels)} topic labels are "
                         f"not the {len(names)} of --taxonomy {args.taxonomy or DEFAULT_TAXONOMY} -- pass the "
                         "taxonomy it was trained with")
    c = load_corpus(args)  # checked before the minutes of frozen states: the model's split, or a one-line error
    rows = {"sentiment_validation_rows": len(c.sentiment_val), "topic_validation_rows": len(c.topic_val)}
    for key, count in rows.items():
        if key in summary and summary[key] != count:
            raise SystemExit(f"error: --add-neighbours: --train-csv {args.train_csv} and --topic-csv {args.topic_csv} "
                             f"give {count} {key.replace('_', ' ')}, the model's training_summary.json {summary[key]} "
                             "-- pass the files it was trained with")
    trainer = Trainer(args)
    trainer.model.load_state_dict({k: v for k, v in loaded.state_dict().items() if not k.startswith("memory.")},
                                  strict=False)
    trainer.model.config.trained_layers = loaded.config.trained_layers
    held_out = trainer.held_out()
    model = trainer.model
    save_delta(model, args.output)
    summary.update(held_out=held_out, neighbours=neighbour_summary(model),
                   sentiment_temperature=round(model.config.sentiment_temperature, 4),
                   topic_temperature=round(model.config.topic_temperature, 4))
    summary_file.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    alone = held_out.get("heads_only", held_out)
    print(f"added {sum(memory_rows(model.memory)) if model.memory else 0} neighbour rows to {args.output}: "
          f"held-out sentiment macro-F1 {held_out['sentiment']['macro_f1']:.4f} (heads alone "
          f"{alone['sentiment']['macro_f1']:.4f}), topic accuracy {held_out['topic']['accuracy']:.4f} (heads alone "
          f"{alone['topic']['accuracy']:.4f})")
    return 0


def memory_rows(memory: NeighbourMemory) -> tuple[int, int]:
    """Topic and sentiment rows of ``memory``."""
    return memory.topic.rows, memory.sentiment.rows


def neighbour_summary(model: FinSentModel) -> dict[str, Any]:
    c = model.config
    return {"topic_rows": c.neighbour_topic_rows, "sentiment_rows": c.neighbour_sentiment_rows,
            "k": c.neighbour_k, "temperature": c.neighbour_temperature,
            "weight": c.neighbour_weight if model.memory is not None else 0.0}


def train_command(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if args.add_neighbours:
        if args.full or args.teacher:
            raise SystemExit("error: --add-neighbours works on a delta model and trains nothing: drop --full and "
                             "--teacher")
        torch.set_num_threads(cpu_threads(args.num_threads))
        return add_neighbours(args, given_options(argv, RECORDED_FILES))
    if args.base_model not in (None, PACKAGED_BASE) and not args.full and not (
        Path(args.base_model) / FULL_WEIGHTS
    ).is_file():
        raise SystemExit(f"error: --base-model {args.base_model}: no local {FULL_WEIGHTS} there (a hub id?) -- delta "
                         "artifacts need a local base: pass --full, or a directory holding the base's save_pretrained")
    if args.init_encoder is not None and not (args.init_encoder / "config.json").is_file():
        raise SystemExit(f"error: --init-encoder {args.init_encoder}: no config.json -- pass a directory written "
                         "by `monitor pretrain --output DIR`")
    if args.unlabelled and not args.teacher:
        raise SystemExit("error: --unlabelled needs --teacher (its texts carry no label of their own)")
    started = time.perf_counter()
    seed_everything(args.seed)
    torch.set_num_threads(cpu_threads(args.num_threads))
    trainer = Trainer(args)
    print(f"training precision: {trainer.precision} (--precision {args.precision})")
    best_epoch, history = trainer.fit()
    held_out = trainer.held_out()
    model = trainer.model
    model.train(False)
    if args.full:
        save_full(model, trainer.tokenizer, args.output)
    else:
        save_delta(model, args.output)
    c = trainer.corpus
    seconds = time.perf_counter() - started
    summary = {
        "seed": args.seed,
        "split_seed": args.seed if args.split_seed is None else args.split_seed,
        "valid_fraction": args.valid_fraction,
        "precision": trainer.precision,
        "train_rows": len(c.train),
        "sentiment_validation_rows": len(c.sentiment_val),
        "topic_validation_rows": len(c.topic_val),
        "ood_rows": len(c.ood),
        "unlabelled_rows": len(c.train) - sum(1 for i in c.train if c.sentiments[i] != IGNORE or c.topics[i] != IGNORE),
        "best_epoch": best_epoch,
        "held_out": held_out,
        "history": history,
        "training_seconds": round(seconds),
        "threads": torch.get_num_threads(),
        "sentiment_temperature": round(model.config.sentiment_temperature, 4),
        "topic_temperature": round(model.config.topic_temperature, 4),
        "neighbours": neighbour_summary(model),
        "args": summary_args(args),
    }
    (args.output / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    size_mb = sum(f.stat().st_size for f in args.output.iterdir() if f.is_file()) / 1e6
    print(
        f"saved {'full model' if args.full else 'delta'} to {args.output} ({size_mb:.1f} MB) in {seconds:.0f}s; "
        f"best epoch {best_epoch}: held-out sentiment macro-F1 {held_out['sentiment']['macro_f1']:.4f}, "
        f"topic accuracy {held_out['topic']['accuracy']:.4f}"
    )
    if c.ood:
        print(f"out-of-distribution (headline-style, never trained on): {held_out['ood_headline_sentiment']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(train_command(sys.argv[1:]))

"""``monitor train``: fine-tune the two heads (+ the top encoder layers) on the labelled CSV.

Fast on a 2-core CPU because the frozen part is computed ONCE: the text is tokenized once (URLs
stripped, ``--max-length`` tokens), the embeddings and frozen lower layers run once under no_grad and
their output is cached; each epoch then runs only the ``--train-layers`` top layers + heads.
Sentiment labels are the dataset's; topic labels are WEAK labels from the taxonomy rules.
Early stopping watches sentiment macro-F1 on a stratified slice of the TRAIN file (the evaluation file
stays untouched). Temperatures for both heads are then fitted on that slice. With the same seed, data
and thread count the run is deterministic.

    monitor train --output monitor/classify/default_model          # the bundled delta artifact
    monitor train --output DIR --full --base-model <local dir|hub id>  # a full save_pretrained dir
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm
from transformers.masking_utils import create_bidirectional_mask

from monitor.classify.artifact import new_model, pad, save_delta, save_full, tokenize
from monitor.classify.dataset import DATASET_DIR, SENTIMENT_LABELS, read_csv, stratified_split
from monitor.classify.metrics import classification_report
from monitor.classify.model import FinSentModel, fit_temperature, mean_pool
from monitor.classify.topics import load_taxonomy
from monitor.classify.transformer import cpu_threads

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""(hidden states at the first trained layer, attention mask, sentiment ids, topic ids)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor train", description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=Path, required=True, help="directory to write the model to")
    p.add_argument("--full", action="store_true", help="write a full save_pretrained directory, not a delta")
    p.add_argument("--train-csv", type=Path, default=DATASET_DIR / "sent_train.csv")
    p.add_argument("--taxonomy", type=Path, default=None, help="default: configs/taxonomy.toml")
    p.add_argument("--base-model", default=None, help="encoder dir or hub id; default: packaged MiniLM")
    p.add_argument(
        "--valid-fraction", type=float, default=0.1, help="stratified slice of TRAIN for early stop"
    )
    p.add_argument("--max-length", type=int, default=64, help="tokens per text (after URL removal)")
    p.add_argument("--train-layers", type=int, default=3, help="top encoder layers to fine-tune (0 = heads)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--patience", type=int, default=2, help="epochs without macro-F1 gain before stopping")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4, help="encoder layers; heads use 10x")
    p.add_argument("--topic-loss-weight", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--num-threads", type=int, default=0, help="0 = all available cores")
    p.add_argument("--max-examples", type=int, default=0, help="use only the first N rows (smoke tests)")
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
        for s in tqdm(range(0, len(order), 64), desc="frozen layers", unit="batch", leave=False):
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


def top_forward(
    model: FinSentModel, hidden: torch.Tensor, mask: torch.Tensor, start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Heads' logits from cached layer-``start`` inputs: the rest of ``FinSentModel.forward``."""
    attn = create_bidirectional_mask(config=model.encoder.config, inputs_embeds=hidden, attention_mask=mask)
    for layer in encoder_layers(model)[start:]:
        result = layer(hidden, attention_mask=attn)
        hidden = result[0] if isinstance(result, tuple) else result
    topic_logits, sentiment_logits = model.heads(mean_pool(hidden, mask))
    return topic_logits, sentiment_logits


def make_batches(
    states: list[torch.Tensor],
    sentiments: list[int],
    topics: list[int],
    index: list[int],
    size: int,
    generator: torch.Generator | None,
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
        batches.append(
            (hidden, mask, torch.tensor([sentiments[i] for i in g]), torch.tensor([topics[i] for i in g]))
        )
    return batches


def predict_logits(
    model: FinSentModel, batches: list[Batch], start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    model.train(False)
    topic, sentiment = [], []
    with torch.no_grad():
        for hidden, mask, _, _ in batches:
            t, s = top_forward(model, hidden, mask, start)
            topic.append(t)
            sentiment.append(s)
    return torch.cat(topic), torch.cat(sentiment)


def class_weights(labels: Sequence[int], n: int) -> torch.Tensor:
    """Square-root inverse-frequency weights: helps the minority classes (macro-F1) without overshooting."""
    counts = torch.bincount(torch.tensor(labels), minlength=n).float().clamp(min=1)
    weights = (counts.sum() / counts).sqrt()
    return weights / weights.mean()


def train_command(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    started = time.perf_counter()
    seed_everything(args.seed)
    torch.set_num_threads(cpu_threads(args.num_threads))
    taxonomy = load_taxonomy(args.taxonomy)
    data = read_csv(args.train_csv, taxonomy)
    texts, sentiments = data.texts, data.sentiments
    if args.max_examples:
        texts, sentiments = texts[: args.max_examples], sentiments[: args.max_examples]
    topics = taxonomy.weak_labels(texts)
    train_idx, val_idx = stratified_split(sentiments, args.valid_fraction, args.seed)

    model, tokenizer = new_model(args.base_model, list(taxonomy.names), SENTIMENT_LABELS)
    layers = encoder_layers(model)
    start = len(layers) - max(0, min(args.train_layers, len(layers)))
    model.config.trained_layers = list(range(start, len(layers)))
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith("encoder.") or any(
            name.startswith(f"encoder.encoder.layer.{i}.") for i in model.config.trained_layers
        )
    pad_id = int(tokenizer.pad_token_id or 0)
    states = frozen_states(model, tokenize(tokenizer, texts, args.max_length), start, pad_id)

    val_batches = make_batches(states, sentiments, topics, val_idx, 128, None)
    val_sent = torch.cat([b[2] for b in val_batches])
    val_topic = torch.cat([b[3] for b in val_batches])
    generator = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = -(-len(train_idx) // args.batch_size)
    head_params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
    layer_params = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [{"params": layer_params, "lr": args.lr}, {"params": head_params, "lr": args.lr * 10}],
        weight_decay=0.01,
    )
    total_steps = steps_per_epoch * args.epochs
    warmup = max(1, total_steps // 16)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / (total_steps - warmup))),
    )
    sentiment_loss = nn.CrossEntropyLoss(weight=class_weights([sentiments[i] for i in train_idx], 3))
    topic_loss = nn.CrossEntropyLoss()

    best_f1, best_epoch, history = -1.0, 0, []
    best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    for epoch in range(1, args.epochs + 1):
        model.train()
        batches = make_batches(states, sentiments, topics, train_idx, args.batch_size, generator)
        bar = tqdm(batches, desc=f"epoch {epoch}/{args.epochs}", unit="batch")
        for hidden, mask, sent, topic in bar:
            topic_logits, sentiment_logits = top_forward(model, hidden, mask, start)
            loss = sentiment_loss(sentiment_logits, sent) + args.topic_loss_weight * topic_loss(
                topic_logits, topic
            )
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(layer_params + head_params, 1.0)
            optimizer.step()
            scheduler.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        topic_logits, sentiment_logits = predict_logits(model, val_batches, start)
        report = classification_report(
            val_sent.tolist(), sentiment_logits.argmax(-1).tolist(), SENTIMENT_LABELS
        )
        agreement = float((topic_logits.argmax(-1) == val_topic).float().mean())
        history.append(
            {
                "epoch": epoch,
                "val_macro_f1": round(report.macro_f1, 4),
                "val_topic_rule_agreement": round(agreement, 4),
            }
        )
        print(
            f"epoch {epoch}: val sentiment macro-F1 {report.macro_f1:.4f}, "
            f"topic/rule agreement {agreement:.4f}"
        )
        if report.macro_f1 > best_f1:
            best_f1, best_epoch = report.macro_f1, epoch
            best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        elif epoch - best_epoch >= args.patience:
            print(f"early stop: no macro-F1 gain for {args.patience} epochs (best epoch {best_epoch})")
            break

    model.load_state_dict(best_state, strict=False)
    topic_logits, sentiment_logits = predict_logits(model, val_batches, start)
    model.config.sentiment_temperature = fit_temperature(sentiment_logits, val_sent)
    model.config.topic_temperature = fit_temperature(topic_logits, val_topic)
    model.train(False)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.full:
        save_full(model, tokenizer, args.output)
    else:
        save_delta(model, args.output)
    summary = {
        "seed": args.seed,
        "train_rows": len(train_idx),
        "validation_rows": len(val_idx),
        "best_epoch": best_epoch,
        "best_val_macro_f1": round(best_f1, 4),
        "history": history,
        "sentiment_temperature": round(model.config.sentiment_temperature, 4),
        "topic_temperature": round(model.config.topic_temperature, 4),
        "args": {k: str(v) for k, v in sorted(vars(args).items()) if k not in ("output", "num_threads")},
    }
    (args.output / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    size_mb = sum(f.stat().st_size for f in args.output.iterdir() if f.is_file()) / 1e6
    print(
        f"saved {'full model' if args.full else 'delta'} to {args.output} ({size_mb:.1f} MB) "
        f"in {time.perf_counter() - started:.0f}s; best epoch {best_epoch}, val macro-F1 {best_f1:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(train_command(sys.argv[1:]))

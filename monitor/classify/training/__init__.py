"""Building and scoring the model: fine-tuning (``monitor train``), masked-LM adaptation (``monitor
pretrain``), distillation, the labelled-data readers and ``monitor eval`` with its metrics and plots.

The daemon never imports this package; what it loads at run time lives one level up.
"""

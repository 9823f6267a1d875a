"""What the shipped table is measured against in `retable eval --baselines` and the benchmarks: every table
kind tuned contrastively on the run's kept pairs (contrastive.py, train.py), full fine-tuning of the encoder
(finetune.py), and the systems they make (systems.py). `retable adapt` never runs them."""

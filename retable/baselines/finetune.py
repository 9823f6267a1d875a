"""The expensive baseline: fine-tune the whole encoder (sentence-transformers'
MultipleNegativesRankingLoss) on the same kept pairs the table is tuned on."""

from __future__ import annotations

import random
import time

import torch


def finetune_encoder(encoder_path: str, pairs: list[tuple[str, str]], *, epochs: int, batch_size: int, seed: int, lr: float = 2e-5):
    """Returns (fine-tuned SentenceTransformer, seconds spent training)."""
    from sentence_transformers import SentenceTransformer
    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    torch.manual_seed(seed)  # dropout inside the model draws from torch's global generator
    model = SentenceTransformer(encoder_path, device="cpu", local_files_only=True)
    model.train()
    loss_fn = MultipleNegativesRankingLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = random.Random(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            batch = [pairs[j] for j in order[i : i + batch_size]]
            if len(batch) < 2:
                continue
            features = [model.tokenize([q for q, _ in batch]), model.tokenize([p for _, p in batch])]
            loss = loss_fn(features, None)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model, time.perf_counter() - start

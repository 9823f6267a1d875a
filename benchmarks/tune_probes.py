"""Does the tuning recipe or the table's shape limit `adapted`? A finished run's default table retrained
with one setting changed (the same teacher labels, splits and epoch choice), measured on the collection's
real queries beside the validation loss that chose its epoch — to see whether that loss tracks them.

    .venv/bin/python benchmarks/tune_probes.py cisi nfcorpus scifact npl --tag=-onnx
    .venv/bin/python benchmarks/tune_probes.py cisi nfcorpus scifact npl --tag=-onnx --probes "as shipped" "strength 1 (the epoch as trained)"

Reads runs/quality-<name><tag> (made by adapt_quality.py); writes benchmarks/results/tune_probes.json
(with --probes: tune_probes-selected.json).
The probe shapes (rank, one side only, sub-space dropout) live here, not in retable: they are questions.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from ablation import RetrainSetup, retrain_parser  # noqa: E402
from corpus_mode import DATASETS, ROOT  # noqa: E402

from retable.adapters.distill import DistillSettings, distill  # noqa: E402
from retable.adapters.table import PQResidualTable, _gather  # noqa: E402
from retable.adapters.teaching import labelled_sets  # noqa: E402


class ProbeTable(PQResidualTable):
    """The default table with a rank, the sides that get corrections ("separate": queries get a table of
    their own, of the same rank), and sub-space dropout while training."""

    BASIS = ("proj", "query_proj")  # a strength scales the corrections, not the projections they live in

    def __init__(self, m: int, k: int, dim: int, rank: int = PQResidualTable.RANK, sides: str = "both", drop: float = 0.0):
        proj = torch.randn(rank, dim, generator=torch.Generator().manual_seed(0)) / np.sqrt(dim)
        super().__init__(np.zeros((m, k, rank), dtype=np.float32), proj.numpy())
        self.sides, self.drop = sides, drop
        if sides == "separate":
            self.query_weight = nn.Parameter(torch.zeros(m, k, rank))
            self.query_proj = nn.Parameter(torch.randn(rank, dim, generator=torch.Generator().manual_seed(1)) / np.sqrt(dim))

    def _delta(self, codes):
        rows = _gather(self.weight, codes)
        if self.drop and torch.is_grad_enabled():  # training only: validation and search run without gradients
            keep = (torch.rand(rows.shape[:2]) >= self.drop).float().unsqueeze(-1)
            return (rows * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0) @ self.proj
        return rows.mean(dim=1) @ self.proj

    def base_items(self, codes, emb):
        return emb if self.sides == "queries" else super().base_items(codes, emb)

    def queries(self, q, qcodes=None):
        if self.sides == "separate":
            return F.normalize(q + _gather(self.query_weight, qcodes).mean(dim=1) @ self.query_proj, dim=-1)
        return q if self.sides == "items" else super().queries(q, qcodes)


PROBES: dict[str, tuple[dict, dict]] = {  # name -> (DistillSettings changes, ProbeTable options)
    "as shipped": ({}, {}),
    "strength 1 (the epoch as trained)": ({"strengths": (1.0,)}, {}),
    "lr 3e-4, patience 3": ({"lr": 3e-4, "patience": 3}, {}),
    "batch 256, patience 3": ({"batch_size": 256, "patience": 3}, {}),
    "teacher temperature 0.05": ({"teacher_tau": 0.05}, {}),
    "no own-item term": ({"contrastive": 0.0}, {}),
    "own-item term ×4": ({"contrastive": 2.0}, {}),
    "weight decay 1 (AdamW)": ({"weight_decay": 1.0}, {}),
    "rank 16": ({}, {"rank": 16}),
    "items side only": ({}, {"sides": "items"}),
    "queries side only": ({}, {"sides": "queries"}),
    "separate tables, rank 16 each": ({}, {"sides": "separate", "rank": 16}),
    "sub-space dropout 0.25": ({"patience": 3}, {"drop": 0.25}),
    "sub-space dropout 0.5": ({"patience": 3}, {"drop": 0.5}),
    "sub-space dropout 0.75": ({"patience": 3}, {"drop": 0.75}),
}


def probe(name: str, tag: str, probes: list[str]) -> dict:
    s = RetrainSetup.load(ROOT / "runs" / f"quality-{name}{tag}", DATASETS / name)
    sets, _ = labelled_sets(s.labels, s.label_emb, s.quantizer, s.where, set())
    m, k, _ = s.quantizer.centroids().shape
    c = s.config
    base = DistillSettings(epochs=c.epochs, patience=c.patience, lr=c.lr, batch_size=c.batch_size, tau=c.tau, seed=c.seed)
    out = {"untuned": s.measure(ProbeTable(m, k, s.quantizer.dim))}
    print(name, "untuned", out["untuned"], flush=True)
    for probe_name in probes:
        changes, shape = PROBES[probe_name]
        torch.manual_seed(c.seed)  # the dropout masks
        table, start = ProbeTable(m, k, s.quantizer.dim, **shape), time.perf_counter()
        result = distill(table, s.codes, s.quantizer.rotate(s.item_emb), sets["train"], sets["val"], replace(base, **changes))
        out[probe_name] = {**s.measure(table), "best_epoch": result.best_epoch, "strength": result.strength,
                           "val_loss": round(result.best_val_loss, 4),
                           "seconds": round(time.perf_counter() - start, 1)}
        print(name, probe_name, json.dumps(out[probe_name]), flush=True)
    return out


def main() -> None:
    parser = retrain_parser(__doc__)
    parser.add_argument("--probes", nargs="+", choices=list(PROBES), help="only these probes (default: all)")
    args = parser.parse_args()
    probes = args.probes or list(PROBES)
    rows = {name: probe(name, args.tag, probes) for name in args.datasets}
    print(f"\nadapted / adapted_hybrid nDCG@10 ×100 (strength, validation loss at the chosen epoch)\n{'probe':<26}"
          + "".join(f"{n:>30}" for n in rows))
    for p in ["untuned", *probes]:
        cells = [f"{r[p]['adapted']:.2f} / {r[p]['adapted_hybrid']:.2f}"
                 + (f" (×{r[p]['strength']}, {r[p]['val_loss']:.3f})" if "val_loss" in r[p] else "")
                 for r in rows.values()]
        print(f"{p:<26}" + "".join(f"{cell:>30}" for cell in cells))
    out = ROOT / "benchmarks" / "results" / ("tune_probes-selected.json" if args.probes else "tune_probes.json")
    out.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=2) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()

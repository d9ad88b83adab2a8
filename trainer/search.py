"""Architecture search over the RCN modules (seed 003, Sec. III-C4 "Module Integration", Eq. 8).

The search space is a supernet built from the registry's blocks (:mod:`realtime_mer.models.rcn`),
in which every decision is a softmax-weighted mixture of its candidates (a continuous relaxation,
DARTS; Eq. 8 normalises the weights by their sum, the authors' code by a softmax, used here):

* the first convolution (``stem``): standard 3x3 stride 3 (Table I), the wide expansion with
  dilations 1/2/3, or the hybrid two-stream stem of RCN-P (dilations 1/3, max-pool 3); all give
  20x20 maps at 60x60;
* the recurrent layer: plain RCL or RCL with shortcut connections (own weights each);
* three attention positions, each a mixture of "off" and "on" (``h -> w_off h + w_on h * att``, the
  authors' ``CS2``/``CS3`` supernets): on the raw input multiplying the stem output (RCN-C), on
  the RCL's feed-forward state (RCN-F), on the pooled RCL output (RCN-A/P).

Training (the paper: "alpha minimizes the loss on the validation data ... we alternatively update
them"): first-order bilevel optimisation. The search set's subjects are split into a training part
and a validation part (``val_fraction`` of the subjects; no test data is involved); each step
updates the network weights on a training batch, then the architecture weights on a validation
batch. The authors' public code instead trains both jointly on one loss (REFERENCE 1.3).

Derivation (the paper keeps "the top three architectures based on their weights"): every
registered RCN variant is one choice per decision; its score is the sum of the log-probabilities of
its choices. The ranking is reported and the best variant is written as a training config
(``model`` + ``model_config`` in the registry's vocabulary) that ``mer-train --config`` reads.
For an unbiased estimate of the searched model, search on data outside the evaluation set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from realtime_mer.config import settings
from realtime_mer.models import get_spec
from realtime_mer.models.rcn import (
    ClassifierAttention,
    ClassifierHead,
    RCLBlock,
    WideStem,
    init_weights,
    upsample_nearest,
)
from realtime_mer.train.preprocess import Prepared
from realtime_mer.train.protocol import Fold, with_validation

STEMS = ("conv3-s3", "wide", "hybrid")
RCLS = ("plain", "shortcut")
ATTENTION_SITES = ("input", "embedded", "output")

# registered variant -> (stem, rcl, attention site or None)
CANDIDATES: dict[str, tuple[str, str, str | None]] = {
    "rcn": ("conv3-s3", "plain", None),
    "rcn-a": ("conv3-s3", "plain", "output"),
    "rcn-s": ("conv3-s3", "shortcut", None),
    "rcn-w": ("wide", "plain", None),
    "rcn-p": ("hybrid", "shortcut", "output"),
    "rcn-c": ("wide", "shortcut", "input"),
    "rcn-f": ("wide", "shortcut", "embedded"),
}


class SuperRCN(nn.Module):
    """The supernet: ``forward(flow)`` ``(N, C, H, W)`` -> logits ``(N, K)``, every decision mixed.

    Architecture weights (raw, before the softmax): ``alpha_stem`` ``(3,)``, ``alpha_rcl`` ``(2,)``,
    ``alpha_attention`` ``(3, 2)`` (sites x (off, on)), all zero at the start (uniform mixtures).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 3,
        feature_maps: int = 32,
        pool_size: int = 5,
        steps: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        f = feature_maps
        self.stems = nn.ModuleList([
            WideStem(in_channels, f, (1,), stride=3, dropout=dropout),
            WideStem(in_channels, f, (1, 2, 3), stride=3, dropout=dropout),
            WideStem(in_channels, f, (1, 3), stride=1, pool=3, dropout=dropout),
        ])  # fmt: skip
        self.rcls = nn.ModuleList(
            [RCLBlock(f, steps, False, (2, 2), dropout), RCLBlock(f, steps, True, (2, 2), dropout)]
        )
        self.head = ClassifierHead(f, pool_size, num_classes)
        self.attention = ClassifierAttention(pool_size)
        self.input_attention = ClassifierAttention(pool_size, average_weights=True)
        init_weights(self)
        self.alpha_stem = nn.Parameter(torch.zeros(len(STEMS)))
        self.alpha_rcl = nn.Parameter(torch.zeros(len(RCLS)))
        self.alpha_attention = nn.Parameter(torch.zeros(len(ATTENTION_SITES), 2))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_stem, self.alpha_rcl, self.alpha_attention]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def probabilities(self) -> dict[str, np.ndarray]:
        """Softmax of each decision: ``stem`` (3,), ``rcl`` (2,), ``attention`` (3 sites, (off, on))."""
        with torch.no_grad():
            return {
                "stem": F.softmax(self.alpha_stem, 0).double().numpy(),
                "rcl": F.softmax(self.alpha_rcl, 0).double().numpy(),
                "attention": F.softmax(self.alpha_attention, 1).double().numpy(),
            }

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        ws, wr, wa = F.softmax(self.alpha_stem, 0), F.softmax(self.alpha_rcl, 0), F.softmax(self.alpha_attention, 1)
        w = self.head.weight
        outs = [stem(flow) for stem in self.stems]
        if len({tuple(o.shape[-2:]) for o in outs}) != 1:
            raise ValueError(
                f"the candidate stems give maps of sizes {[tuple(o.shape[-2:]) for o in outs]}: use a 60x60 input"
            )
        h = sum(wi * o for wi, o in zip(ws, outs))
        h = h * (wa[0, 0] + wa[0, 1] * upsample_nearest(self.input_attention(flow, w), h.shape[-2:]))
        att = self.attention(h, w)
        h = sum(wi * rcl(h, attention=wa[1, 0] + wa[1, 1] * att) for wi, rcl in zip(wr, self.rcls))
        return self.head(h, attention=wa[2, 0] + wa[2, 1] * att)


@settings
class SearchConfig:
    """Settings of the search.

    Attributes:
        epochs: passes over the search-training rows.
        lr: Adam learning rate of the network weights.
        arch_lr: Adam learning rate of the architecture weights (DARTS: 3e-4; larger for short runs).
        arch_weight_decay: L2 on the architecture weights (DARTS: 1e-3).
        batch: mini-batch size of both updates.
        val_fraction: share of the subjects used as the validation data of the architecture updates.
        feature_maps, pool_size, steps, dropout: the supernet's (and the exported model's) sizes.
        threads: torch threads (see :class:`realtime_mer.train.train.TrainConfig`).
    """

    epochs: int = 20
    lr: float = 1e-3
    arch_lr: float = 3e-3
    arch_weight_decay: float = 1e-3
    batch: int = 32
    val_fraction: float = 0.3
    feature_maps: int = 32
    pool_size: int = 5
    steps: int = 3
    dropout: float = 0.5
    threads: int = 1


@dataclass
class SearchResult:
    """Learned decision probabilities, the ranking of the registered variants, and the history."""

    probabilities: dict[str, Any]
    ranking: list[tuple[str, float]]
    config: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def best(self) -> str:
        return self.ranking[0][0]


def rank_candidates(probs: dict[str, np.ndarray]) -> list[tuple[str, float]]:
    """Registered variants by the sum of the log-probabilities of their choices, best first."""
    scores = []
    for name, (stem, rcl, site) in CANDIDATES.items():
        s = math.log(probs["stem"][STEMS.index(stem)]) + math.log(probs["rcl"][RCLS.index(rcl)])
        for i, where in enumerate(ATTENTION_SITES):
            s += math.log(probs["attention"][i, 1 if where == site else 0])
        scores.append((name, s))
    return sorted(scores, key=lambda t: -t[1])


def exported_config(
    name: str, cfg: SearchConfig, in_channels: int, num_classes: int, size: tuple[int, int]
) -> dict[str, Any]:
    """Training-config mapping (``model``, ``model_config``) of registered variant ``name`` at the search's sizes."""
    overrides: dict[str, Any] = {
        "in_channels": in_channels, "num_classes": num_classes, "feature_maps": cfg.feature_maps,
        "pool_size": cfg.pool_size, "steps": cfg.steps, "dropout": cfg.dropout, "input_size": list(size),
    }  # fmt: skip
    if "stem" in get_spec(name).default_config:
        overrides["stem"] = CANDIDATES[name][0]
    return {"model": name, "model_config": get_spec(name).config(overrides)}


def search(
    prepared: Prepared,
    num_classes: int,
    cfg: SearchConfig,
    seed: int = 1,
    log: Callable[[str], None] | None = None,
) -> SearchResult:
    """Run the bilevel search on RCN inputs (``prepared.inputs["flow"]`` ``(M, 3, H, W)``)."""
    if "flow" not in prepared.inputs or prepared.inputs["flow"].ndim != 4:
        raise ValueError("the architecture search runs on RCN flow maps: preprocess with an rcn model's input")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    everyone = np.arange(len(prepared.samples))
    split = with_validation(Fold("search", everyone, np.zeros(0, np.int64), np.zeros(0, np.int64)),
                            prepared.samples, cfg.val_fraction, True, seed)  # fmt: skip
    x = torch.from_numpy(prepared.inputs["flow"])
    labels = torch.tensor([s.label for s in prepared.samples])[torch.from_numpy(prepared.owner)]
    train_rows, val_rows = prepared.rows_of(split.train, True), prepared.rows_of(split.val, False)
    c, h, w = x.shape[1:]
    net = SuperRCN(c, num_classes, cfg.feature_maps, cfg.pool_size, cfg.steps, cfg.dropout)
    w_opt = torch.optim.Adam(net.weight_parameters(), cfg.lr)
    a_opt = torch.optim.Adam(net.arch_parameters(), cfg.arch_lr, betas=(0.5, 0.999), weight_decay=cfg.arch_weight_decay)
    history = []
    for epoch in range(cfg.epochs):
        net.train()
        order = rng.permutation(train_rows)
        w_losses, a_losses = [], []
        for i in range(0, len(order), cfg.batch):
            rows = order[i : i + cfg.batch]
            if len(rows) < 2:
                continue
            loss = F.cross_entropy(net(x[rows]), labels[rows])
            w_opt.zero_grad()
            loss.backward()
            w_opt.step()
            w_losses.append(float(loss.detach()))
            vrows = rng.choice(val_rows, size=min(cfg.batch, len(val_rows)), replace=False)
            if len(vrows) < 2:
                vrows = np.resize(vrows, 2)
            vloss = F.cross_entropy(net(x[vrows]), labels[vrows])
            a_opt.zero_grad()
            vloss.backward()
            a_opt.step()
            a_losses.append(float(vloss.detach()))
        history.append(
            {"epoch": epoch + 1, "train_loss": float(np.mean(w_losses)), "val_loss": float(np.mean(a_losses))}
        )
        if log:
            p = net.probabilities()
            log(f"search epoch {epoch + 1}/{cfg.epochs}: train loss {history[-1]['train_loss']:.4f}, "
                f"val loss {history[-1]['val_loss']:.4f}, stem {np.round(p['stem'], 3).tolist()}, "
                f"rcl {np.round(p['rcl'], 3).tolist()}, "
                f"attention on {np.round(p['attention'][:, 1], 3).tolist()}")  # fmt: skip
    probs = net.probabilities()
    ranking = rank_candidates(probs)
    config = exported_config(ranking[0][0], cfg, c, num_classes, (h, w))
    readable = {
        "stem": dict(zip(STEMS, probs["stem"].round(4).tolist())),
        "rcl": dict(zip(RCLS, probs["rcl"].round(4).tolist())),
        "attention_on": dict(zip(ATTENTION_SITES, probs["attention"][:, 1].round(4).tolist())),
    }
    return SearchResult(readable, ranking, config, history)


def write_architecture(result: SearchResult, path: str | Path) -> Path:
    """The best variant as a training config (YAML), the search's numbers as comments on top."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Architecture found by `mer-train search` (seed 003 Eq. 8, bilevel first-order search).",
        f"# Decision probabilities: {result.probabilities}",
        "# Top three registered variants (sum of log-probabilities of their choices):",
        *(f"#   {i + 1}. {name}: {score:.4f}" for i, (name, score) in enumerate(result.ranking[:3])),
        "# Train and evaluate it with: mer-train --config THIS_FILE --dataset KIND:PATH --protocol loso",
    ]
    path.write_text("\n".join(lines) + "\n" + yaml.safe_dump(result.config, sort_keys=False))
    return path

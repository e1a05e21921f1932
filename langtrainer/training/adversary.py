"""The language adversary: a language-identification head on the encoder's first token.

The paper's footnote 2 tried "entropy maximisation and gradient reversal of a
language identification head" to make the representation language-invariant.
Both variants train a head to tell the language from the first-token
representation of the last layer (what the probe reads), by cross-entropy at
unit weight; they differ in what reaches the encoder:

- gradient_reversal (Ganin & Lempitsky 2015): the head's loss flows back
  through a gradient-reversal layer, so the encoder receives -lambda x the
  gradient the head's loss would give it, while the head receives +1 x its own;
- entropy: the head learns on detached features (no gradient to the encoder),
  and the encoder separately receives lambda x the gradient of the head's
  negative prediction entropy, computed with the head's parameters detached
  (so that term never moves the head): the encoder is pushed to make the head
  uncertain, the head keeps trying to be right.

lambda = weight (schedule "constant") or weight x (2 / (1 + exp(-10 p)) - 1)
(schedule "dann", Ganin et al. 2016), p = optimizer steps done / total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Where the head lives during training: an attribute of the classifier, so
# that checkpoints, resume, the best-model reload and DDP carry it; the saved
# classifier drops it (LangTrainer.save_model).
MODULE_NAME = "language_adversary"


def dann_ramp(progress: float) -> float:
    """2 / (1 + exp(-10 p)) - 1: 0 at p = 0, 0.987 at p = 0.5, 0.99991 at p = 1."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


def adversary_lambda(weight: float, schedule: str, progress: float) -> float:
    """The coefficient of the encoder's adversarial gradient at training progress p in [0, 1]."""
    if schedule == "dann":
        return float(weight) * dann_ramp(progress)
    return float(weight)


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lam * grad, None


def reverse_gradient(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity forward; the backward pass multiplies the gradient by -lam."""
    return _GradientReversal.apply(x, float(lam))


class LanguageHead(nn.Module):
    """Linear (hidden = 0) or one hidden ReLU layer, d -> languages."""

    def __init__(self, in_features: int, n_languages: int, hidden: int = 0):
        super().__init__()
        if hidden > 0:
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, n_languages))
        else:
            self.net = nn.Linear(in_features, n_languages)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def make_head(in_features: int, n_languages: int, hidden: int, seed: int) -> LanguageHead:
    """A head initialised from `seed` alone, without moving the global random stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LanguageHead(in_features, n_languages, hidden)


@dataclass
class AdversaryTerms:
    """One batch's adversary: what to add to the loss, and what to log.

    `loss` is the piece compute_loss adds (a per-batch mean, like the task
    loss); `head_ce_sum` / `correct` / `count` are sums over the batch's rows,
    so logged means are exact per row whatever the batch sizes.
    """

    loss: torch.Tensor
    head_ce_sum: float
    correct: int
    count: int
    neg_entropy: float | None = None


def adversary_terms(head: nn.Module, features: torch.Tensor, language: torch.Tensor, method: str,
                    lam: float) -> AdversaryTerms:
    """The adversary's loss piece on `features` [batch, d] with language ids [batch].

    gradient_reversal: CE(head(R_lam(h)), y); head gradient +dCE, encoder -lam dCE.
    entropy: CE(head(h.detach()), y) + lam * sum_c p_c log p_c with p = softmax(head_detached(h));
    head gradient +dCE only, encoder lam * d(neg entropy) only.
    """
    features = features.float()
    language = language.to(features.device)
    if method == "gradient_reversal":
        logits = head(reverse_gradient(features, lam))
        ce = F.cross_entropy(logits, language)
        loss, neg_entropy = ce, None
    elif method == "entropy":
        logits = head(features.detach())
        ce = F.cross_entropy(logits, language)
        frozen = {name: p.detach() for name, p in head.named_parameters()}
        log_p = F.log_softmax(torch.func.functional_call(head, frozen, (features,)), dim=-1)
        neg_entropy_t = (log_p.exp() * log_p).sum(dim=-1).mean()
        loss = ce + lam * neg_entropy_t
        neg_entropy = float(neg_entropy_t.detach())
    else:
        raise ValueError(f"unknown language adversary method {method!r}")
    ce_sum, correct, count = head_counts(logits, language)
    return AdversaryTerms(loss=loss, head_ce_sum=ce_sum, correct=correct, count=count, neg_entropy=neg_entropy)


def head_counts(logits: torch.Tensor, language: torch.Tensor) -> tuple[float, int, int]:
    """(sum of the head's per-row CE, rows it identifies correctly, rows) of one batch."""
    with torch.no_grad():
        logits = logits.detach().float()
        language = language.to(logits.device)
        ce_sum = float(F.cross_entropy(logits, language, reduction="sum"))
        correct = int((logits.argmax(dim=-1) == language).sum())
    return ce_sum, correct, int(language.numel())

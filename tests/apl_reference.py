"""A float64 port of the APL family's losses as their authors wrote them: HanxunH/Active-Passive-Losses loss.py
@fdd52a214292b7ad777e5811cf8ac313152709cf (the same file as at the initial commit 89fa39a), class by class, the
arithmetic unchanged. The only edits: the one-hot labels take the logits' dtype and device instead of `.float()`
on a module-level device, `Variable(x.data)` is written `x.detach()`, and the dead code after RCE's return is gone.
The classes are built as train.py @fdd52a2 builds them from --alpha, --beta, --gamma and --q (`APL`).
"""

import torch
import torch.nn.functional as F


def _one_hot(labels: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels, num_classes).to(like.dtype)


class ReverseCrossEntropy(torch.nn.Module):
    def __init__(self, num_classes, scale=1.0):
        super().__init__()
        self.num_classes, self.scale = num_classes, scale

    def forward(self, pred, labels):
        pred = F.softmax(pred, dim=1)
        pred = torch.clamp(pred, min=1e-7, max=1.0)
        label_one_hot = torch.clamp(_one_hot(labels, self.num_classes, pred), min=1e-4, max=1.0)
        rce = -1 * torch.sum(pred * torch.log(label_one_hot), dim=1)
        return self.scale * rce.mean()


class NormalizedReverseCrossEntropy(torch.nn.Module):
    def __init__(self, num_classes, scale=1.0):
        super().__init__()
        self.num_classes, self.scale = num_classes, scale

    def forward(self, pred, labels):
        pred = F.softmax(pred, dim=1)
        pred = torch.clamp(pred, min=1e-7, max=1.0)
        label_one_hot = torch.clamp(_one_hot(labels, self.num_classes, pred), min=1e-4, max=1.0)
        normalizor = 1 / 4 * (self.num_classes - 1)
        rce = -1 * torch.sum(pred * torch.log(label_one_hot), dim=1)
        return self.scale * normalizor * rce.mean()


class NormalizedCrossEntropy(torch.nn.Module):
    def __init__(self, num_classes, scale=1.0):
        super().__init__()
        self.num_classes, self.scale = num_classes, scale

    def forward(self, pred, labels):
        pred = F.log_softmax(pred, dim=1)
        label_one_hot = _one_hot(labels, self.num_classes, pred)
        nce = -1 * torch.sum(label_one_hot * pred, dim=1) / (-pred.sum(dim=1))
        return self.scale * nce.mean()


class GeneralizedCrossEntropy(torch.nn.Module):
    def __init__(self, num_classes, q=0.7):
        super().__init__()
        self.num_classes, self.q = num_classes, q

    def forward(self, pred, labels):
        pred = F.softmax(pred, dim=1)
        pred = torch.clamp(pred, min=1e-7, max=1.0)
        label_one_hot = _one_hot(labels, self.num_classes, pred)
        gce = (1.0 - torch.pow(torch.sum(label_one_hot * pred, dim=1), self.q)) / self.q
        return gce.mean()


class NormalizedGeneralizedCrossEntropy(torch.nn.Module):
    def __init__(self, num_classes, scale=1.0, q=0.7):
        super().__init__()
        self.num_classes, self.q, self.scale = num_classes, q, scale

    def forward(self, pred, labels):
        pred = F.softmax(pred, dim=1)
        pred = torch.clamp(pred, min=1e-7, max=1.0)
        label_one_hot = _one_hot(labels, self.num_classes, pred)
        numerators = 1.0 - torch.pow(torch.sum(label_one_hot * pred, dim=1), self.q)
        denominators = self.num_classes - pred.pow(self.q).sum(dim=1)
        ngce = numerators / denominators
        return self.scale * ngce.mean()


class MeanAbsoluteError(torch.nn.Module):
    def __init__(self, num_classes, scale=1.0):
        super().__init__()
        self.num_classes, self.scale = num_classes, scale

    def forward(self, pred, labels):
        pred = F.softmax(pred, dim=1)
        label_one_hot = _one_hot(labels, self.num_classes, pred)
        mae = 1.0 - torch.sum(label_one_hot * pred, dim=1)
        return self.scale * mae.mean()


class NormalizedMeanAbsoluteError(torch.nn.Module):
    def __init__(self, num_classes, scale=1.0):
        super().__init__()
        self.num_classes, self.scale = num_classes, scale

    def forward(self, pred, labels):
        pred = F.softmax(pred, dim=1)
        label_one_hot = _one_hot(labels, self.num_classes, pred)
        normalizor = 1 / (2 * (self.num_classes - 1))
        mae = 1.0 - torch.sum(label_one_hot * pred, dim=1)
        return self.scale * normalizor * mae.mean()


class NormalizedFocalLoss(torch.nn.Module):
    def __init__(self, scale=1.0, gamma=0, num_classes=10):
        super().__init__()
        self.gamma, self.num_classes, self.scale = gamma, num_classes, scale

    def forward(self, input, target):
        target = target.view(-1, 1)
        logpt = F.log_softmax(input, dim=1)
        normalizor = torch.sum(-1 * (1 - logpt.detach().exp()) ** self.gamma * logpt, dim=1)
        logpt = logpt.gather(1, target)
        logpt = logpt.view(-1)
        pt = logpt.detach().exp()
        loss = -1 * (1 - pt) ** self.gamma * logpt
        loss = self.scale * loss / normalizor
        return loss.mean()


class _Pair(torch.nn.Module):
    def __init__(self, first, second):
        super().__init__()
        self.first, self.second = first, second

    def forward(self, pred, labels):
        return self.first(pred, labels) + self.second(pred, labels)


def APL(name: str, num_classes: int, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5, q: float = 0.7):
    """The criterion train.py @fdd52a2 builds for --loss `name` (our loss names) with these arguments (gamma's and
    q's defaults are the values APL's runs pass, not argparse's)."""
    c = num_classes
    nfl = NormalizedFocalLoss(scale=alpha, gamma=gamma, num_classes=c)
    ngce = NormalizedGeneralizedCrossEntropy(scale=alpha, q=q, num_classes=c)
    built = {
        "apl_mae": lambda: MeanAbsoluteError(scale=alpha, num_classes=c),
        "nfl": lambda: nfl,
        "ngce": lambda: ngce,
        "nmae": lambda: NormalizedMeanAbsoluteError(scale=alpha, num_classes=c),
        "nrce": lambda: NormalizedReverseCrossEntropy(scale=alpha, num_classes=c),
        "nfl+nce": lambda: _Pair(nfl, NormalizedCrossEntropy(scale=beta, num_classes=c)),
        "nfl+mae": lambda: _Pair(nfl, MeanAbsoluteError(scale=beta, num_classes=c)),
        "nfl+rce": lambda: _Pair(nfl, ReverseCrossEntropy(scale=beta, num_classes=c)),
        "ngce+nce": lambda: _Pair(ngce, NormalizedCrossEntropy(scale=beta, num_classes=c)),
        "ngce+mae": lambda: _Pair(ngce, MeanAbsoluteError(scale=beta, num_classes=c)),
        "ngce+rce": lambda: _Pair(ngce, ReverseCrossEntropy(scale=beta, num_classes=c)),
        # GCEandMAE, GCEandRCE: their GCE is built without alpha; GCEandNCE's NCE without beta.
        "gce+mae": lambda: _Pair(GeneralizedCrossEntropy(c, q=q), MeanAbsoluteError(scale=beta, num_classes=c)),
        "gce+rce": lambda: _Pair(GeneralizedCrossEntropy(c, q=q), ReverseCrossEntropy(scale=beta, num_classes=c)),
        "gce+nce": lambda: _Pair(GeneralizedCrossEntropy(c, q=q), NormalizedCrossEntropy(num_classes=c)),
        "mae+rce": lambda: _Pair(MeanAbsoluteError(scale=alpha, num_classes=c),
                                 ReverseCrossEntropy(scale=beta, num_classes=c)),
    }
    return built[name]()

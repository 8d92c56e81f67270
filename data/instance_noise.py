"""Instance-dependent label noise as the field runs it: Xia et al., "Part-dependent label noise", NeurIPS 2020
(xiaoboxia/Part-dependent-label-noise, tools.py get_instance_noisy_label @b682527), made deterministic.

For N training images x_i with true labels y_i, C classes, nominal rate n and std σ (instance_std, 0.1 there):
  1. q_i ~ N(n, σ²) truncated to [0, 1]: each sample's flip rate;
  2. W_c ~ N(0, 1) of shape (S, C), one projection per true class c, S = the number of pixels x channels;
  3. scores s_i = x_i W_{y_i}, the true class's score set to -inf; P_i = q_i softmax(s_i), plus 1 - q_i on y_i;
  4. one categorical draw per sample from P_i.
So a sample keeps its label with probability exactly 1 - q_i and the realized rate is the truncated normal's mean,
not n: 12.9 % at n = 0.1, 20.6 % at 0.2, n from 0.4 up, and 8.0 % (σ √(2/π)) at n = 0. Because the raw-pixel
scores are thousands apart, the softmax is saturated: each sample's wrong label is practically its argmax.

The choices, where the reference leaves them to numpy, CUDA and float32:
  - features: the raw uint8 training images as float64 0-255, flattened C x H x W, no augmentation or
    normalization (as the reference). MNIST is at its padded 32 x 32: the padding is black, adds nothing to any
    score, and only makes W larger than the reference's 28 x 28 one;
  - every draw comes from one generator seeded by the noise seed (data.draws, purpose "label-noise"), in a fixed
    order: N uniforms for the q_i, then C x S x C for W (class by class, each (S, C) in row-major order), then N
    for the labels. Normal and truncated-normal values are their inverse CDFs (torch.special.ndtri) of those
    uniforms, and the label is drawn by inverse CDF from the float64-renormalized P_i, so nothing depends on
    numpy's or torch's sampling algorithms;
  - W is rounded to a multiple of 2^-30, so that every score (integer pixels times W, summed) is exact in
    float64 whatever the summation order: no BLAS, CPU or GPU changes a label. 2^-30 is finer than the
    reference's float32 W for every |w| >= 2^-6;
  - generated on the whole training set before the holdout is split off, as the other noise types
    (data.run_data), so the validation labels are as noisy: as the reference, which splits 90/10 afterwards.
"""

import math

import torch

from data.draws import generator as seeded

DEFAULT_STD = 0.1  # the reference's norm_std
_GRID = 2.0**-30  # W's resolution: see the module docstring
# With |x| <= 255 and W on the grid, sum_s |x_s w_s| below this keeps every partial sum exact in float64.
_EXACT_BOUND = 2.0 ** (53 - 30)
_OPEN = 2.0**-53  # keeps the uniforms off 0, where the normal's inverse CDF is infinite


def _truncated_normal(u: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Inverse CDF of N(mean, std²) truncated to [0, 1] at the uniforms `u`."""
    lower, upper = torch.special.ndtr(torch.tensor([-mean / std, (1 - mean) / std], dtype=torch.float64))
    return (mean + std * torch.special.ndtri(lower + u * (upper - lower))).clamp(0.0, 1.0)


def _projection(draw: torch.Generator, features: int, num_classes: int) -> torch.Tensor:
    """One W_c: float64 (features, num_classes), standard normal, on the 2^-30 grid."""
    u = torch.rand(features, num_classes, generator=draw, dtype=torch.float64).clamp_min(_OPEN)
    return torch.round(torch.special.ndtri(u) / _GRID) * _GRID


def instance_noisy_labels(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, rate: float, std: float, seed: int
) -> torch.Tensor:
    """Xia et al.'s instance-dependent noisy labels (see the module docstring) for uint8 `images` (N, C, H, W)
    and clean int64 `labels` (N,): int64 (N,), a function of the inputs and `seed` only."""
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"images: expected uint8 (N, C, H, W) for {len(labels)} labels, got {images.dtype} "
                         f"{tuple(images.shape)}")
    if not 0.0 <= rate <= 1.0 or not (math.isfinite(std) and std > 0):
        raise ValueError(f"instance noise needs a rate in [0, 1] and a std > 0, got {rate} and {std}")
    draw = seeded("label-noise", seed)
    flip_rate = _truncated_normal(torch.rand(len(labels), generator=draw, dtype=torch.float64), rate, std)
    features = images[0].numel() if len(images) else 0
    scores = torch.empty(len(labels), num_classes, dtype=torch.float64)
    for c in range(num_classes):  # every W_c is drawn, so the stream does not depend on which classes occur
        w = _projection(draw, features, num_classes)
        members = (labels == c).nonzero().flatten()
        x = images[members].reshape(len(members), -1).to(torch.float64)
        if len(members) and float(x.max()) * float(w.abs().sum(0).max()) >= _EXACT_BOUND:
            raise ValueError(f"images of {features} values are too large for exact float64 scores")
        scores[members] = x @ w
    rows = torch.arange(len(labels))
    scores[rows, labels] = -math.inf
    probabilities = flip_rate[:, None] * torch.softmax(scores, dim=1)
    probabilities[rows, labels] += 1 - flip_rate
    cdf = torch.cumsum(probabilities / probabilities.sum(1, keepdim=True), dim=1)
    cdf[:, -1] = 1.0
    u = torch.rand(len(labels), generator=draw, dtype=torch.float64)
    return (cdf <= u[:, None]).sum(1)  # the first class whose CDF exceeds u

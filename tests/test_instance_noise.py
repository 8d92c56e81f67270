"""Instance-dependent noise (Xia et al., NeurIPS 2020): the labels against an independent float64 implementation,
the realized rates against the truncated normal's mean, determinism, the config keys and the preset."""

import json
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from compose import compose_train, train_tiny
from data.draws import generator
from data.instance_noise import instance_noisy_labels
from data.synthetic import make_synthetic
from experiments.identity import run_name
from experiments.resolve import resolve
from experiments.schema import ConfigError
from rundata import run_data


def _images(n: int, shape: tuple[int, ...], high: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, high + 1, (n, *shape), dtype=np.uint8))


def _reference(images: np.ndarray, labels: np.ndarray, num_classes: int, rate: float, std: float, seed: int):
    """The generator written out sample by sample in numpy and scipy float64, from the uniforms the spec fixes:
    N for the flip rates, C x S x C for the projections, N for the draws, of the noise seed's stream."""
    n, features = len(labels), images[0].size
    draw = generator("label-noise", seed)
    u_rate = torch.rand(n, generator=draw, dtype=torch.float64).numpy()
    u_w = torch.rand(num_classes, features, num_classes, generator=draw, dtype=torch.float64).numpy()
    u_label = torch.rand(n, generator=draw, dtype=torch.float64).numpy()
    q = scipy.stats.truncnorm.ppf(u_rate, -rate / std, (1 - rate) / std, loc=rate, scale=std)
    w = np.round(scipy.special.ndtri(np.maximum(u_w, 2.0**-53)) * 2.0**30) / 2.0**30
    noisy = []
    for i in range(n):
        x, y = images[i].reshape(-1).astype(np.float64), labels[i]
        scores = np.array([sum(x[s] * w[y, s, j] for s in range(features)) for j in range(num_classes)])
        scores[y] = -np.inf
        e = np.exp(scores - scores.max())
        p = q[i] * e / e.sum()
        p[y] += 1 - q[i]
        cdf = np.cumsum(p / p.sum())
        noisy.append(min(int(np.searchsorted(cdf, u_label[i], side="right")), num_classes - 1))
    return np.array(noisy)


@pytest.mark.parametrize(
    "high, rate, std",
    [
        (255, 0.4, 0.1),  # raw pixels: saturated scores, as on the real datasets
        (1, 0.4, 0.1),  # pixels of 0 and 1: scores of a few units, so the draw among the wrong labels matters
        (1, 0.2, 0.3),
        (2, 0.9, 0.05),
    ],
)
def test_labels_equal_an_independent_float64_implementation(high, rate, std):
    images, labels = _images(240, (3, 2, 3), high), torch.arange(240) % 4
    noisy = instance_noisy_labels(images, labels, 4, rate, std, seed=3)
    assert noisy.dtype == torch.int64
    expected = _reference(images.numpy(), labels.numpy(), 4, rate, std, seed=3)
    assert noisy.tolist() == expected.tolist()
    wrong = noisy != labels
    assert 0 < int(wrong.sum()) < 240
    if high == 1:  # the wrong labels of one class are spread, not all its argmax
        assert len(set(noisy[wrong & (labels == 0)].tolist())) == 3


@pytest.mark.parametrize("rate, std", [(0.0, 0.1), (0.1, 0.1), (0.2, 0.1), (0.4, 0.1), (0.6, 0.1), (1.0, 0.1),
                                       (0.2, 0.3)])
def test_realized_rate_is_the_truncated_normal_mean(rate, std):
    """A sample keeps its label with probability 1 - q_i, so the flips are Bernoulli(E[q]): within 4 binomial
    standard deviations of the mean of N(rate, std²) truncated to [0, 1] (scipy's), not of the nominal rate."""
    n = 20_000
    images, labels = _images(n, (1, 2, 2), 255, seed=1), torch.arange(n) % 5
    realized = (instance_noisy_labels(images, labels, 5, rate, std, seed=0) != labels).double().mean().item()
    mean = scipy.stats.truncnorm(-rate / std, (1 - rate) / std, loc=rate, scale=std).mean()
    assert realized == pytest.approx(mean, abs=4 * math.sqrt(mean * (1 - mean) / n))
    # The figures data/instance_noise.py's docstring quotes.
    quoted = {0.0: 0.0798, 0.1: 0.1288, 0.2: 0.2055, 0.4: 0.4000, 0.6: 0.6000, 1.0: 0.9202}
    if std == 0.1:
        assert mean == pytest.approx(quoted[rate], abs=5e-5)


def test_deterministic_in_the_noise_seed_and_nothing_else():
    images, labels = _images(500, (3, 4, 4), 255), torch.arange(500) % 10
    first = instance_noisy_labels(images, labels, 10, 0.4, 0.1, seed=7)
    assert torch.equal(first, instance_noisy_labels(images.clone(), labels.clone(), 10, 0.4, 0.1, seed=7))
    assert not torch.equal(first, instance_noisy_labels(images, labels, 10, 0.4, 0.1, seed=8))
    assert torch.equal(labels, torch.arange(500) % 10)  # the input is left alone
    # The labels depend on the pixels too.
    assert not torch.equal(first, instance_noisy_labels(_images(500, (3, 4, 4), 255, seed=9), labels, 10, 0.4, 0.1,
                                                        seed=7))


def test_generated_on_the_whole_training_set_before_the_holdout():
    dataset = make_synthetic(300, 10, 10, seed=0)
    kwargs = {"noise": 0.4, "noise_type": "instance", "noise_seed": 2}
    whole = run_data(dataset, **kwargs, holdout=0)
    assert torch.equal(run_data(dataset, **kwargs, holdout=100).noisy_labels, whole.noisy_labels)
    assert torch.equal(whole.noisy_labels, instance_noisy_labels(dataset.train_images, dataset.train_labels, 10,
                                                                 0.4, 0.1, seed=2))
    assert whole.realized_rate == (whole.noisy_labels != dataset.train_labels).double().mean().item()
    wider = run_data(dataset, **kwargs, instance_std=0.3, holdout=0, batch_size=32)
    assert not torch.equal(wider.noisy_labels, whole.noisy_labels)


def test_rejects_what_it_cannot_draw():
    labels = torch.arange(4)
    with pytest.raises(ValueError, match="images"):
        instance_noisy_labels(_images(4, (3, 2, 2), 255).float(), labels, 4, 0.2, 0.1, 0)
    with pytest.raises(ValueError, match="std > 0"):
        instance_noisy_labels(_images(4, (3, 2, 2), 255), labels, 4, 0.2, 0.0, 0)


def test_config_keys_names_and_validation():
    cfg = resolve(compose_train("noise_type=instance", "noise=0.4"))
    assert cfg.instance_std == 0.1 and run_name(cfg) == "cifar10/ce/noise0.4-instance-holdout5000-seed0"
    wide = resolve(compose_train("noise_type=instance", "noise=0.4", "instance_std=0.2"))
    assert run_name(wide) == "cifar10/ce/noise0.4-instance-std0.2-holdout5000-seed0"
    assert resolve(compose_train("noise=0.4")).instance_std is None  # the other noise types record null
    for overrides, message in (
        (("noise_type=instance", "instance_std=0"), "instance_std: must be a finite number > 0"),
        (("noise_type=instance", "instance_std=nan"), "instance_std: must be a finite number > 0"),
        (("instance_std=0.2",), "instance_std: only used with noise_type=instance"),
    ):
        with pytest.raises(ConfigError) as caught:
            resolve(compose_train(*overrides))
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_run_records_the_realized_rate_and_the_fingerprint(tmp_path):
    status, run_dir = train_tiny(tmp_path, "noise_type=instance", "noise=0.4", "epochs=1")
    assert status == "complete"
    noise = json.loads((run_dir / "summary.json").read_text())["noise"]
    noisy = np.load(run_dir / "noisy_labels.npy")
    dataset = make_synthetic(160, 64, 10, seed=0)
    expected = instance_noisy_labels(dataset.train_images, dataset.train_labels, 10, 0.4, 0.1, seed=0)
    assert noisy.tolist() == expected.tolist()
    assert noise["type"] == "instance" and noise["instance_std"] == 0.1
    assert noise["realized"] == float((expected != dataset.train_labels).double().mean())
    assert set(noise["fingerprint"]) == {"class_rate_min", "class_rate_max", "top_target_share", "top_class_share",
                                         "same_superclass_share"}
    assert noise["fingerprint"]["same_superclass_share"] is None  # not CIFAR-100


def test_idn_preset_is_the_grid():
    cfg = compose_train("experiment=idn", hydra=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.noise_type == "instance"
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    assert params == {
        "dataset": ["cifar10", "cifar100"],
        "loss": ["ce", "mse", "mae", "tce0.5", "tce1", "tce1.5", "tce2"],
        "noise": ["0.2", "0.4", "0.6"],
        "protocol": ["val", "full0", "full1", "full2", "full3", "full4"],
    }
    assert math.prod(len(v) for v in params.values()) == 252  # the count in the preset's comment

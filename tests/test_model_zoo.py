"""The peers' networks (models/cnn.py, models/resnet34_preact18.py): sizes counted by hand from the authors' layer
lists, shapes, init, how the config selects them, and that run directories of ResNet-20 keep their identity."""

import math
import re

import pytest
import torch
from omegaconf import OmegaConf

import models
from compose import compose_train
from experiments.identity import recipe
from experiments.resolve import CONFIGS, resolve
from experiments.rundir import RunDir, RunDirError
from experiments.schema import ConfigError


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(c_in: int, c_out: int, k: int = 3, bias: bool = False) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # weight and bias


def linear(c_in: int, c_out: int) -> int:
    return c_in * c_out + c_out


def cnn8_params(c_in: int, classes: int) -> int:
    # [conv 64, conv 64, pool] [128, 128, pool] [196, 196, pool], each conv with a bias, BN; 32 -> 16 -> 8 -> 4.
    convs = (conv(c_in, 64, bias=True) + bn(64) + conv(64, 64, bias=True) + bn(64)
             + conv(64, 128, bias=True) + bn(128) + conv(128, 128, bias=True) + bn(128)
             + conv(128, 196, bias=True) + bn(196) + conv(196, 196, bias=True) + bn(196))
    return convs + linear(4 * 4 * 196, 256) + bn(256) + linear(256, classes)


def cnn4_params(c_in: int, classes: int) -> int:
    # [conv 32, pool] [conv 64, pool] at 32 x 32: 8 x 8 x 64 = 4096 features (the authors' 28 x 28: 7 x 7 x 64).
    convs = conv(c_in, 32, bias=True) + bn(32) + conv(32, 64, bias=True) + bn(64)
    return convs + linear(8 * 8 * 64, 128) + bn(128) + linear(128, classes)


def basic_block(c_in: int, c_out: int) -> int:
    """kuangliu's BasicBlock: two 3x3 convs with BN, a 1x1 conv + BN shortcut where the width changes."""
    shortcut = conv(c_in, c_out, 1) + bn(c_out) if c_in != c_out else 0
    return conv(c_in, c_out) + bn(c_out) + conv(c_out, c_out) + bn(c_out) + shortcut


def preact_block(c_in: int, c_out: int) -> int:
    """DivideMix's PreActBlock: BN(c_in), conv, BN(c_out), conv, a bare 1x1 conv shortcut where the width changes."""
    shortcut = conv(c_in, c_out, 1) if c_in != c_out else 0
    return bn(c_in) + conv(c_in, c_out) + bn(c_out) + conv(c_out, c_out) + shortcut


def stages(block, widths: list[int], counts: list[int]) -> int:
    total, c_in = 0, 64
    for width, count in zip(widths, counts, strict=True):
        total += block(c_in, width) + (count - 1) * block(width, width)
        c_in = width
    return total


def resnet34_params(c_in: int, classes: int) -> int:
    body = stages(basic_block, [64, 128, 256, 512], [3, 4, 6, 3])
    return conv(c_in, 64) + bn(64) + body + linear(512, classes)


def preact_resnet18_params(c_in: int, classes: int) -> int:
    # The stem is conv-BN-ReLU and there is no BatchNorm after the last block (DivideMix's PreResNet.py).
    body = stages(preact_block, [64, 128, 256, 512], [2, 2, 2, 2])
    return conv(c_in, 64) + bn(64) + body + linear(512, classes)


HAND_COUNTS = {"cnn8": cnn8_params, "cnn4": cnn4_params, "resnet34": resnet34_params,
               "preact_resnet18": preact_resnet18_params}


def test_the_hand_counts_themselves():
    """The arithmetic above, in numbers: what a reader can check against the papers' and the authors' code."""
    assert cnn8_params(3, 10) == 1_639_794  # the authors' ToyModel for CIFAR-10, exactly
    assert cnn4_params(1, 10) == 544_970  # the authors' 28 x 28 network has 422,090: 128 * (4096 - 3136) fewer
    assert cnn4_params(1, 10) - 128 * (4096 - 3136) == 422_090
    assert resnet34_params(3, 10) == 21_282_122 and resnet34_params(3, 100) == 21_328_292
    assert preact_resnet18_params(3, 10) == 11_171_274 and preact_resnet18_params(3, 100) == 11_217_444


def build(name: str, in_channels: int, classes: int, members: int = 1) -> torch.nn.Module:
    cfg = resolve(compose_train(f"model={name}"))
    return models.build(cfg.model.name, cfg.model.depth, in_channels, classes, members)


@pytest.mark.parametrize("name", list(HAND_COUNTS))
@pytest.mark.parametrize(("in_channels", "classes"), [(3, 10), (3, 100), (1, 10), (1, 100)])
def test_parameter_count_and_output_shape(name, in_channels, classes):
    """3 x 32 x 32 (CIFAR, SVHN) and 1 x 32 x 32 (our MNIST, padded from 28 x 28), 10 and 100 classes."""
    torch.manual_seed(0)
    model = build(name, in_channels, classes)
    assert n_params(model) == HAND_COUNTS[name](in_channels, classes)
    assert model(torch.randn(4, in_channels, 32, 32)).shape == (4, classes)


def test_the_paper_resnet_still_builds_by_default():
    cfg = resolve(compose_train())
    assert OmegaConf.to_container(cfg.model) == {"name": "resnet", "depth": 20}
    assert n_params(models.build(cfg.model.name, cfg.model.depth, 3, 10)) == 269_722


def test_every_model_has_a_config_group_option():
    assert {p.stem for p in (CONFIGS / "model").glob("*.yaml")} == set(models.MODELS)


@pytest.mark.parametrize("name", ["cnn8", "cnn4"])
def test_a_channels_last_input_gives_the_same_logits(name):
    """The CNNs flatten their last map (the authors' view would fail on a channels_last one): the same features,
    in the same order, whatever the memory layout the engine uses."""
    torch.manual_seed(0)
    model = build(name, 3, 10).eval()
    x = torch.randn(4, 3, 32, 32)
    channels_last = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(channels_last, model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "apl_init"), [("cnn8", True), ("resnet34", True), ("preact_resnet18", False)])
def test_initialisation_is_the_authors(name, apl_init):
    """The APL family re-draws conv weights Kaiming-uniform, U(±sqrt(6 / fan_in)), and Linear weights
    Xavier-uniform, U(±sqrt(6 / (fan_in + fan_out))); DivideMix keeps PyTorch's defaults, whose bound is
    1 / sqrt(fan_in) for both (kaiming_uniform with a = sqrt(5)). A uniform sample of this size reaches within 2 %
    of its bound and has std bound / sqrt(3)."""
    torch.manual_seed(0)
    model = build(name, 3, 10)
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    for m in layers:
        fan_in = m.weight[0].numel()
        if not apl_init:
            bound = 1 / math.sqrt(fan_in)
        elif isinstance(m, torch.nn.Conv2d):
            bound = math.sqrt(6 / fan_in)
        else:
            bound = math.sqrt(6 / (fan_in + m.out_features))
        w = m.weight.detach()
        assert w.abs().max() <= bound
        if w.numel() >= 10_000:
            assert w.abs().max() > 0.98 * bound
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("name", list(HAND_COUNTS))
def test_only_the_resnet_packs(name):
    with pytest.raises(ValueError, match="does not pack"):
        build(name, 3, 10, members=2)
    with pytest.raises(ConfigError, match=r"^pack: 3 runs cannot train as one .*only model=resnet packs"):
        resolve(compose_train(f"model={name}", "pack=3"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.name=cnn8"], "model.depth: only model=resnet takes a depth, not cnn8 (model=cnn8 sets it null)"),
        (["model=resnet34", "model.depth=20"], "model.depth: only model=resnet takes a depth, not resnet34"),
        (["model.name=vgg16"], "model.name: unknown model 'vgg16'; valid: resnet, cnn8, cnn4, resnet34"),
        (["model.depth=null"], "model.depth: must be 6n + 2 (20, 32, 44, 56, 110), got None"),
        (["model=cnn8", "dataset=synthetic", "dataset.image_size=16"],
         "dataset.image_size: cnn8 reads 32 x 32 images only (its flatten size is fixed), got 16"),
    ],
)
def test_bad_model_configs_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        resolve(compose_train(*overrides))


def test_a_smaller_synthetic_image_suits_the_pooled_networks():
    """The ResNets pool globally (the authors' avg_pool2d(4) of the 4 x 4 map at 32 x 32), so they read any size."""
    cfg = resolve(compose_train("model=resnet34", "dataset=synthetic", "dataset.image_size=16"))
    assert models.build(cfg.model.name, cfg.model.depth, 3, 10)(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_run_directories_written_before_model_name_keep_their_identity(tmp_path):
    """A ResNet-20 run's config.yaml from before model.name existed has the recipe of one written now, and resumes;
    the same directory refuses another model."""
    now = resolve(compose_train())
    old = OmegaConf.to_container(now)
    del old["model"]["name"]
    assert recipe(old) == recipe(OmegaConf.to_container(now))
    run_dir = RunDir(tmp_path)
    run_dir.write_config(OmegaConf.create(old))
    run_dir.check_config(now)
    with pytest.raises(RunDirError, match=r"model.depth: 20 there, None now"):
        run_dir.check_config(resolve(compose_train("model=cnn8")))


def test_one_process_builds_each_model_it_is_asked_for():
    """The trainer keeps one model per process and kind, for torch.compile; two models of one depth (null) must
    not share it."""
    from experiments.trainer import _model_for

    built = {}
    for name in ("cnn8", "resnet34"):
        cfg = resolve(compose_train("dataset=synthetic", f"model={name}", "device=cpu", "compile=false"))
        model, _ = _model_for(cfg, 1, 3, 10, torch.device("cpu"), torch.float32)
        built[name] = sum(p.numel() for p in model.parameters())
    assert built == {"cnn8": 1_639_794, "resnet34": 21_282_122}

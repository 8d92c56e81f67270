"""ResNet as fb.resnet.torch builds it for CIFAR: sizes, shapes, option-A shortcuts, init, and packing."""

import math

import pytest
import torch

from models import ResNet, pack_state_dicts, unpack_state_dict


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_resnet20_has_the_published_parameter_count():
    assert n_params(ResNet(20, in_channels=3, num_classes=10)) == 269_722


@pytest.mark.parametrize(("depth", "params"), [(32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962)])
def test_depth_family(depth, params):
    assert n_params(ResNet(depth)) == params
    assert len(ResNet(depth).layers) == 3 * (depth - 2) // 6


@pytest.mark.parametrize("depth", [0, 19, 21, 7])
def test_depth_must_be_6n_plus_2(depth):
    with pytest.raises(ValueError, match="depth"):
        ResNet(depth)


@pytest.mark.parametrize(("in_channels", "classes"), [(1, 10), (3, 10), (3, 100)])
def test_output_shape(in_channels, classes):
    model = ResNet(20, in_channels, classes)
    assert model(torch.randn(5, in_channels, 32, 32)).shape == (5, classes)
    assert model.conv1.in_channels == in_channels and model.fc.out_channels == classes


def test_option_a_shortcut_subsamples_and_appends_zero_channels():
    block = ResNet(20).layers[3]  # the first block of stage 2: 16 -> 32 channels, stride 2
    assert block.stride == 2 and block.conv1.in_channels == 16 and block.conv2.out_channels == 32
    x = torch.randn(2, 16, 32, 32)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 16, 16)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2]) and not out[:, 16:].any()
    # The shortcut has no parameters: only convolutions and BatchNorm inside the block.
    assert n_params(block) == n_params(block.conv1) + n_params(block.conv2) + n_params(block.bn1) + n_params(block.bn2)


def test_init_statistics():
    torch.manual_seed(0)
    model = ResNet(20)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and m is not model.fc:
            assert m.bias is None
            expected = math.sqrt(2.0 / (9 * m.out_channels))
            assert m.weight.std().item() == pytest.approx(expected, rel=0.15 if m.weight.numel() < 1000 else 0.05)
            assert abs(m.weight.mean().item()) < 3 * expected / math.sqrt(m.weight.numel())
        elif isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert torch.all(model.fc.bias == 0) and model.fc.weight.abs().max() <= 1 / math.sqrt(64)


@pytest.mark.parametrize("train_mode", [True, False])
def test_packed_model_computes_each_member_alone(train_mode):
    torch.manual_seed(0)
    members = [ResNet(8, 3, 10) for _ in range(3)]
    packed = ResNet(8, 3, 10, members=3)
    packed.load_state_dict(pack_state_dicts([m.state_dict() for m in members]))
    for m in (*members, packed):
        m.train(train_mode)
    xs = [torch.randn(4, 3, 32, 32) for _ in members]
    out = packed(torch.cat(xs, dim=1)).view(4, 3, 10)
    for k, (member, x) in enumerate(zip(members, xs, strict=True)):
        torch.testing.assert_close(out[:, k], member(x), rtol=1e-4, atol=1e-5)
    assert n_params(packed) == 3 * n_params(members[0])


def test_unpack_inverts_pack():
    states = [ResNet(8).state_dict() for _ in range(2)]
    for original, restored in zip(states, unpack_state_dict(pack_state_dicts(states), 2), strict=True):
        assert original.keys() == restored.keys()
        assert all(torch.equal(original[k], restored[k]) for k in original)

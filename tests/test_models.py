"""Every registered model: forward/backward at small size, any channels/classes/input size."""

from __future__ import annotations

import pytest
import torch

from irat.errors import ConfigError
from irat.models import canonical, create_model
from irat.models.registry import MODELS

SMALL = {"wrn-34-10": 16, "wrn-28-10": 16, "vgg13": 32}


@pytest.mark.parametrize("name", sorted(MODELS.names()))
@pytest.mark.parametrize("channels,classes,size", [(3, 10, 32), (1, 7, 28)])
def test_forward_backward(name, channels, classes, size):
    if name.startswith("wrn") and size == 32:
        size = 16  # the 46M-parameter WRNs at a small size keep the test fast
    torch.manual_seed(0)
    m = create_model(name, in_channels=channels, num_classes=classes, input_size=size)
    x = torch.rand(2, channels, size, size, requires_grad=True)
    out = m(x)
    assert out.shape == (2, classes) and torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_aliases_and_unknown():
    assert canonical("wrn-32-10") == "wrn-34-10"
    assert canonical("preact_resnet18") == "preact_resnet18"
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("resnet9000")


def test_tinycnn_shape_matches_bilaw():
    m = create_model("tinycnn", in_channels=1, num_classes=10, input_size=28)
    convs = [l for l in m if isinstance(l, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(16, (4, 4), (2, 2)), (32, (4, 4), (2, 2))]
    lin = [l for l in m if isinstance(l, torch.nn.Linear)]
    assert [l.out_features for l in lin] == [100, 10] and lin[0].in_features == 32 * 7 * 7


def test_wrn_depths():
    def blocks(name):
        return sum(1 for mod in create_model(name, input_size=16).modules() if type(mod).__name__ == "WideBlock")

    assert blocks("wrn-34-10") == 15 and blocks("wrn-28-10") == 12

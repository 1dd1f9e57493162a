"""Shapes, parameter budgets and input checks of mnist_course.models."""

import pytest
import torch
from torch import nn

from mnist_course.models import CNN, CONFIGS, MLP, build_model, count_parameters, rebuild


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_named_model_maps_images_to_ten_logits(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    X = torch.randn(5, 1, 28, 28)
    assert model(X).shape == (5, 10)
    assert model.name == name


def test_equal_budget_pair_is_about_6400_parameters_within_one_percent():
    n_mlp = count_parameters(build_model("mlp_small"))
    n_cnn = count_parameters(build_model("cnn_small"))
    assert 6000 <= n_mlp <= 6800 and 6000 <= n_cnn <= 6800
    assert abs(n_mlp - n_cnn) / max(n_mlp, n_cnn) <= 0.01


def test_equal_budget_pair_differs_only_in_architecture():
    """Both halves of notebook 04's pair: BatchNorm right after every hidden weight layer, no Dropout."""
    weight_types, norm_types = (nn.Linear, nn.Conv2d), (nn.BatchNorm1d, nn.BatchNorm2d)
    for name in ("mlp_small", "cnn_small"):
        layers = [m for m in build_model(name).modules() if isinstance(m, weight_types + norm_types + (nn.Dropout,))]
        assert not any(isinstance(m, nn.Dropout) for m in layers), name
        hidden = [i for i, m in enumerate(layers[:-1]) if isinstance(m, weight_types)]
        assert hidden and all(isinstance(layers[i + 1], norm_types) for i in hidden), f"{name}: {layers}"
        assert isinstance(layers[-1], nn.Linear)  # the output layer: logits, no BatchNorm


def test_parameter_counts_by_hand():
    # mlp_small: 784 -> 8 without bias (BatchNorm shifts instead), BatchNorm's 8 scales + 8 shifts, 8 -> 10
    assert count_parameters(build_model("mlp_small")) == 784 * 8 + 2 * 8 + 8 * 10 + 10
    assert count_parameters(MLP(hidden=(512, 512))) == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    assert count_parameters(MLP(hidden=())) == 7850  # softmax regression
    # conv 1->4 (3x3) + bias, then flatten 4*14*14 -> 10
    assert count_parameters(CNN(channels=(4,), hidden=0)) == 4 * 9 + 4 + 4 * 14 * 14 * 10 + 10


def test_count_parameters_skips_frozen():
    model = MLP(hidden=(8,))
    model.net[1].weight.requires_grad_(False)
    assert count_parameters(model) == 6370 - 784 * 8
    assert count_parameters(model, trainable_only=False) == 6370


def test_mlp_accepts_flat_input_and_gives_the_same_logits():
    torch.manual_seed(0)
    model = MLP(hidden=(16,)).eval()
    X = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(model(X), model(X.reshape(3, 784)))


def test_batchnorm_and_dropout_options_add_layers():
    plain, fancy = CNN(), CNN(batchnorm=True, dropout=0.5)
    kinds = {type(m).__name__ for m in fancy.modules()}
    assert {"BatchNorm2d", "BatchNorm1d", "Dropout"} <= kinds
    assert "Dropout" not in {type(m).__name__ for m in plain.modules()}


def test_bad_inputs_give_clear_errors():
    model = build_model("cnn_small")
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model(torch.zeros(2, 28, 28))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet")
    with pytest.raises(TypeError, match="no option"):
        build_model("mlp", channels=(3,))
    with pytest.raises(ValueError, match="dropout"):
        MLP(dropout=1.5)


def test_rebuild_from_config_gives_the_same_architecture():
    model = build_model("cnn")
    copy = rebuild(type(model).__name__, model.config)
    assert [tuple(p.shape) for p in copy.parameters()] == [tuple(p.shape) for p in model.parameters()]
    copy.load_state_dict(model.state_dict())


def test_cnn_is_the_course_cnn_everywhere_and_the_wide_one_has_its_own_name():
    from mnist_course.pretrained import COURSE_MODELS
    from mnist_course.recipes import BEST_CNN

    assert count_parameters(build_model("cnn")) == 98_682        # the course CNN (notebooks 04, 06, 07, 12)
    assert count_parameters(build_model("cnn_wide")) == 421_642
    assert BEST_CNN["model"] == "cnn" and "cnn" in COURSE_MODELS
    with pytest.raises(ValueError, match="now called 'cnn'.*'cnn_wide'"):
        build_model("cnn_best")

"""Tests of paddle_tag.models.backbones: PaddleClas backbones as (B, 3, H, W) -> (B, D) feature encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest
from safetensors.numpy import save_file
from helpers import DATA

from paddle_tag.data.augment import GrayToRGB, ToCHW, ToFloat
from paddle_tag.data.sources import SUBDIRS, prepare
from paddle_tag.data.sources.fashion_mnist import load_fashion_mnist
from paddle_tag.errors import ModelLoadError
from paddle_tag.models.backbones import BACKBONES, ImageEncoder, backbone_constructor

DIMS = {"resnet18": 512, "mobilenetv3_small_x0_35": 1280, "pplcnet_x0_25": 1280}


@pytest.fixture(scope="module")
def encoders() -> dict[str, ImageEncoder]:
    paddle.seed(0)
    return {name: ImageEncoder(name) for name in BACKBONES}


@pytest.fixture(scope="module")
def fashion_batch() -> paddle.Tensor:
    """Four real 28×28 Fashion-MNIST images, channel replicated: (4, 3, 28, 28)."""
    prepare("fashion_mnist", DATA)
    images, _ = load_fashion_mnist(DATA / SUBDIRS["fashion_mnist"], "test")
    rng = np.random.default_rng(0)
    chw = [ToCHW()(GrayToRGB()(ToFloat()(img)), rng) for img in images[:4]]
    return paddle.to_tensor(np.stack(chw))


def _pre_classifier(name: str, net, x: paddle.Tensor) -> paddle.Tensor:
    """The backbone's layers up to its classifier, run by hand."""
    if name == "resnet18":
        return net.flatten(net.avg_pool(net.blocks(net.max_pool(net.stem(x)))))
    if name == "mobilenetv3_small_x0_35":
        h = net.avg_pool(net.last_second_conv(net.blocks(net.conv(x))))
        return net.flatten(net.hardswish(net.last_conv(h)))
    h = net.conv1(x)
    for block in (net.blocks2, net.blocks3, net.blocks4, net.blocks5, net.blocks6):
        h = block(h)
    return net.flatten(net.act(net.last_conv(net.avg_pool(h))))


@pytest.mark.parametrize("name", list(BACKBONES))
def test_features_shape_and_no_classifier(encoders, name) -> None:
    enc = encoders[name]
    enc.eval()
    assert enc.feature_dim == DIMS[name] and enc.name == name
    assert not [k for k in enc.state_dict() if k.startswith("net.fc.")]
    assert backbone_constructor(name)(pretrained=False).fc.weight.shape[0] == enc.feature_dim  # what entered fc
    x = paddle.randn([2, 3, 32, 32])
    y = enc.forward_features(x)
    assert y.shape == [2, enc.feature_dim] and y.dtype == paddle.float32
    assert np.array_equal(enc(x).numpy(), y.numpy())
    np.testing.assert_allclose(y.numpy(), _pre_classifier(name, enc.net, x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_gradients_flow(encoders, name) -> None:
    enc = encoders[name]
    enc.train()
    x = paddle.randn([2, 3, 32, 32])
    x.stop_gradient = False
    enc.forward_features(x).square().mean().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    trainable = [p for p in enc.parameters() if not p.stop_gradient]
    assert trainable and all(p.grad is not None for p in trainable)
    enc.clear_gradients()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_train_and_eval_mode(encoders, name) -> None:
    enc = encoders[name]
    x = paddle.randn([4, 3, 32, 32])
    enc.train()
    a, b = enc(x).numpy(), enc(x).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)   # no dropout left: train mode is deterministic
    assert not np.allclose(enc(x[:2]).numpy(), a[:2], atol=1e-4)   # BatchNorm uses the batch's statistics
    enc.eval()
    e = enc(x).numpy()
    np.testing.assert_allclose(enc(x[:2]).numpy(), e[:2], rtol=1e-4, atol=1e-5)  # eval: running statistics
    assert not np.allclose(e, a, atol=1e-4)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_real_28px_gray_images_and_tiny_inputs(encoders, fashion_batch, name) -> None:
    enc = encoders[name]
    enc.eval()
    y = enc(fashion_batch)
    assert y.shape == [4, DIMS[name]] and bool(paddle.isfinite(y).all())
    assert enc(paddle.rand([2, 3, 1, 1])).shape == [2, DIMS[name]]  # padded convs + global pool: any size runs


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ValueError, match=r"'resnet-18' \(did you mean 'resnet18'\?\); choose from"):
        ImageEncoder("resnet-18")
    with pytest.raises(ValueError, match="did you mean 'pplcnet_x0_25'"):
        ImageEncoder("PPLCNet_x0_25")
    with pytest.raises(ValueError, match="choose from resnet18"):
        ImageEncoder("vit")


def test_pretrained_true_fails_offline_without_downloading(monkeypatch) -> None:
    import paddleclas.ppcls.utils.download as download
    import paddleclas.ppcls.utils.save_load as save_load

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(download, "_download", no_network)
    monkeypatch.setattr(save_load, "get_weights_path_from_url", no_network)
    with pytest.raises(ModelLoadError, match="download ImageNet weights.*local .safetensors"):
        ImageEncoder("pplcnet_x0_25", pretrained=True)


def test_local_weights(encoders, tmp_path: Path) -> None:
    src = encoders["pplcnet_x0_25"]
    src.eval()
    state = dict(src.net.state_dict())
    state["fc.weight"] = paddle.zeros([1280, 1000])  # a PaddleClas file has its classifier: ignored
    save_file({k: v.numpy() for k, v in state.items()}, str(tmp_path / "pplcnet.safetensors"))
    enc = ImageEncoder("pplcnet_x0_25", pretrained=tmp_path / "pplcnet.safetensors")
    enc.eval()
    x = paddle.randn([2, 3, 32, 32])
    np.testing.assert_allclose(enc(x).numpy(), src(x).numpy(), rtol=1e-6)
    with pytest.raises(ModelLoadError, match="does not fit mobilenetv3_small_x0_35"):
        ImageEncoder("mobilenetv3_small_x0_35", pretrained=tmp_path / "pplcnet.safetensors")
    with pytest.raises(ModelLoadError, match="not found"):
        ImageEncoder("pplcnet_x0_25", pretrained=tmp_path / "missing.safetensors")
    (tmp_path / "truncated.safetensors").write_bytes((tmp_path / "pplcnet.safetensors").read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="cannot read backbone weights as safetensors"):
        ImageEncoder("pplcnet_x0_25", pretrained=tmp_path / "truncated.safetensors")


def test_wrong_channels(encoders) -> None:
    with pytest.raises(ValueError, match="GrayToRGB"):
        encoders["pplcnet_x0_25"](paddle.rand([2, 1, 28, 28]))

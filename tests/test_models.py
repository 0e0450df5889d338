"""Model construction: output shapes of every arch and option, the pixel head's math, sizes."""
from __future__ import annotations

import pytest
import torch

from partcli.errors import PartcliError
from partcli.models.heads import DownsampledHead, PixelHead
from partcli.models.part_model import Classifier, Normalize, PartModel
from partcli.models.registry import ARCHS, PART_ARCHS, ModelConfig, build_model

N, C, K, S = 2, 3, 5, 32
PART_TO_CLASS = [0, 0, 1, 2, 2]


def config(arch: str, **kw) -> ModelConfig:
    return ModelConfig(arch=arch, backbone="resnet18", num_classes=C, num_parts=K, part_to_class=PART_TO_CLASS, **kw)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(N, 3, S, S, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_maps_images_to_logits(arch, images):
    torch.manual_seed(0)
    model = build_model(config(arch, pool=2)).eval()  # pool: the downsampled and two-headed heads' option
    with torch.no_grad():
        logits = model(images)
        logits2, seg = model(images, return_seg=True)
    assert logits.shape == (N, C)
    assert torch.isfinite(logits).all()
    assert torch.equal(logits, logits2)
    if arch == "resnet":
        assert isinstance(model, Classifier) and seg is None
    else:
        assert isinstance(model, PartModel)
        assert seg.shape == (N, K + 1, S, S)
        assert torch.allclose(model.segment(images), seg, atol=1e-5)
    if arch == "twohead":
        conv = model.head.net[1]
        assert conv.kernel_size == (2, 2) and conv.padding == (0, 0)  # covers the whole pooled map
        assert model.head.net[5][0].in_features == conv.out_channels


@pytest.mark.parametrize("options", [
    dict(), dict(drop_background=True), dict(concat_input=True), dict(pool=2), dict(pool=8),
])
def test_downsampled_head_options(options):
    torch.manual_seed(0)
    head = DownsampledHead(K, C, **options).eval()
    pool = options.get("pool", 4)
    in_ch = K + (0 if options.get("drop_background") else 1) + (3 if options.get("concat_input") else 0)
    assert head.conv[0].in_channels == in_ch and head.conv[0].out_channels == 5 * (K + 1)
    assert head.conv[0].kernel_size == (pool, pool) and head.conv[0].padding == (0, 0)
    assert head.fc[0].in_features == head.conv[0].out_channels
    assert head(torch.randn(N, K + 1, S, S), torch.rand(N, 3, S, S)).shape == (N, C)


def test_downsampled_model_with_all_options(images):
    """The options reach the head through ``build_model``, and the model feeds it the input image."""
    torch.manual_seed(0)
    model = build_model(config("downsampled", drop_background=True, concat_input=True, pool=3)).eval()
    assert model.head.conv[0].in_channels == K + 3 and model.head.conv[0].kernel_size == (3, 3)
    assert model.head.fc[0].in_features == model.head.conv[0].out_channels
    with torch.no_grad():
        logits, seg = model(images, return_seg=True)
    assert logits.shape == (N, C) and seg.shape == (N, K + 1, S, S)


def test_downsampled_concat_input_sees_the_image():
    """With concat_input the head's output changes with the image even for identical part masks."""
    torch.manual_seed(0)
    head = DownsampledHead(K, C, concat_input=True).eval()
    seg = torch.randn(1, K + 1, 16, 16)
    a, b = torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)
    assert not torch.allclose(head(seg, a), head(seg, b))
    plain = DownsampledHead(K, C).eval()
    assert torch.equal(plain(seg, a), plain(seg, b))


def test_pixel_head_sums_part_logits_per_class_and_averages_over_pixels():
    head = PixelHead([0, 1, 1], num_classes=2)
    seg = torch.zeros(1, 4, 2, 2)
    seg[0, 0] = 100.0  # background: ignored
    seg[0, 1] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # part 1 -> class 0
    seg[0, 2] = torch.tensor([[2.0, 0.0], [0.0, 0.0]])  # parts 2 and 3 -> class 1
    seg[0, 3] = torch.tensor([[0.0, 0.0], [0.0, 6.0]])
    out = head(seg)
    # class 0: (1+2+3+4)/4 = 2.5; class 1: (2+6)/4 = 2.0
    assert out.shape == (1, 2) and out[0].tolist() == pytest.approx([2.5, 2.0])
    assert n_params(head) == 0


def test_pixel_arch_needs_part_to_class():
    with pytest.raises(ValueError):
        build_model(ModelConfig(arch="pixel", backbone="resnet18", num_classes=C, num_parts=K, part_to_class=[0]))


def test_unknown_arch_and_backbone_are_user_errors():
    with pytest.raises(PartcliError, match="--arch"):
        build_model(config("nope"))
    with pytest.raises(PartcliError, match="--backbone"):
        build_model(ModelConfig(arch="resnet", backbone="not_a_net", num_classes=C))
    with pytest.raises(PartcliError, match="--backbone"):
        build_model(ModelConfig(arch="bbox", backbone="not_an_encoder", num_classes=C, num_parts=K))


def test_models_take_pixels_in_unit_range():
    """Normalisation is the first layer: a constant ImageNet-mean image reaches the network as zeros."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert Normalize()(mean).abs().max().item() < 1e-6


def test_model_config_round_trip():
    cfg = config("downsampled", pool=2, drop_background=True)
    doc = cfg.to_dict()
    assert ModelConfig.from_dict({**doc, "unknown_key": 1}) == cfg
    assert set(PART_ARCHS) == {"downsampled", "bbox", "twohead", "pixel"}


SEGMENTER_R50_41 = 26_687_865  # smp DeepLabv3+ / ResNet-50 with 41 output channels (the paper's 26.7M)


def head_params(arch: str, k: int, c: int, pool: int = 4) -> int:
    """Parameter count of the paper's heads, layer by layer (weights + biases; BatchNorm: scale + shift)."""
    if arch == "downsampled":  # conv (K+1)→5(K+1), kernel pool; BN; Linear→50; BN1d; Linear→C
        w = 5 * (k + 1)
        return (k + 1) * w * pool * pool + w + 2 * w + (w * 50 + 50) + 2 * 50 + (50 * c + c)
    if arch == "bbox":  # BN1d(5K); Linear 5K→50; BN1d(50); Linear→C
        return 2 * 5 * k + (5 * k * 50 + 50) + 2 * 50 + (50 * c + c)
    if arch == "twohead":  # on the 256 decoder channels: conv 256→64, kernel pool; BN; Linear→50; BN1d; Linear→C
        return 256 * 64 * pool * pool + 64 + 2 * 64 + (64 * 50 + 50) + 2 * 50 + (50 * c + c)
    raise ValueError(arch)


def test_parameter_counts_match_the_paper():
    """§3.5.2: ResNet-50 baseline 25.6M; DeepLabv3+/ResNet-50 part models (41 channels) 26.7M plus their heads."""
    baseline = build_model(ModelConfig(arch="resnet", backbone="resnet50", num_classes=1000))
    assert n_params(baseline) == 25_557_032
    expected = {"downsampled": 26_833_921, "bbox": 26_698_976, "twohead": 26_954_112}
    for arch, total in expected.items():
        model = build_model(ModelConfig(arch=arch, backbone="resnet50", num_classes=11, num_parts=40,
                                        part_to_class=[i // 4 for i in range(40)]))
        assert n_params(model.head) == head_params(arch, 40, 11) > 10_000, arch
        assert n_params(model) == total == SEGMENTER_R50_41 + head_params(arch, 40, 11), arch


@pytest.mark.parametrize("arch", PART_ARCHS)
def test_every_head_gets_the_same_inputs(arch, images):
    """PartModel.forward calls every head alike: (part logits, the [0, 1] image, the decoder's features)."""
    torch.manual_seed(0)
    model = build_model(config(arch)).eval()
    seen = []
    model.head.register_forward_hook(lambda m, args, out: seen.append(tuple(a.shape for a in args)))
    with torch.no_grad():
        model(images)
    decoder_channels = model.segmenter.segmentation_head[0].in_channels
    assert seen == [((N, K + 1, S, S), (N, 3, S, S), (N, decoder_channels, S // 4, S // 4))]
    assert model.head.reads_masks == (arch != "twohead")


# ------------------------------------------------------------------------------------------------ the registry
def test_every_registered_architecture_is_an_arch_choice_and_builds():
    from partcli.models.registry import ARCH_REGISTRY

    assert tuple(ARCH_REGISTRY) == ARCHS
    assert {name for name, e in ARCH_REGISTRY.items() if e.part_model} == set(PART_ARCHS)


def test_a_registered_architecture_is_built_by_name_and_listed(monkeypatch):
    """A new architecture is one decorated builder: build_model and the listing find it."""
    from partcli.models import registry
    from partcli.summary import describe_models

    monkeypatch.setattr(registry, "ARCH_REGISTRY", dict(registry.ARCH_REGISTRY))

    @registry.register_arch("linear", part_model=False, summary="a linear probe")
    def build_linear(cfg):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(cfg.num_classes))

    model = build_model(ModelConfig(arch="linear", num_classes=3))
    assert model(torch.rand(2, 3, 4, 4)).shape == (2, 3)
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(describe_models())
    assert "a linear probe" in console.export_text()
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_arch("linear", part_model=False, summary="again")(build_linear)


def test_a_timm_baseline_by_name_with_its_own_input_statistics():
    model = build_model(ModelConfig(arch="resnet", backbone="vit_tiny_patch16_224", num_classes=3)).eval()
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3)  # any size divisible by the patch
    assert model.normalize.mean.flatten().tolist() == [0.5, 0.5, 0.5]  # timm's configuration, kept as a buffer
    resnet = build_model(ModelConfig(arch="resnet", backbone="timm:resnet18", num_classes=3))
    assert type(resnet.net).__module__.startswith("timm")  # timm's resnet18, not torchvision's
    with pytest.raises(PartcliError, match="neither a torchvision classification model nor a timm model"):
        build_model(ModelConfig(arch="resnet", backbone="nosuchnet", num_classes=3))

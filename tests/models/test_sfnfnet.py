import itertools
import math
import re
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from lit_mrl.models.layers import (
    NFBlock,
    StochasticDepth,
    WSConv2d,
    avg_pool2d_same,
    same_padding,
)
from lit_mrl.models.sfnfnet import TINY_ARGS, SFNFNetF0, nf_betas

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ENCODER_CONFIGS = sorted(CONFIGS.glob("encoder/*.yaml"))
FULL_PARAMS = 62_345_742
# Per-part counts of the released Keras model, paper-notes section 1.3.
PART_PARAMS = {
    "slow_stem": 81_936,
    "fast_stem": 1_590,
    "fusions": 940_928,
    "slow_stages.0": 297_089,
    "slow_stages.1": 1_711_618,
    "slow_stages.2": 33_093_126,
    "slow_stages.3": 25_395_459,
    "fast_stages.0": 4_113,
    "fast_stages.1": 24_514,
    "fast_stages.2": 505_542,
    "fast_stages.3": 289_827,
}
BETA_TABLE = [
    [1.0],
    [0.98058, 0.96225],
    [0.98058, 0.96225, 0.94491, 0.92848, 0.91287, 0.89803],
    [0.98058, 0.96225, 0.94491],
]


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def set_skip_gains(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for block in model.modules():
            if isinstance(block, NFBlock):
                block.skip_gain.fill_(value)


@pytest.fixture
def tiny() -> SFNFNetF0:
    torch.manual_seed(0)
    return SFNFNetF0.tiny()


@pytest.fixture
def spec() -> torch.Tensor:
    return torch.randn(2, 96, 300, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def full_meta() -> SFNFNetF0:
    with torch.device("meta"):  # shapes only: no memory, no init of 62 M weights
        return SFNFNetF0().eval()


def test_full_model_has_released_parameter_count_per_part(full_meta):
    model = full_meta
    assert num_params(model) == FULL_PARAMS
    assert model.embed_dim == 1728
    for name, expected in PART_PARAMS.items():
        assert num_params(model.get_submodule(name)) == expected, name


def test_betas_match_released_table():
    betas = nf_betas((1, 2, 6, 3), alpha=0.2)
    assert [len(stage) for stage in betas] == [1, 2, 6, 3]
    for got, want in zip(betas, BETA_TABLE, strict=True):
        assert got == pytest.approx(want, abs=5e-6)


def test_full_model_shapes_on_meta_device(full_meta):
    spec = torch.empty(2, 96, 300, device="meta")
    assert full_meta(spec).shape == (2, 1728)
    assert full_meta.forward_features(spec).shape == (2, 19, 1728)


@pytest.mark.slow
def test_full_model_forward_on_cpu(spec):
    model = SFNFNetF0().eval()
    with torch.no_grad():
        emb = model(spec)
    assert emb.shape == (2, 1728)
    assert torch.isfinite(emb).all()


def test_tiny_variant_is_small_and_embeds(tiny, spec):
    assert num_params(tiny) < 100_000
    emb = tiny(spec)
    assert emb.shape == (2, tiny.embed_dim) == (2, 60)
    assert torch.isfinite(emb).all()
    assert torch.equal(tiny.eval()(spec), tiny(spec.unsqueeze(1)))  # (B, 1, F, T) accepted


@pytest.mark.parametrize("frames", [300, 250, 17])
def test_forward_features_are_at_slow_frame_rate(tiny, frames):
    feats = tiny.eval().forward_features(torch.randn(3, 96, frames))
    assert feats.shape == (3, math.ceil(frames / 16), tiny.embed_dim)
    assert torch.isfinite(feats).all()


def test_rejects_wrong_input_shape(tiny):
    with pytest.raises(ValueError, match="n_mels"):
        tiny(torch.randn(2, 2, 96, 300))


def test_every_parameter_gets_a_finite_gradient(spec):
    model = SFNFNetF0.tiny(drop_path_rate=0.0)
    set_skip_gains(model, 1.0)  # skip-init 0 would zero every residual-branch gradient
    model(spec).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        # A 2-unit squeeze-excite ReLU of the tiny model can be dead for the whole batch.
        if ".se." not in name:
            assert param.grad.abs().sum() > 0, name


def test_skip_init_reduces_blocks_to_their_shortcut():
    x = torch.randn(2, 16, 6, 5)
    plain = NFBlock(16, 16, group_size=8, beta=0.9).eval()
    assert not plain.transition
    assert torch.equal(plain(x), x)  # residual branch scaled by skip gain 0
    transition = NFBlock(16, 32, group_size=8, beta=0.9, freq_stride=2).eval()
    assert transition.transition
    h = transition.act(x) * 0.9
    expected = transition.shortcut(avg_pool2d_same(h, (2, 1), (2, 1)))
    torch.testing.assert_close(transition(x), expected)


def test_eval_is_deterministic_and_train_drops_paths(tiny, spec):
    model = SFNFNetF0.tiny(drop_path_rate=0.6)
    set_skip_gains(model, 1.0)
    model.eval()
    assert torch.equal(model(spec), model(spec))
    model.train()
    torch.manual_seed(0)
    outs = [model(spec) for _ in range(4)]
    assert any(not torch.allclose(outs[0], out) for out in outs[1:])


@pytest.mark.parametrize("rescale", [False, True])
def test_stochastic_depth_survival_semantics(rescale):
    torch.manual_seed(0)
    drop = StochasticDepth(0.3, rescale=rescale)
    x = torch.ones(4000, 2, 3, 3)
    out = drop(x)
    kept = out.flatten(1).amax(dim=1) > 0
    per_example = out.flatten(1)
    # One draw per example: an example is either entirely dropped or entirely kept.
    assert torch.equal(per_example.amin(dim=1), per_example.amax(dim=1))
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.03)
    scale = 1 / 0.7 if rescale else 1.0
    assert torch.allclose(out[kept], torch.full_like(out[kept], scale))
    assert torch.equal(drop.eval()(x), x)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (300, 3, 8, (0, 0)),
        (6, 3, 2, (0, 1)),
        (5, 3, 2, (1, 1)),
        (75, 7, 4, (2, 2)),
        (20, 7, 4, (1, 2)),
        (24, 3, 1, (1, 1)),
    ],
)
def test_same_padding_amounts(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def tf_same_reference(x, conv):
    """TF "same": out = ceil(n / s), total pad = (out - 1) * s + k - n, extra pad after."""
    pads = []
    for n, k, s in zip(x.shape[-2:], conv.kernel_size, conv.stride, strict=True):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    padded = F.pad(x, (*pads[1], *pads[0]))
    return F.conv2d(padded, conv.standardized_weight(), conv.bias, conv.stride, 0, 1, conv.groups)


@pytest.mark.parametrize("size", [(7, 10), (8, 9), (24, 75)])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (2, 1), (1, 4)])
@pytest.mark.parametrize("kernel", [(3, 3), (1, 7), (3, 1), (1, 1)])
def test_ws_conv_pads_like_tensorflow_same(size, stride, kernel):
    torch.manual_seed(0)
    conv = WSConv2d(4, 6, kernel, stride, groups=2)
    nn.init.normal_(conv.bias)
    x = torch.randn(2, 4, *size)
    out = conv(x)
    assert out.shape[-2:] == tuple(math.ceil(n / s) for n, s in zip(size, stride, strict=True))
    torch.testing.assert_close(out, tf_same_reference(x, conv))


def test_avg_pool_same_ignores_padding():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    out = avg_pool2d_same(x, (2, 4), (2, 4))
    assert out.shape == (2, 3, 3, 2)
    # Last window along each axis is partial: rows [4], columns [4:7] (TF pads only after).
    torch.testing.assert_close(out[..., 2, 1], x[..., 4:5, 4:7].mean(dim=(-2, -1)))
    torch.testing.assert_close(out[..., 0, 0], x[..., 0:2, 0:4].mean(dim=(-2, -1)))


def test_ws_conv_standardises_weights_per_output_channel():
    torch.manual_seed(0)
    conv = WSConv2d(16, 8, (3, 1), groups=2)
    with torch.no_grad():
        conv.weight.mul_(5.0).add_(3.0)  # arbitrary scale and offset are removed
    weight = conv.standardized_weight()
    var, mean = torch.var_mean(weight, dim=(1, 2, 3), correction=0)
    assert conv.fan_in == 8 * 3 * 1
    torch.testing.assert_close(mean, torch.zeros(8), atol=1e-6, rtol=0)
    torch.testing.assert_close(var, torch.full((8,), 1 / conv.fan_in))


def test_channels_last_gives_same_output(tiny, spec):
    fast = SFNFNetF0.tiny(channels_last=True)
    fast.load_state_dict(tiny.state_dict())
    assert fast.slow_stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast.eval()(spec), tiny.eval()(spec), atol=1e-5, rtol=1e-4)


def test_bf16_autocast_runs_close_to_fp32(tiny, spec):
    tiny.eval()
    set_skip_gains(tiny, 1.0)
    ref = tiny(spec)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny(spec)
    assert torch.isfinite(out).all()
    assert F.cosine_similarity(out.float(), ref).min() > 0.99


def test_tiny_sgd_step_is_fast_and_changes_weights(tiny, spec):
    opt = torch.optim.SGD(tiny.parameters(), lr=0.1)
    before = tiny.slow_stem[0].weight.detach().clone()
    cpu_seconds = []  # process CPU time (one thread): robust to other jobs on shared cores
    for _ in range(3):  # the first step also pays for one-off kernel set-up
        start = time.process_time()
        opt.zero_grad()
        tiny(spec).square().mean().backward()
        opt.step()
        cpu_seconds.append(time.process_time() - start)
    assert min(cpu_seconds) < 0.5
    assert not torch.equal(before, tiny.slow_stem[0].weight)


def encoder_node(config: Path) -> dict:
    """The ``class_path``/``init_args`` of the encoder a method config or overlay sets."""
    return yaml.safe_load(config.read_text())["model"]["init_args"]["encoder"]


@pytest.mark.parametrize("config", ENCODER_CONFIGS, ids=lambda path: path.stem)
def test_encoder_configs_build_the_size_their_header_states(config):
    """Every rung of the ladder, the paper's 62,345,742-parameter model included."""
    jsonargparse = pytest.importorskip("jsonargparse")
    header = re.search(r"\(([\d,]+) parameters, embed_dim (\d+)\)", config.read_text())
    assert header, f"{config.name}: no '(N parameters, embed_dim D)' in the header"
    params, embed_dim = int(header[1].replace(",", "")), int(header[2])
    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(nn.Module, "encoder")
    cfg = parser.parse_object({"encoder": encoder_node(config)})
    with torch.device("meta"):  # shapes only: group sizes and widths must still fit
        encoder = parser.instantiate(cfg).encoder
        emb = encoder(torch.empty(2, 96, 300))
    assert isinstance(encoder, SFNFNetF0)
    assert num_params(encoder) == params
    assert encoder.embed_dim == embed_dim
    assert emb.shape == (2, embed_dim)


def test_encoder_ladder_grows():
    rungs = ["tiny", "xs", "s", "m", "f0"]
    assert sorted(p.stem.removeprefix("sfnfnet_") for p in ENCODER_CONFIGS) == sorted(rungs)
    with torch.device("meta"):
        encoders = [
            SFNFNetF0(**encoder_node(CONFIGS / f"encoder/sfnfnet_{r}.yaml")["init_args"])
            for r in rungs
        ]
    for smaller, larger in itertools.pairwise(encoders):
        assert num_params(smaller) < num_params(larger)
        assert smaller.embed_dim < larger.embed_dim
    assert num_params(encoders[-1]) == FULL_PARAMS


def test_tiny_variant_is_the_tiny_config_and_the_demo_encoder():
    """``SFNFNetF0.tiny()``, ``configs/encoder/sfnfnet_tiny.yaml`` and the demo configs."""
    tiny = encoder_node(CONFIGS / "encoder/sfnfnet_tiny.yaml")
    assert tiny["init_args"] == TINY_ARGS
    for method in ("supervised", "contrastive"):
        assert encoder_node(CONFIGS / f"demo/{method}.yaml") == tiny, method


@pytest.mark.slow
def test_torch_compile_matches_eager(tiny, spec):
    tiny.eval()
    set_skip_gains(tiny, 1.0)
    # fullgraph: no graph breaks. aot_eager traces forward and backward like inductor does but
    # skips C++ code generation, which takes minutes on 2 CPU cores.
    compiled = torch.compile(tiny, fullgraph=True, backend="aot_eager")
    out = compiled(spec)
    torch.testing.assert_close(out, tiny(spec), atol=1e-4, rtol=1e-4)
    out.sum().backward()
    assert tiny.slow_stem[0].weight.grad is not None

import pytest
import torch

from grokkit.config import ConfigError, parse_config
from grokkit.recipes.common import build_model, build_vocab
from grokkit.sweep.runner import plan
from grokkit.sweep.spec import expand, parse_sweep
from helpers import tiny_config


def _model(cfg_dict=None, **overrides):
    cfg = parse_config(cfg_dict if cfg_dict is not None else tiny_config(**overrides))
    return build_model(cfg, build_vocab(cfg))


@pytest.mark.parametrize("kind", ["transformer", "mlp"])
def test_init_scale_multiplies_every_weight_matrix_of_the_default_init(kind):
    model_cfg = {"kind": "mlp", "d_embed": 8, "d_mlp": 16} if kind == "mlp" else tiny_config()["model"]
    plain = _model(model=dict(model_cfg))
    scaled = _model(model=dict(model_cfg, init_scale=3.0))
    n_matrices = 0
    for (_, a), (_, b) in zip(plain.named_parameters(), scaled.named_parameters()):
        if a.dim() > 2:  # [member, ...] weight matrices, the MLP's hidden layers.i.W included
            torch.testing.assert_close(b, 3.0 * a, rtol=0, atol=0)
            n_matrices += 1
        else:  # biases start at 0 (and LayerNorm at 1)
            torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert n_matrices == len([n for n, p in plain.named_parameters() if p.dim() > 2]) >= 3


def test_members_may_carry_their_own_init_scale():
    cfg = tiny_config(members=[{"seed": 0}, {"seed": 1, "init_scale": 0.5}])
    del cfg["seeds"]
    mixed = _model(cfg)
    alone = _model(seeds=[1])
    torch.testing.assert_close(mixed.embed.W_E[1], 0.5 * alone.embed.W_E[0], rtol=0, atol=0)
    torch.testing.assert_close(mixed.embed.W_E[0], _model(seeds=[0]).embed.W_E[0], rtol=0, atol=0)


def test_init_scale_must_be_positive_and_is_recorded():
    with pytest.raises(ConfigError, match="init_scale"):
        parse_config(tiny_config(model={"init_scale": 0}))
    assert parse_config(tiny_config(model={"init_scale": 2.5})).model_dump()["model"]["init_scale"] == 2.5


def test_a_sweep_over_init_scale_packs_into_one_ensemble(tmp_path):
    spec = parse_sweep({"name": "s", "base": tiny_config(), "grid": {"model.init_scale": [0.5, 1.0, 2.0]},
                        "n_seeds": 2})
    groups = plan(expand(spec, tmp_path))
    assert len(groups) == 1 and len(groups[0].trials) == 6
    scales = sorted(m.init_scale for m in groups[0].config.member_list())
    assert scales == [0.5, 0.5, 1.0, 1.0, 2.0, 2.0]

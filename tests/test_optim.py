import pytest
import torch

from grokkit.optim import Chain, EnsembleOptimizer, GrokfastEMA, GrokfastMA, OrthogonalGrad, build_transform


def _quadratic_grads(params, targets):
    return [2 * (p - t) for p, t in zip(params, targets)]


@pytest.mark.parametrize("name,kwargs", [
    ("adamw", dict(betas=(0.9, 0.98), weight_decay=1.0)),
    ("adam", dict(betas=(0.9, 0.999), weight_decay=0.0)),
    ("adam", dict(betas=(0.8, 0.99), weight_decay=0.1)),
    ("sgd", dict(momentum=0.9, weight_decay=0.01)),
    ("sgd", dict(momentum=0.0, weight_decay=0.0)),
])
def test_matches_torch_optim_per_member(name, kwargs):
    torch.manual_seed(0)
    lrs, warmup = [1e-2, 3e-3], 4
    init = [torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)]
    targets = [torch.randn_like(p) for p in init]
    ours = [p.clone() for p in init]
    opt = EnsembleOptimizer(ours, name, torch.tensor(lrs, dtype=torch.float64),
                            torch.full((2,), kwargs.get("weight_decay", 0.0), dtype=torch.float64),
                            betas=kwargs.get("betas", (0.9, 0.999)), momentum=kwargs.get("momentum", 0.0),
                            warmup_steps=warmup)
    for k in range(2):  # each member against its own torch optimiser
        ref = [p[k].clone().requires_grad_() for p in init]
        cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]
        torch_kwargs = dict(lr=lrs[k], weight_decay=kwargs.get("weight_decay", 0.0))
        if name == "sgd":
            torch_kwargs["momentum"] = kwargs["momentum"]
        else:
            torch_kwargs["betas"] = kwargs["betas"]
        topt = cls(ref, **torch_kwargs)
        sched = torch.optim.lr_scheduler.LambdaLR(topt, lambda s: min(1.0, (s + 1) / warmup))
        for _ in range(12):
            for p, g in zip(ref, _quadratic_grads(ref, [t[k] for t in targets])):
                p.grad = g.detach()
            topt.step()
            sched.step()
        if k == 0:
            for _ in range(12):
                opt.step(_quadratic_grads(ours, targets))
        for p, r in zip(ours, ref):
            torch.testing.assert_close(p[k], r.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,wd", [("adamw", [1.0, 0.5]), ("adam", [0.0, 0.0]), ("adam", [0.1, 0.2])])
def test_foreach_step_equals_the_per_tensor_step_bit_for_bit(name, wd):
    torch.manual_seed(0)
    init = [torch.randn(2, 3, 4), torch.randn(2, 5), torch.randn(2, 7, 3, 2)]
    runs = []
    for foreach in (True, False):
        params = [p.clone() for p in init]
        opt = EnsembleOptimizer(params, name, torch.tensor([1e-3, 3e-3]), torch.tensor(wd), betas=(0.9, 0.98),
                                warmup_steps=3)
        opt.foreach = foreach
        torch.manual_seed(1)
        for _ in range(20):
            opt.step([torch.randn_like(p) for p in init])
        runs.append(params + [b for buffers in opt.buffers for b in buffers])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    assert not torch.equal(runs[0][0], init[0])


def test_inactive_member_is_untouched():
    p = [torch.ones(2, 3)]
    opt = EnsembleOptimizer(p, "adamw", torch.tensor([0.1, 0.1]), torch.tensor([1.0, 1.0]))
    opt.step([torch.full((2, 3), float("nan"))], active=torch.tensor([True, False]))
    assert torch.equal(p[0][1], torch.ones(3))
    assert torch.isfinite(opt.buffers[0][0][1]).all() and torch.isfinite(opt.buffers[1][0][1]).all()
    assert torch.isnan(p[0][0]).all()  # the active member took the NaN step


def test_orthogonal_grad_formula():
    torch.manual_seed(1)
    w, g = torch.randn(3, 4, 5, dtype=torch.float64), torch.randn(3, 4, 5, dtype=torch.float64)
    (out,), _ = OrthogonalGrad().update([g], [w], {})
    for k in range(3):
        wk, gk = w[k].flatten(), g[k].flatten()
        perp = gk - (wk @ gk) / (wk @ wk) * wk
        expected = perp * gk.norm() / perp.norm()
        torch.testing.assert_close(out[k].flatten(), expected)
        assert abs(float(out[k].flatten() @ wk)) < 1e-10  # orthogonal to the weights
        assert float(out[k].norm()) == pytest.approx(float(gk.norm()))


def test_grokfast_ema_formula():
    t = GrokfastEMA(alpha=0.9, lamb=2.0)
    p = [torch.zeros(1, 3)]
    state = t.init(p)
    g1, g2 = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.0, -1.0, 1.0]])
    (o1,), state = t.update([g1], p, state)
    torch.testing.assert_close(o1, g1 + 2.0 * g1)
    (o2,), state = t.update([g2], p, state)
    mu = 0.9 * g1 + 0.1 * g2
    torch.testing.assert_close(o2, g2 + 2.0 * mu)


def test_grokfast_ma_formula():
    t = GrokfastMA(window=3, lamb=5.0)
    p = [torch.zeros(1, 2)]
    state = t.init(p)
    grads = [torch.tensor([[float(i), -float(i)]]) for i in range(1, 6)]
    outs = []
    for g in grads:
        (o,), state = t.update([g], p, state)
        outs.append(o)
    torch.testing.assert_close(outs[0], grads[0])  # window not yet full
    torch.testing.assert_close(outs[2], grads[2] + 5.0 * (grads[0] + grads[1] + grads[2]) / 3)
    torch.testing.assert_close(outs[4], grads[4] + 5.0 * (grads[2] + grads[3] + grads[4]) / 3)


def test_chain_applies_in_order_and_build_rejects_unknown():
    chain = build_transform([{"name": "grokfast_ema", "alpha": 0.5, "lamb": 1.0}, {"name": "orthogonal_grad"}])
    assert isinstance(chain, Chain) and len(chain.transforms) == 2
    w = [torch.randn(2, 6)]
    out, _ = chain.update([torch.randn(2, 6)], w, chain.init(w))
    assert abs(float((out[0][0] * w[0][0]).sum())) < 1e-5
    with pytest.raises(ValueError, match="unknown gradient transform"):
        build_transform([{"name": "nope"}])


def _perp(g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """⊥Grad by hand, one member (row) at a time: drop g's component along w, keep g's norm."""
    rows = []
    for gk, wk in zip(g, w):
        p = gk - (gk @ wk) / (wk @ wk) * wk
        rows.append(p * gk.norm() / p.norm())
    return torch.stack(rows)


def test_chain_order_matters_and_matches_the_hand_computed_composition():
    # two steps: at the first, EMA-then-⊥ and ⊥-then-EMA agree (both give 2 g⊥); at the second they do not, because
    # ⊥Grad renormalises g2 + mu2 as a whole in one order and g2 and g1 separately in the other
    torch.manual_seed(0)
    alpha, lamb = 0.5, 1.0
    w = [torch.randn(2, 6, dtype=torch.float64)]
    g1, g2 = torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    ema = {"name": "grokfast_ema", "alpha": alpha, "lamb": lamb}

    def two_steps(specs):
        chain = build_transform(specs)
        state = chain.init(w)
        out1, state = chain.update([g1], w, state)
        out2, _ = chain.update([g2], w, state)
        return out1[0], out2[0]

    ema_then_perp = two_steps([ema, {"name": "orthogonal_grad"}])
    perp_then_ema = two_steps([{"name": "orthogonal_grad"}, ema])
    # EMA first: mu1 = g1, mu2 = alpha g1 + (1 - alpha) g2; then ⊥ of g + lamb mu
    mu2 = alpha * g1 + (1 - alpha) * g2
    torch.testing.assert_close(ema_then_perp[0], _perp(g1 + lamb * g1, w[0]))
    torch.testing.assert_close(ema_then_perp[1], _perp(g2 + lamb * mu2, w[0]))
    # ⊥ first: the EMA averages the projected gradients
    p1, p2 = _perp(g1, w[0]), _perp(g2, w[0])
    torch.testing.assert_close(perp_then_ema[1], p2 + lamb * (alpha * p1 + (1 - alpha) * p2))
    assert (ema_then_perp[1] - perp_then_ema[1]).abs().max() > 1e-3  # the orders differ: a swap fails above

"""Flow math against the closed forms of docs/METHOD.md, in float64."""

import math

import pytest
import torch

from streaming_flow_ros.flow.grid import interpolate, waypoint_times
from streaming_flow_ros.flow.losses import draw_targets
from streaming_flow_ros.flow.paths import LatentPath, StabilizingPath
from streaming_flow_ros.flow.stepper import integrate, step

H, D = 8, 2


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def demo_chunk(B=1):
    t = waypoint_times(H, torch.float64)
    c = torch.stack([torch.sin(3 * t), t**2 - 0.5], -1)  # (H+1, D)
    return c.expand(B, H + 1, D).clone()


def test_grid_hits_waypoints_and_slopes():
    c = demo_chunk()
    for j in range(H + 1):
        g = interpolate(c, torch.tensor([j / H]))
        assert torch.allclose(g.xi[0], c[0, j])
    for j in range(H):  # mid-segment slope is H * (a_{j+1} - a_j)
        g = interpolate(c, torch.tensor([(j + 0.5) / H]))
        assert torch.allclose(g.xi_dot[0], H * (c[0, j + 1] - c[0, j]))
        assert torch.allclose(g.xi[0], 0.5 * (c[0, j] + c[0, j + 1]))


def test_grid_rejects_single_waypoint():
    with pytest.raises(ValueError):
        interpolate(torch.zeros(1, 1, 2), torch.zeros(1))


@pytest.mark.parametrize("t", [0.0, 0.3, 0.77, 1.0])
def test_stabilizing_tube_mean_and_variance(t):
    path = StabilizingPath(sigma0=0.3, k=2.0)
    N = 200_000
    c = demo_chunk(N)
    tt = torch.full((N,), t)
    g = torch.Generator().manual_seed(0)
    s = path.sample(c, tt, torch.randn(N, D, generator=g))
    xi = interpolate(c[:1], tt[:1]).xi[0]
    std = 0.3 * math.exp(-2.0 * t)
    assert torch.allclose(s.x_t.mean(0), xi, atol=4 * std / math.sqrt(N) + 1e-12)
    assert torch.allclose(s.x_t.var(0), torch.full((D,), std**2), rtol=0.02)


def test_stabilizing_target_is_the_conditional_field_and_integrates_to_closed_form():
    path = StabilizingPath(sigma0=0.2, k=3.0)
    c = demo_chunk()
    eps = torch.tensor([[0.7, -1.3]])
    a0 = path.sample(c, torch.zeros(1), eps).x_t
    for t in (0.1, 0.45, 0.9):
        s = path.sample(c, torch.tensor([t]), eps)
        assert torch.allclose(s.dx_t, path.velocity(c, s.x_t, torch.tensor([t])))
    # integrate v_xi with many midpoint steps; compare with a(t) = xi(t) + (a0 - xi0) e^{-kt}
    def v(x, t):
        return path.velocity(c, x, torch.tensor([t]))

    traj = integrate(v, a0, 4000, method="midpoint")
    for i in (1000, 2500, 4000):
        t = i / 4000
        expect = path.sample(c, torch.tensor([t]), eps).x_t
        assert torch.allclose(traj[i], expect, atol=1e-5)


def test_latent_covariances():
    path = LatentPath(sigma0=0.1, sigma1=0.3, k=1.5)
    N = 300_000
    c = torch.zeros(N, H + 1, 1)  # zero demo: (a, z) is pure noise transport
    g = torch.Generator().manual_seed(1)
    for t in (0.0, 0.4, 1.0):
        s = path.sample(c, torch.full((N,), t), torch.randn(N, 1, generator=g), torch.randn(N, 1, generator=g))
        a, z = s.x_t[:, 0], s.x_t[:, 1]
        var_a = 0.1**2 * math.exp(-2 * 1.5 * t) + (path.sigma_r * t) ** 2
        var_z = (1 - (1 - 0.3) * t) ** 2
        cov = path.sigma_r * t * (1 - (1 - 0.3) * t)
        assert a.var().item() == pytest.approx(var_a, rel=0.02)
        assert z.var().item() == pytest.approx(var_z, rel=0.02)
        assert torch.mean(a * z).item() == pytest.approx(cov, abs=0.005)
    # at t = 1 the action marginal has width sigma1 exactly
    assert 0.1**2 * math.exp(-3.0) + path.sigma_r**2 == pytest.approx(0.3**2)


def test_latent_velocity_integrates_to_closed_form():
    path = LatentPath(sigma0=0.05, sigma1=0.2, k=2.0)
    c = demo_chunk()
    eps, z0 = torch.tensor([[0.4, -0.2]]), torch.tensor([[1.1, -0.6]])
    x0 = path.sample(c, torch.zeros(1), eps, z0).x_t
    s = path.sample(c, torch.tensor([0.6]), eps, z0)
    assert torch.allclose(s.dx_t, path.velocity(c, s.x_t, torch.tensor([0.6])))
    # midpoint: evaluations between knots, where xi_dot is continuous (docs/BENCHMARKS.md, "Integrator")
    traj = integrate(lambda x, t: path.velocity(c, x, torch.tensor([t])), x0, 4000, method="midpoint")
    assert torch.allclose(traj[-1], path.sample(c, torch.ones(1), eps, z0).x_t, atol=1e-5)


def test_path_parameter_validation():
    with pytest.raises(ValueError):
        StabilizingPath(sigma0=-1.0, k=1.0)
    with pytest.raises(ValueError):
        StabilizingPath(sigma0=0.1, k=float("nan"))
    with pytest.raises(ValueError):
        LatentPath(sigma0=0.3, sigma1=0.1, k=1.0)


def test_draw_targets_shapes():
    c = demo_chunk(5)
    tg = draw_targets(StabilizingPath(0.1, 2.0), c, torch.Generator().manual_seed(0))
    assert tg.t.shape == (5,) and tg.sample.x_t.shape == (5, D)
    tg = draw_targets(LatentPath(0.01, 0.1, 2.0), c, torch.Generator().manual_seed(0))
    assert tg.sample.x_t.shape == (5, 2 * D)


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2)])
def test_stepper_convergence_order(method, order):
    def v(x, t):
        return -x + t

    exact = lambda t: 2 * math.exp(-t) + t - 1
    errs = [abs(integrate(v, torch.ones(1, 1), n, method=method)[-1].item() - exact(1.0)) for n in (20, 40)]
    assert math.log2(errs[0] / errs[1]) == pytest.approx(order, abs=0.2)


def test_step_does_not_mutate_input():
    x = torch.ones(1, 2)
    y = step(lambda x, t: x, x, 0.0, 0.1)
    assert torch.equal(x, torch.ones(1, 2)) and torch.allclose(y, 1.1 * torch.ones(1, 2))
    with pytest.raises(ValueError):
        step(lambda x, t: x, x, 0.0, 0.1, "rk45")

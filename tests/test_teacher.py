"""The teacher task (Zucchet & Orvieto 2024, Fig. 1): its targets against a direct simulation of the
teacher, the linear student's loss surface against the same sum computed independently, and against
the closed form of the mean loss at large T (within the sampling error of the data)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from landscape import grid  # noqa: E402
from landscape.tasks import get_task  # noqa: E402


def closed_form(lam, lam_star, mu=0.0, T=None):
    """1/2 E[(h_T - h*_T)^2] for the linear student (u = 1, b = 0) and teacher from rest, sigma = 1; the
    T -> infinity limit when T is None."""
    if T is None:
        var = 1 / (1 - lam**2) + 1 / (1 - lam_star**2) - 2 / (1 - lam * lam_star)
        mean = mu * (1 / (1 - lam) - 1 / (1 - lam_star))
    else:
        k = np.arange(T)
        d = np.power.outer(lam, k) - lam_star**k
        var, mean = (d**2).sum(-1), mu * d.sum(-1)
    return 0.5 * (var + mean**2)


def test_the_targets_are_the_teacher_run_on_the_inputs():
    task = get_task("teacher", lam=0.8, mu=0.3)
    data = task.make((1, 7, 20), 50, seed=3)
    x = data.inputs[..., 0].numpy()
    h = np.zeros(50)
    for t in range(20):
        h = 0.8 * h + x[t]
        if t + 1 in (1, 7, 20):
            np.testing.assert_allclose(data.targets[t + 1].numpy(), h, rtol=1e-14, atol=1e-14)
    assert abs(x.mean() - 0.3) < 0.05 and abs(x.std() - 1) < 0.05


def test_the_linear_students_surface_is_the_sum_computed_directly(tmp_path):
    s = grid(cell="linear", task="teacher", task_options=(("lam", 0.7),), x="w:-0.5:0.95:7", y="b:-0.2:0.2:3",
             T=(5, 30), n=200, seed=1, out=tmp_path / "t.h5").surface
    data = get_task("teacher", lam=0.7).make((5, 30), 200, 1)
    x = data.inputs[..., 0].numpy()
    for k, T in enumerate((5, 30)):
        for i, w in enumerate(s.x):
            for j, b in enumerate(s.y):
                h = np.zeros(200)
                for t in range(T):
                    h = w * h + x[t] + b
                want = 0.5 * np.mean((h - data.targets[T].numpy()) ** 2)
                np.testing.assert_allclose(s.loss[k, i, j], want, rtol=1e-12)


@pytest.mark.parametrize("lam_star, mu", [(0.9, 0.0), (0.68, 0.0), (0.9, 0.5)])
def test_at_large_T_the_surface_is_the_closed_form(tmp_path, lam_star, mu):
    n = 20000
    s = grid(cell="linear", task="teacher", task_options=(("lam", lam_star), ("mu", mu)),
             x="w:0:0.95:12", y="b:-1:1:3", T=(600,), n=n, out=tmp_path / "t.h5").surface
    lam = s.x
    got = s.loss[0, :, 1]  # b = 0
    finite = closed_form(lam, lam_star, mu, T=600)
    np.testing.assert_allclose(finite, closed_form(lam, lam_star, mu), rtol=1e-9, atol=1e-12)  # T = 600 is the limit
    # sampling error: (h_T - h*_T) is Gaussian, so the mean of its square over n has relative sd <= sqrt(2 / n)
    # (plus the mean's); 6 of those bound the difference
    tol = 6 * np.sqrt(2 / n) * finite * (1 + 2 * abs(mu)) + 1e-12
    assert np.all(np.abs(got - finite) <= tol), np.c_[lam, got, finite]


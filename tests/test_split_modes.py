"""`jgeo._split_modes.split_modes(forward, reverse)`: values and JVPs from `forward`,
VJPs from `reverse`. Here the two programs deliberately differ (reverse is 3× forward),
so each mode shows which program served it; in jgeo they are two diffrax adjoints of
one geodesic ODE solve."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jgeo._split_modes import split_modes


class Scale(eqx.Module):
    weight: jax.Array
    name: str = "a non-array leaf, passed through"


def forward(module, x):
    return module.weight * jnp.sin(x)


def reverse(module, x):
    return 3 * forward(module, x)


fn = split_modes(forward, reverse)
module, x = Scale(jnp.array(2.0)), jnp.array([0.1, 0.2, 0.3])


def test_values_and_forward_mode_come_from_forward():
    np.testing.assert_allclose(fn(module, x), forward(module, x))
    _, tangent = jax.jvp(lambda a: fn(module, a), (x,), (jnp.ones(3),))
    np.testing.assert_allclose(tangent, 2 * jnp.cos(x))


def test_reverse_mode_comes_from_reverse_in_every_argument_under_jit_and_vmap():
    grads = eqx.filter_jit(eqx.filter_grad(lambda both: jnp.sum(fn(*both))))((module, x))
    np.testing.assert_allclose(grads[1], 3 * 2 * jnp.cos(x))
    np.testing.assert_allclose(grads[0].weight, 3 * jnp.sum(jnp.sin(x)))
    batched = jax.jit(jax.vmap(jax.grad(lambda a: jnp.sum(fn(module, a)))))(jnp.stack([x, 2 * x]))
    np.testing.assert_allclose(batched, 6 * jnp.cos(jnp.stack([x, 2 * x])))
    # A Jacobian by rows (vmap of the transpose) and by columns agree up to the factor.
    np.testing.assert_allclose(jax.jacrev(lambda a: fn(module, a))(x),
                               3 * jax.jacfwd(lambda a: fn(module, a))(x))  # fmt: skip


def test_second_derivatives_forward_over_forward():
    hessian = jax.jacfwd(jax.jacfwd(lambda a: jnp.sum(fn(module, a))))(x)
    np.testing.assert_allclose(hessian, jnp.diag(-2 * jnp.sin(x)), atol=1e-15)

"""Hessian-vector products without forming the Hessian.

For a scalar loss L(θ) over parameters θ (a list of ``tf.Variable``s, flattened
into one vector), the product H v with H = ∇²L(θ) is the directional derivative
of the gradient along v:

    H v = ∇_θ ( ∇_θ L(θ) · v )              (reverse-over-reverse, "double backprop")
    H v = d/dε ∇_θ L(θ + ε v) |_{ε=0}        (forward-over-reverse, a JVP of the gradient)

Both cost a small constant times one gradient (Pearlmutter's trick) and never
materialise H. The same code serves the CG explorer (θ is one ``tf.Variable``
holding the point) and TRPO (θ is a policy's weights; the loss is the mean KL,
so H v is the Fisher-vector product).

Parameters must be ``tf.Variable``s (for example inside a ``tf.Module``): Keras 3
variables break ``tf.autodiff.ForwardAccumulator``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

HVP_MODES = ("reverse", "forward")
MAX_VECTORIZED_OPS = 5_000  # explicit_hessian vectorises HVP graphs up to this many operations

LossFn = Callable[..., tf.Tensor]


def flatten(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """Concatenate tensors into one 1-D vector (the flat parameter layout)."""
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def unflatten(vector: tf.Tensor, like: Sequence[tf.Variable]) -> list[tf.Tensor]:
    """Split a flat vector into tensors shaped like ``like`` (inverse of :func:`flatten`)."""
    sizes = [int(np.prod(v.shape)) for v in like]
    parts = tf.split(vector, sizes)
    return [tf.reshape(part, v.shape) for part, v in zip(parts, like, strict=True)]


def num_parameters(variables: Sequence[tf.Variable]) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


def gradient(loss_fn: LossFn, variables: Sequence[tf.Variable], *args) -> tf.Tensor:
    """Flat gradient of ``loss_fn(*args)`` with respect to ``variables``."""
    with tf.GradientTape() as tape:
        loss = loss_fn(*args)
    grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return flatten(grads)


def hessian_vector_product(
    loss_fn: LossFn,
    variables: Sequence[tf.Variable],
    vector: tf.Tensor,
    *args,
    mode: str = "reverse",
) -> tf.Tensor:
    """H v for H the Hessian of ``loss_fn(*args)`` at the variables' current values.

    Parameters
    ----------
    loss_fn : callable returning a scalar tensor; it reads ``variables``.
    variables : the parameters θ, a list of ``tf.Variable``s.
    vector : flat tensor v with as many entries as θ (same dtype).
    *args : passed to ``loss_fn`` (a batch of data, for instance).
    mode : ``"reverse"`` (double backprop) or ``"forward"`` (forward-over-reverse).

    Returns
    -------
    Flat tensor H v. Traceable: call it inside a ``tf.function`` (see
    :class:`HessianVectorProduct`) - eagerly it is several times slower.
    """
    variables = list(variables)
    zero = tf.UnconnectedGradients.ZERO
    if mode == "reverse":
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = loss_fn(*args)
            grads = inner.gradient(loss, variables, unconnected_gradients=zero)
            grad_dot_v = tf.reduce_sum(flatten(grads) * tf.stop_gradient(vector))
        return flatten(outer.gradient(grad_dot_v, variables, unconnected_gradients=zero))
    if mode == "forward":
        tangents = unflatten(vector, variables)
        with tf.autodiff.ForwardAccumulator(variables, tangents) as accumulator:
            with tf.GradientTape() as tape:
                loss = loss_fn(*args)
            grads = tape.gradient(loss, variables, unconnected_gradients=zero)
        return flatten(accumulator.jvp(grads, unconnected_gradients=zero))
    raise ValueError(f"unknown HVP mode {mode!r}; expected one of {HVP_MODES}")


class HessianVectorProduct:
    """A compiled ``v -> H v`` for a fixed loss and parameter list.

    Build it once per (loss, parameters, mode) and call it many times: the
    ``tf.function`` traces once per input signature, and the parameters can be
    changed in place (``variable.assign``) without retracing.

    ``hvp(v, *args)`` returns H v as a tensor; ``hvp.gradient(*args)`` returns ∇L.
    ``hvp.graph_fn`` is the uncompiled function, for use inside another
    ``tf.function`` (TRPO's natural-gradient solve compiles CG and FVP together).
    """

    def __init__(
        self,
        loss_fn: LossFn,
        variables: Sequence[tf.Variable],
        mode: str = "reverse",
        jit_compile: bool = False,
    ):
        if mode not in HVP_MODES:
            raise ValueError(f"unknown HVP mode {mode!r}; expected one of {HVP_MODES}")
        self.loss_fn = loss_fn
        self.variables = list(variables)
        self.mode = mode
        self.size = num_parameters(self.variables)
        # autograph=False: pure TF code, and user-built loss lambdas need no conversion.
        self._hvp = tf.function(
            self.graph_fn, jit_compile=jit_compile, reduce_retracing=True, autograph=False
        )
        self._grad = tf.function(
            lambda *args: gradient(self.loss_fn, self.variables, *args),
            reduce_retracing=True,
            autograph=False,
        )

    def graph_fn(self, vector: tf.Tensor, *args) -> tf.Tensor:
        return hessian_vector_product(self.loss_fn, self.variables, vector, *args, mode=self.mode)

    def __call__(self, vector, *args) -> tf.Tensor:
        return self._hvp(tf.convert_to_tensor(vector, dtype=self.variables[0].dtype), *args)

    def gradient(self, *args) -> tf.Tensor:
        return self._grad(*args)

    def graph_size(self, *args) -> GraphSize:
        """Size of the compiled HVP's graph for these arguments (traced now if it was not)."""
        spec = tf.TensorSpec([self.size], self.variables[0].dtype)
        return graph_size(self._hvp.get_concrete_function(spec, *args).graph)


@dataclass(frozen=True)
class GraphSize:
    """The size of a traced graph, a proxy for what compiling it costs.

    ``ops``: its operations (TensorFlow keeps the Python graph, its FunctionDef and an
    instantiated, optimised copy in every function that calls it, so memory and compile
    time grow with it); ``constant_bytes``: data embedded as constants (copied into every
    graph that embeds it); ``captured_bytes``: tensors it reads by reference (shared).
    """

    ops: int
    constant_bytes: int
    captured_bytes: int


def graph_size(graph: tf.Graph) -> GraphSize:
    ops = graph.get_operations()
    constant_bytes = sum(op.get_attr("value").ByteSize() for op in ops if op.type == "Const")
    captured_bytes = 0
    for external, _ in graph.captures:
        if external.dtype not in (tf.resource, tf.variant) and external.shape.is_fully_defined():
            captured_bytes += external.shape.num_elements() * external.dtype.size
    return GraphSize(len(ops), constant_bytes, captured_bytes)


def explicit_hessian(
    hvp: HessianVectorProduct, *args, chunk_size: int = 256,
    max_vectorized_ops: int = MAX_VECTORIZED_OPS,
) -> np.ndarray:
    """The full Hessian as a numpy array, column block by column block.

    Each block of ``chunk_size`` columns is ``H [e_i ... e_j]``, computed by
    vectorising the compiled HVP over basis vectors (``tf.vectorized_map``).
    Costs about N HVPs and N² memory: for comparisons on small problems only.

    Vectorising compiles a second, batched copy of the HVP graph, which for a large
    graph costs more than everything else the problem compiles (a 10,000-character
    expression: about 200 MiB and a minute). When the HVP graph has more than
    ``max_vectorized_ops`` operations the columns are instead computed one by one
    with the compiled HVP itself (N calls, nothing new compiled).
    """
    n = hvp.size
    dtype = hvp.variables[0].dtype
    if hvp.graph_size(*args).ops > max_vectorized_ops:
        columns = [hvp(tf.one_hot(i, n, dtype=dtype), *args).numpy() for i in range(n)]
        hessian = np.stack(columns, axis=1)
    else:
        blocks = []
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            basis = tf.one_hot(tf.range(start, stop), n, dtype=dtype)
            blocks.append(_hvp_block(hvp, basis, *args).numpy())
        hessian = np.concatenate(blocks, axis=0).T
    # H is symmetric in exact arithmetic; symmetrise away the rounding.
    return 0.5 * (hessian + hessian.T)


def _hvp_block(hvp: HessianVectorProduct, basis: tf.Tensor, *args) -> tf.Tensor:
    fn = getattr(hvp, "_block_fn", None)
    if fn is None:
        fn = tf.function(
            lambda vs, *a: tf.vectorized_map(
                # Reverse mode vectorises reliably under pfor whatever hvp.mode is.
                lambda v: hessian_vector_product(hvp.loss_fn, hvp.variables, v, *a),
                vs,
            ),
            reduce_retracing=True,
            autograph=False,
        )
        hvp._block_fn = fn
    return fn(basis, *args)

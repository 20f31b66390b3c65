"""Tests for trpo_viz.expr: the safe expression compiler."""

import builtins
import math
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from trpo_viz import expr
from trpo_viz.expr import (
    CONSTANTS,
    FUNCTIONS,
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    CompiledExpression,
    ExpressionError,
    compile_expression,
)

SOURCE_EXAMPLE = "x1**3 + 2*x1*x2 + x2**2 - x1 + x3**2"


def f64(values):
    return tf.constant(values, tf.float64)


def gradient_and_hessian(f, theta):
    theta = f64(theta)
    with tf.GradientTape() as outer:
        outer.watch(theta)
        with tf.GradientTape() as inner:
            inner.watch(theta)
            y = f(theta)
        g = inner.gradient(y, theta)
    # linear (or constant) functions have a gradient that does not depend on theta
    h = outer.jacobian(g, theta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return y.numpy(), g.numpy(), h.numpy()


# --- the source example -------------------------------------------------------------


def test_source_example_value_gradient_hessian():
    f = compile_expression(SOURCE_EXAMPLE)
    assert isinstance(f, CompiledExpression)
    assert (f.text, f.n, f.variables) == (SOURCE_EXAMPLE, 3, (1, 2, 3))
    y, g, h = gradient_and_hessian(f, [3.0, 1.0, 5.0])
    x1, x2, x3 = 3.0, 1.0, 5.0
    assert y == pytest.approx(x1**3 + 2 * x1 * x2 + x2**2 - x1 + x3**2)  # 56
    np.testing.assert_allclose(g, [3 * x1**2 + 2 * x2 - 1, 2 * x1 + 2 * x2, 2 * x3])
    np.testing.assert_allclose(h, [[6 * x1, 2, 0], [2, 2, 0], [0, 0, 2]])


def test_theta_spellings_are_the_same_variables():
    plain = compile_expression(SOURCE_EXAMPLE)
    for text in (
        "theta1**3 + 2*theta1*theta2 + theta2**2 - theta1 + theta3**2",
        "θ1**3 + 2*θ1*θ2 + θ2**2 - θ1 + θ3**2",
        "x1**3 + 2*θ1*theta2 + x2**2 - θ1 + theta3**2",
    ):
        other = compile_expression(text)
        assert (other.n, other.variables) == (3, (1, 2, 3))
        for point in ([3.0, 1.0, 5.0], [-0.5, 2.0, 0.25]):
            assert other(f64(point)).numpy() == pytest.approx(plain(f64(point)).numpy())
    mixed = compile_expression("x1 + θ1 + theta1")
    assert mixed.variables == (1,)
    assert mixed(f64([2.0])).numpy() == pytest.approx(6.0)


def test_forward_over_back_hvp_matches_hessian():
    f = compile_expression(SOURCE_EXAMPLE)
    theta, v = f64([3.0, 1.0, 5.0]), f64([1.0, -2.0, 0.5])

    @tf.function
    def hvp(theta, v):
        with tf.autodiff.ForwardAccumulator(theta, v) as acc:
            with tf.GradientTape() as tape:
                tape.watch(theta)
                y = f(theta)
            g = tape.gradient(y, theta)
        return acc.jvp(g)

    hessian = np.array([[18.0, 2, 0], [2, 2, 0], [0, 0, 2]])
    np.testing.assert_allclose(hvp(theta, v).numpy(), hessian @ v.numpy())


def test_float32_in_float32_out_and_shape_checks():
    f = compile_expression("pi*x1 + x2**2")
    y = f(tf.constant([1.0, 2.0], tf.float32))
    assert y.dtype == tf.float32 and y.shape == ()
    assert y.numpy() == pytest.approx(math.pi + 4.0, rel=1e-6)
    relaxed = tf.function(f, input_signature=[tf.TensorSpec([None], tf.float32)])
    assert relaxed(tf.constant([1.0, 2.0])).numpy() == pytest.approx(math.pi + 4.0, rel=1e-6)
    with pytest.raises(ValueError):
        f(f64([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError):
        f(tf.constant([1, 2]))


@pytest.mark.parametrize(
    "k, x",
    # x = 0 only for k ≥ 0: negative powers have a pole there.
    [(k, x) for k in [-2, -1, 0, 1, 2, 3, 4, 5] for x in [-2.0, -0.5, 0.0, 1.5] if x or k >= 0],
)
def test_integer_powers_have_finite_exact_derivatives(k, x):
    y, g, h = gradient_and_hessian(compile_expression(f"x1**{k}"), [x])
    assert y == pytest.approx(x**k)
    assert g[0] == pytest.approx(k * x ** (k - 1) if k != 0 else 0.0)
    assert h[0, 0] == pytest.approx(k * (k - 1) * x ** (k - 2) if k not in (0, 1) else 0.0)


# --- functions and constants --------------------------------------------------------

NUMPY_REFERENCE = {
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "abs": np.abs,
    "square": np.square,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "arcsin": np.arcsin,
    "asin": np.arcsin,
    "arccos": np.arccos,
    "acos": np.arccos,
    "arctan": np.arctan,
    "atan": np.arctan,
    "arcsinh": np.arcsinh,
    "asinh": np.arcsinh,
    "arccosh": np.arccosh,
    "acosh": np.arccosh,
    "arctanh": np.arctanh,
    "atanh": np.arctanh,
    "erf": np.vectorize(math.erf),
}
POSITIVE = (0.3, 1.0, 2.5)
UNIT = (-0.7, 0.1, 0.6)
DOMAINS = {"log": POSITIVE, "sqrt": POSITIVE, "log1p": (-0.5, 0.3, 4.0), "arccosh": (1.2, 2.0, 7.0)}
DOMAINS |= {"acosh": DOMAINS["arccosh"]}
DOMAINS |= {name: UNIT for name in ("arcsin", "asin", "arccos", "acos", "arctanh", "atanh")}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_matches_numpy(name):
    assert name in NUMPY_REFERENCE, f"add a numpy reference for {name}"
    f = compile_expression(f"{name}(x1)")
    for x in DOMAINS.get(name, (-1.3, 0.4, 2.1)):
        want = NUMPY_REFERENCE[name](np.float64(x))
        assert f(f64([x])).numpy() == pytest.approx(want, rel=1e-12, abs=1e-15)
        # constant arguments are folded in float math; they must agree with TensorFlow
        folded = compile_expression(f"{name}({x!r}) + 0*x1")
        assert folded(f64([0.0])).numpy() == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_constants_and_mixed_powers():
    assert CONSTANTS == {"pi": math.pi, "e": math.e}
    f = compile_expression("2*pi*x1 + e**x2 + 2**x1 + x1**x2 + x2**0.5 - sin(pi/2)")
    x1, x2 = 1.5, 2.25
    want = 2 * math.pi * x1 + math.e**x2 + 2**x1 + x1**x2 + x2**0.5 - 1.0
    assert f(f64([x1, x2])).numpy() == pytest.approx(want)
    _, g, _ = gradient_and_hessian(f, [x1, x2])
    want_g = [
        2 * math.pi + math.log(2) * 2**x1 + x2 * x1 ** (x2 - 1),
        math.e**x2 + math.log(x1) * x1**x2 + 0.5 / math.sqrt(x2),
    ]
    np.testing.assert_allclose(g, want_g)


def test_operator_precedence_and_associativity():
    cases = {
        "x1 - x2 - x3": lambda a, b, c: a - b - c,
        "x1 / x2 / x3": lambda a, b, c: a / b / c,
        "x1 / x2 * x3": lambda a, b, c: a / b * c,
        "-x1**2": lambda a, b, c: -(a**2),
        "x1**-x2": lambda a, b, c: a**-b,
        "2**3**x3 + x1*0": lambda a, b, c: 2 ** (3**c),
        "-x1 - -x2 + +x3": lambda a, b, c: -a + b + c,
        "x1 - (x2 - x3)": lambda a, b, c: a - (b - c),
        "1 + 2 - x1 - 4 + x2*3/2": lambda a, b, c: 1 + 2 - a - 4 + b * 3 / 2,
    }
    a, b, c = 1.7, 0.6, 1.2
    for text, want in cases.items():
        f = compile_expression(text, n=3)
        assert f(f64([a, b, c])).numpy() == pytest.approx(want(a, b, c)), text


def test_multiline_text_is_accepted():
    f = compile_expression("x1**2\n  + 3*x2\r\n  - x1")
    assert f(f64([2.0, 1.0])).numpy() == pytest.approx(5.0)
    with pytest.raises(ExpressionError) as info:
        compile_expression("x1\n+ foo")
    assert info.value.column == 6  # counted over the whole text


# --- dimension ------------------------------------------------------------------------


def test_explicit_n_larger_than_highest_index_gives_zero_derivatives():
    f = compile_expression("x1*x3", n=5)
    assert (f.n, f.variables) == (5, (1, 3))
    y, g, h = gradient_and_hessian(f, [2.0, 7.0, 3.0, 7.0, 7.0])
    assert y == pytest.approx(6.0)
    np.testing.assert_allclose(g, [3.0, 0, 2.0, 0, 0])
    want_h = np.zeros((5, 5))
    want_h[0, 2] = want_h[2, 0] = 1.0
    np.testing.assert_allclose(h, want_h)


def test_large_n_with_few_variables():
    f = compile_expression("x2**2 + x1", n=1000)
    theta = np.zeros(1000)
    theta[1] = 3.0
    y, g, _ = gradient_and_hessian(f, theta)
    assert y == pytest.approx(9.0)
    want = np.zeros(1000)
    want[:2] = [1.0, 6.0]
    np.testing.assert_array_equal(g, want)
    assert compile_expression("x10000").n == 10_000


def test_constant_expression_needs_n_and_has_zero_gradient():
    with pytest.raises(ExpressionError, match="no variables"):
        compile_expression("2*pi")
    f = compile_expression("2*pi", n=2)
    assert f.variables == ()
    y, g, h = gradient_and_hessian(f, [1.0, float("inf")])
    assert y == pytest.approx(2 * math.pi)
    np.testing.assert_array_equal(g, [0.0, 0.0])


@pytest.mark.parametrize("n", [2, 0, -1, 10_001, True, 2.5, "3"])
def test_bad_explicit_n(n):
    with pytest.raises(ExpressionError):
        compile_expression("x1 + x3", n=n)


# --- scale and performance ----------------------------------------------------------


def quadratic_text(a):
    terms = [
        f"{float(0.5 * a[i, j])!r}*x{i + 1}*x{j + 1}"
        for i in range(a.shape[0])
        for j in range(a.shape[1])
    ]
    return " + ".join(terms)


def test_term_by_term_quadratic_in_10_variables():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(10, 10))
    a = m + m.T
    text = quadratic_text(a)
    assert 2_000 < len(text) <= MAX_EXPRESSION_CHARS
    f = compile_expression(text)
    assert f.n == 10
    x = rng.normal(size=10)
    assert f(f64(x)).numpy() == pytest.approx(0.5 * x @ a @ x, rel=1e-12)

    @tf.function
    def hessian(theta):
        with tf.GradientTape() as outer:
            outer.watch(theta)
            with tf.GradientTape() as inner:
                inner.watch(theta)
                y = f(theta)
            g = inner.gradient(y, theta)
        return outer.jacobian(g, theta)

    start = time.thread_time()  # CPU time of this thread: other processes do not count
    h = hessian(f64(x)).numpy()
    assert time.thread_time() - start < 10.0  # tracing a few thousand chars is quick
    np.testing.assert_allclose(h, a, rtol=1e-12, atol=1e-12)


def test_long_sum_compiles_and_traces():
    text = " + ".join(f"x{i}*x{i + 1}" for i in range(1, 1200))  # ~16k chars
    start = time.thread_time()  # CPU time of this thread (tracing): load elsewhere does not count
    f = compile_expression(text)
    x = np.linspace(-1, 1, 1200)
    y = tf.function(f)(f64(x)).numpy()
    assert time.thread_time() - start < 10.0
    assert y == pytest.approx(np.sum(x[:-1] * x[1:]))


def test_nesting_limits():
    compile_expression("(" * MAX_DEPTH + "x1" + ")" * MAX_DEPTH)
    with pytest.raises(ExpressionError, match="nested"):
        compile_expression("(" * (MAX_DEPTH + 1) + "x1" + ")" * (MAX_DEPTH + 1))
    compile_expression("-" * (MAX_DEPTH - 2) + "x1")
    with pytest.raises(ExpressionError, match="nested"):
        compile_expression("-" * (MAX_DEPTH + 1) + "x1")
    with pytest.raises(ExpressionError, match="too complex"):
        compile_expression("x1+" * 6000 + "x1")  # one chain beyond CPython's AST recursion


# --- adversarial input --------------------------------------------------------------

ADVERSARIAL = [
    "__import__('os').system('touch /tmp/pwned')",
    "().__class__.__bases__",
    "().__class__.__base__.__subclasses__()",
    "open('/etc/passwd')",
    "x1.real",
    "x1[0]",
    "lambda: 1",
    "[x for x in ()]",
    "'abc'",
    "b'abc'",
    "sin(x1, x2)",
    "sin()",
    "sin(x=x1)",
    "sin(*x1)",
    "foo(x1)",
    "getattr(x1,'a')",
    "sin(x1)(x2)",
    "x1(x2)",
    "x1 if x1 else x2",
    "x1 < 2",
    "x1 and x2",
    "not x1",
    "x1 // 2",
    "x1 % 2",
    "x1 @ x2",
    "x1 ^ 2",
    "~x1",
    "1j*x1",
    "True*x1",
    "x1; x2",
    "x1 = 2",
    "(x1 := 2)",
    "(x1, x2)",
    "{x1}",
    "import os",
    "x1 # comment",
    "(" * 100_000 + "x1" + ")" * 100_000,
    "x1+" * 50_000 + "x1",
    "x1+" * 6_000 + "x1",
    "-" * 19_000 + "x1",
    "x1**" * 4_000 + "x1",
    "9**9**9",
    "2**200",
    "x1**1000",
    "1e400*x1",
    "1e100*1e100*x1",
    "exp(1000)*x1",
    "log(0)*x1",
    "x1/0",
    "(-8)**(1/3)*x1",
    "x99999999999",
    "x" + "9" * 10_000,
    "x10001",
    "x0",
    "x01",
    "X1",
    "sin",
    "",
    "   ",
    "\n",
    "1" + "0" * 5000,
    "1" + "0" * 200 + "*x1",
    "f'{x1}'",
    "*x1",
    "x1\x00",
    "x1\ud800",
]


def forbid(*args, **kwargs):
    raise AssertionError("compile_expression must not run anything")


REAL_IMPORT = builtins.__import__
DANGEROUS_MODULES = {"os", "posix", "subprocess", "shutil", "socket", "ctypes", "importlib", "sys"}


def guarded_import(name, *args, **kwargs):
    # the stdlib imports lazily (ast.walk imports collections), so only deny the dangerous
    if name.partition(".")[0] in DANGEROUS_MODULES:
        forbid()
    return REAL_IMPORT(name, *args, **kwargs)


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t)[:40])
def test_adversarial_input_is_rejected_quickly_and_runs_nothing(text, monkeypatch):
    outcome = None
    with monkeypatch.context() as m:
        for target, name in [
            (builtins, "open"),
            (os, "system"),
            (os, "popen"),
            (subprocess, "Popen"),
        ]:
            m.setattr(target, name, forbid)
        m.setattr(builtins, "__import__", guarded_import)
        start = time.thread_time()  # CPU time of this thread: a loaded machine does not count
        try:
            compile_expression(text)
        except Exception as exc:  # inspected below, after restoring builtins
            outcome = exc
        elapsed = time.thread_time() - start
    assert isinstance(outcome, ExpressionError), outcome
    assert isinstance(outcome, ValueError)
    assert elapsed < 1.0
    assert len(str(outcome)) < 300


def test_injection_attempt_creates_no_file(tmp_path):
    sentinel = tmp_path / "pwned"
    for text in (
        f"__import__('os').system('touch {sentinel}')",
        f"open('{sentinel}', 'w')",
        f"[c for c in ().__class__.__base__.__subclasses__()][0]('touch {sentinel}')",
    ):
        with pytest.raises(ExpressionError):
            compile_expression(text)
    assert not sentinel.exists()


# the builtins (not re.compile), and sympy's parsers
DYNAMIC_EXECUTION = re.compile(
    r"(?<![.\w])(ev" r"al|ex" r"ec|compile|sympify|lambdify|parse_expr)\s*\("
)


def test_package_never_uses_dynamic_execution():
    files = sorted(Path(expr.__file__).parent.glob("*.py"))
    assert len(files) > 1  # the package's modules, not only __init__
    for path in files:
        source = path.read_text(encoding="utf-8")
        found = DYNAMIC_EXECUTION.search(source)
        assert found is None, f"{found and found[0]} in {path.name}"


def test_refusal_and_parsing_do_not_import_tensorflow():
    """The pure stage answers alone: a refused or parsed expression never loads TensorFlow."""
    code = (
        "import sys\n"
        "from trpo_viz.expr import ExpressionError, compile_expression, parse_expression\n"
        "parsed = parse_expression('x1**3 + 2*x1*x2 + x2**2 - x1 + x3**2')\n"
        "assert (parsed.n, parsed.variables) == (3, (1, 2, 3))\n"
        "try:\n"
        "    compile_expression('x1 +* 2')\n"
        "except ExpressionError as error:\n"
        "    assert error.column == 5, error\n"
        "else:\n"
        "    raise AssertionError('accepted')\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("x1 + foo(x2)", 6, "unknown function 'foo'"),
        ("θ1 + foo(x2)", 6, "unknown function 'foo'"),
        ("x1 + bar", 6, "unknown name 'bar'"),
        ("x1 // 2", 4, "'//'"),
        ("x1 < 2", 4, "comparison"),
        ("x1 + x1.real", 8, "attribute"),
        ("x1 + x2[0]", 8, "subscript"),
        ("x1 + 'a'", 6, "string"),
        ("sin(x1, x2)", 1, "exactly one argument"),
        ("2 * sin(x=x1)", 9, "keyword"),
        ("9**9**9", 4, "exponent"),
        ("x1 * 1e400", 6, "too large"),
        ("x1 / (1 - 1)", 7, "division by zero"),
        ("x1 + x0", 6, "start at 1"),
        ("x1 + x01", 6, "leading zeros"),
        ("x1 + x99999999999", 6, "maximum dimension"),
        ("x1 + * 2", 6, "syntax error"),
        ("x1 +", 5, "end of expression"),
        ("x1 # note", 4, "comment"),
        ("x1 + " + "(" * 61 + "x2" + ")" * 61, 66, "nested"),
    ],
)
def test_error_messages_name_the_column(text, column, fragment):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert info.value.column == column
    assert f"column {column}" in str(info.value)
    assert fragment in str(info.value)


def test_expression_error_is_picklable():
    error = ExpressionError("unknown name 'foo' at column 7", 7)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.column) == (str(error), 7)


def test_non_string_input_is_a_type_error():
    with pytest.raises(TypeError):
        compile_expression(b"x1")


# --- property: random polynomials match numpy -----------------------------------------

coefficients = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
monomials = st.tuples(coefficients, st.lists(st.integers(0, 4), min_size=4, max_size=4))


@settings(max_examples=40, deadline=None)
@given(
    terms=st.lists(monomials, min_size=1, max_size=6),
    theta=st.lists(st.floats(-3, 3, allow_nan=False), min_size=4, max_size=4),
)
def test_random_polynomials_match_numpy(terms, theta):
    text = " + ".join(
        f"{c!r}" + "".join(f"*x{i + 1}**{p}" for i, p in enumerate(powers)) for c, powers in terms
    )
    f = compile_expression(text, n=4)
    x = np.array(theta)
    values = [c * np.prod(x ** np.array(powers, dtype=float)) for c, powers in terms]
    want = sum(values)
    # Terms up to 10·3¹⁶ may cancel: rounding is relative to the terms, not to their sum.
    scale = sum(abs(v) for v in values)
    assert f(f64(x)).numpy() == pytest.approx(want, rel=1e-9, abs=1e-12 * scale + 1e-12)

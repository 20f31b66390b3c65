"""Memory bounds: the cost-bounded LRU cache, releasing memory, and the explicit Hessian's
column-by-column route for large HVP graphs."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import numpy as np
import pytest
import tensorflow as tf

from trpo_viz.bounded_cache import BoundedCache
from trpo_viz.heap import release_memory, resident_bytes
from trpo_viz.hvp import HessianVectorProduct, explicit_hessian


class Box:
    def __init__(self, name: str, cost: float):
        self.name, self.cost = name, cost


def cache(max_entries=3, max_cost=10.0, evicted=None):
    return BoundedCache(max_entries, max_cost, cost=lambda box: box.cost,
                        on_evict=None if evicted is None else evicted.extend)


def test_entries_are_bounded_and_the_least_recently_used_goes_first():
    evicted = []
    c = cache(max_entries=2, evicted=evicted)
    c.get("a", lambda: Box("a", 1))
    c.get("b", lambda: Box("b", 1))
    c.get("a", lambda: pytest.fail("a is cached"))  # a is now the most recent
    c.get("c", lambda: Box("c", 1))
    assert [box.name for box in evicted] == ["b"]
    assert "a" in c and "c" in c and len(c) == 2


def test_total_cost_is_bounded():
    evicted = []
    c = cache(max_entries=10, max_cost=10, evicted=evicted)
    for name, cost in (("a", 4), ("b", 4), ("c", 4)):
        c.get(name, lambda name=name, cost=cost: Box(name, cost))
    assert [box.name for box in evicted] == ["a"]
    assert c.total_cost == 8


def test_one_value_over_the_budget_is_served_until_another_is_stored():
    evicted = []
    c = cache(max_cost=10, evicted=evicted)
    c.get("small", lambda: Box("small", 2))
    big = c.get("big", lambda: Box("big", 50))
    assert big.name == "big" and "big" in c and [b.name for b in evicted] == ["small"]
    c.get("next", lambda: Box("next", 1))
    assert "big" not in c and [b.name for b in evicted] == ["small", "big"]


def test_a_cost_that_grows_after_storing_evicts_others():
    evicted = []
    c = cache(max_cost=10, evicted=evicted)
    a = c.get("a", lambda: Box("a", 1))
    c.get("b", lambda: Box("b", 1))
    a.cost = 9.5  # e.g. its functions were traced by its first use
    c.update_cost("a")
    assert [box.name for box in evicted] == ["b"] and c.total_cost == 9.5


def test_a_failed_build_stores_nothing_and_the_next_call_builds_again():
    c = cache()

    def fail():
        raise ValueError("bad expression")

    with pytest.raises(ValueError, match="bad expression"):
        c.get("a", fail)
    assert "a" not in c and len(c) == 0
    assert c.get("a", lambda: Box("a", 1)).name == "a"


def test_concurrent_callers_of_one_key_share_a_single_build():
    c = cache()
    builds = []

    def build():
        builds.append(1)
        time.sleep(0.2)
        return Box("a", 1)

    results = []
    threads = [threading.Thread(target=lambda: results.append(c.get("a", build)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len({id(box) for box in results}) == 1


def test_release_memory_collects_reference_cycles():
    class Node:
        pass

    node = Node()
    node.self = node  # a cycle: only the cyclic collector frees it
    alive = weakref.ref(node)
    gc.disable()
    try:
        del node
        assert alive() is not None
        change = release_memory()
    finally:
        gc.enable()
    assert alive() is None
    assert change is None or isinstance(change, int)
    assert resident_bytes() is None or resident_bytes() > 0


def source_problem():
    """f = x1³ + 2·x1·x2 + x2² − x1 + x3², whose Hessian is [[6·x1, 2, 0], [2, 2, 0], [0, 0, 2]]."""
    theta = tf.Variable([3.0, 1.0, 5.0], dtype=tf.float64)

    def loss():
        x1, x2, x3 = theta[0], theta[1], theta[2]
        return x1**3 + 2 * x1 * x2 + x2**2 - x1 + x3**2

    return HessianVectorProduct(loss, [theta]), np.array([[18.0, 2, 0], [2, 2, 0], [0, 0, 2]])


def test_the_column_by_column_route_gives_the_same_hessian():
    hvp, expected = source_problem()
    looped = explicit_hessian(hvp, max_vectorized_ops=0)  # every graph counts as large
    vectorised = explicit_hessian(hvp)
    np.testing.assert_allclose(looped, expected, rtol=1e-12)
    np.testing.assert_allclose(vectorised, expected, rtol=1e-12)
    assert getattr(hvp, "_block_fn", None) is not None  # only the default route vectorised


def test_graph_size_counts_operations_and_embedded_constants():
    theta = tf.Variable(tf.zeros([4], tf.float64))
    weights = np.arange(1000.0)

    def loss():  # embeds an 8,000-byte constant in the traced graph
        return tf.reduce_sum(tf.constant(weights) * tf.reduce_sum(theta**2))

    size = HessianVectorProduct(loss, [theta]).graph_size()
    assert size.ops > 10
    assert size.constant_bytes >= weights.nbytes


def test_graph_size_counts_captured_tensors_once_not_as_constants():
    theta = tf.Variable(tf.zeros([4], tf.float64))
    weights = tf.constant(np.arange(1000.0))  # made eagerly: graphs capture it by reference

    def loss():
        return tf.reduce_sum(weights * tf.reduce_sum(theta**2))

    size = HessianVectorProduct(loss, [theta]).graph_size()
    assert size.captured_bytes >= 8000
    assert size.constant_bytes < 8000


def test_the_problem_cache_is_bounded_by_estimated_memory():
    from trpo_viz.explorer import CompiledProblem
    from trpo_viz.problem_cache import MIB, ProblemCache, estimated_bytes

    texts = ["x1**2 + 3*x2**2", "x1**4 + x2**2", "sin(x1) + x2**2 + x1*x2"]
    single = estimated_bytes(CompiledProblem(texts[0]))
    assert 16 * MIB <= single < 20 * MIB  # a tiny graph: the base cost and a little
    problems = ProblemCache(max_problems=16, max_bytes=2.5 * single)
    built = {text: problems.get((text, "float64", "reverse"), lambda t=text: CompiledProblem(t))
             for text in texts}
    assert len(problems) == 2 and (texts[0], "float64", "reverse") not in problems
    assert problems.estimated_bytes <= 2.5 * single
    again = problems.get((texts[2], "float64", "reverse"), lambda: pytest.fail("cached"))
    assert again is built[texts[2]]


def test_a_large_hvp_graph_is_estimated_large():
    from trpo_viz.explorer import CompiledProblem
    from trpo_viz.problem_cache import MIB, estimated_bytes

    chain = " + ".join(f"(x{i} - x{i + 1})**2 + 0.1*x{i}**4" for i in range(1, 30))
    assert estimated_bytes(CompiledProblem(chain)) > 40 * MIB


def test_release_memory_collects_frozen_garbage_and_refreezes_the_rest():
    class Node:
        pass

    node, survivor = Node(), Node()
    node.self, survivor.self = node, survivor
    alive = weakref.ref(node)
    gc.freeze()  # as the app does: both are now in the permanent generation
    try:
        del node
        gc.collect()
        assert alive() is not None  # a plain collection never sees frozen garbage
        release_memory()
        assert alive() is None
        assert gc.get_freeze_count() > 0  # the survivors are frozen again
    finally:
        gc.unfreeze()
    del survivor


def test_trim_memory_runs_and_leaves_python_objects_alone():
    from trpo_viz.heap import trim_memory

    kept = np.ones(1000)
    trim_memory()
    assert kept.sum() == 1000

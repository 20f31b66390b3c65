"""The CG explorer's inputs: presets, URL-bound settings and how values are shown.

Every input on the page is bound to a URL query parameter of the same name. Streamlit
drops a URL value its widget cannot take (the default applies); :func:`url_problems`
says so, naming the value used instead.
"""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from app_parts import plain
from trpo_viz import presets
from trpo_viz.explorer import DEFAULT_TOL, MAX_ITER
from trpo_viz.expr.grammar import MAX_DIMENSION
from trpo_viz.inputs import InputError, parse_vector

DIGITS = 10  # significant digits of the solution vectors
BIND = "query-params"
CHOICES = {"dtype": ["float64", "float32"], "hvp": ["reverse", "forward"]}
NUMBERS = {"damping": (0.0, 1e6), "tol": (0.0, 1.0), "iters": (0, MAX_ITER),
           "n": (1, MAX_DIMENSION)}
WHOLE = ("iters", "n")  # inputs that take whole numbers only


def set_damping(value: float) -> None:
    """Callback of the "use this λ" button."""
    st.session_state.damping = float(value)


def use_preset() -> None:
    """Callback of the preset picker: fill every input from the chosen preset."""
    key = st.session_state.preset
    if key is not None:
        for name, value in presets.preset_inputs(key, st.session_state.kappa).items():
            st.session_state[name] = value
        st.session_state.n = None  # the preset's f decides


def use_kappa() -> None:
    """Callback of the κ slider: rewrite the 2-D quadratic for the new condition number."""
    st.session_state.expr = presets.rotated_quadratic(st.session_state.kappa)


def preset_in_use() -> str | None:
    """The chosen preset while f is still its function (its lesson is about that f)."""
    key = st.session_state.preset
    if key is None or st.session_state.expr != presets.preset_expression(
            key, st.session_state.kappa):
        return None
    return key


def forget_replaced_preset() -> None:
    """Callback of the expression input: a new f is no longer the preset's."""
    if preset_in_use() is None:
        st.session_state.preset = None


URL_LABELS = {"n": "n", "damping": "damping λ", "iters": "max iterations", "tol": "tolerance",
              "dtype": "dtype", "hvp": "HVP mode"}


def url_values() -> dict[str, str]:
    """The raw query-string values of the bound settings, read before their widgets run."""
    return {name: st.query_params[name] for name in URL_LABELS
            if st.query_params.get(name) not in (None, "")}


def url_problems(raw: dict[str, str]) -> dict[str, tuple[str, object]]:
    """Messages for URL values that the widgets did not take as given, saying what is used.

    Streamlit drops a value it cannot use (the default applies) and truncates a
    fractional ``iters``; each message names the value actually in use, kept with it
    (the message goes once the user changes that input).
    """
    problems = {}
    for name, text in raw.items():
        used = st.session_state[name]
        if name in CHOICES:
            if text == used:
                continue
            expected = "one of " + ", ".join(CHOICES[name])
        else:
            low, high = NUMBERS[name]
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            whole = name not in WHOLE or (math.isfinite(value) and value == int(value))
            if math.isfinite(value) and low <= value <= high and whole and value == used:
                continue
            kind = "a whole number" if name in WHOLE else "a number"
            expected = f"{kind} from {low:g} to {high:g}"
        problems[name] = (f"URL parameter {name}={text[:30]!r} is not {expected}; "
                          f"{URL_LABELS[name]} = {shown(name, used)} is used instead.", used)
    return problems


def shown(name: str, value) -> str:
    """How the page names an input's value (None: its default)."""
    if value is None:
        if name == "n":
            return "the highest variable index in f"
        return ("n (the default)" if name == "iters" else
                "the dtype's default (" + ", ".join(f"{tol:g} in {dtype}" for dtype, tol in
                                                   DEFAULT_TOL.items()) + ")")
    return f"{value:g}" if isinstance(value, float) else str(value)


def fmt(value, digits: int = DIGITS, spec: str = "g") -> str:
    """A number for display: "—" when it is undefined (None, NaN, ±∞)."""
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:.{digits}{spec}}"


def sci(value, digits: int = 3) -> str:
    return fmt(value, digits, "e")


def parsed(text: str, name: str, n: int, slot) -> np.ndarray | None:
    """Parse a vector input; show a problem in ``slot`` (next to the input) and return None."""
    try:
        return parse_vector(text, name, n)
    except InputError as error:
        slot.error(plain(error), icon=":material/error:")
        return None

"""Plotly animation parts shared by the CG explorer's figures: frames over k, Play/Pause, a slider.

A figure animated over CG's iterations k = 0 … K has one frame per k, named str(k),
that moves only its animated traces (:func:`bare_frame`), and the controls of
:func:`animation_controls`. Everything runs in the browser: no server round trip per frame.
"""

from __future__ import annotations

import plotly.graph_objects as go

FRAME_MS = 700  # one frame per iterate while playing


def frame_names(iterations: int) -> list[str]:
    """One frame per iterate: "0" … str(iterations)."""
    return [str(k) for k in range(iterations + 1)]


def bare_frame(name: str, traces: list[int], data: list[tuple[type, dict]]) -> go.Frame:
    """A frame of positions only (the animated traces keep their names and styles).

    Built without plotly's validation: it checks every property of every frame (about
    1.5 ms a frame, 0.1 s for a 50-iteration solve on every rerun) and these frames hold
    nothing but numeric arrays for properties the figure's own, validated traces have.
    """
    return go.Frame(name=name, traces=traces, _validate=False,
                    data=[kind(**props, _validate=False) for kind, props in data])


def animation_controls(iterations: int, redraw: bool) -> dict:
    """Play/Pause buttons and a slider over k = 0 … iterations, starting at the last k."""
    names = frame_names(iterations)
    play = {
        "label": "▶ Play",
        "method": "animate",
        "args": [
            None,
            {
                "frame": {"duration": FRAME_MS, "redraw": redraw},
                "fromcurrent": False,
                "transition": {"duration": 0 if redraw else 250},
                "mode": "immediate",
            },
        ],
    }
    pause = {
        "label": "Pause",
        "method": "animate",
        "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate",
                          "transition": {"duration": 0}}],
    }
    steps = [
        {
            "label": name,
            "method": "animate",
            "args": [[name], {"frame": {"duration": 0, "redraw": redraw}, "mode": "immediate",
                              "transition": {"duration": 0}}],
        }
        for name in names
    ]
    return {
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "left",
                "showactive": False,
                "x": 0.0,
                "y": -0.08,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"r": 10, "t": 10},
                "buttons": [play, pause],
            }
        ],
        "sliders": [
            {
                "active": len(names) - 1,
                "x": 0.2,
                "len": 0.8,
                "y": -0.08,
                "yanchor": "top",
                "pad": {"t": 10},
                "currentvalue": {"prefix": "k = ", "visible": True},
                "steps": steps,
            }
        ],
    }

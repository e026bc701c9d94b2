"""Read an HTML report back as plotly.js gets it (imported by the HTML and browser tests)."""

from __future__ import annotations

import base64
import json

import numpy as np

_NEWPLOT = "Plotly.newPlot("


def figures(html: str) -> dict[str, tuple[list[dict], dict]]:
    """Each chart div id -> (traces, layout), as passed to ``Plotly.newPlot``."""
    dec = json.JSONDecoder()
    out = {}
    pos = html.find(_NEWPLOT)
    while pos >= 0:
        i = pos + len(_NEWPLOT)
        values = []
        for _ in range(3):
            while html[i] in " \n\t,":
                i += 1
            value, i = dec.raw_decode(html, i)
            values.append(value)
        out[values[0]] = (values[1], values[2])
        pos = html.find(_NEWPLOT, i)
    return out


def arr(v) -> np.ndarray:
    """A trace column: a plain list or plotly's typed array (``{dtype, bdata}``)."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(n) for n in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.asarray(v)

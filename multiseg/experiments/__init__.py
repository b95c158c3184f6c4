"""The paper's study: a grid of training runs (cells), their results, Table 1 and Figs 4-7.

``load_grid`` reads a grid file (:mod:`.grid`), ``run_grid`` runs it resumably and renders the outputs
(:mod:`.runner`); :mod:`.table` and :mod:`.figures` render results given as plain rows.
"""

from multiseg.experiments.grid import Cell, Grid, load_grid, scale_budget, select_models, setting_label
from multiseg.experiments.runner import StudyOutputs, render_outputs, run_grid

__all__ = [
    "Cell",
    "Grid",
    "StudyOutputs",
    "load_grid",
    "render_outputs",
    "run_grid",
    "scale_budget",
    "select_models",
    "setting_label",
]

"""Interactive widgets for the notebooks (ipywidgets + matplotlib)."""

from solution.widgets.cluster import ClusterPlayground
from solution.widgets.drawing import draw_cluster, figure_png

__all__ = ["ClusterPlayground", "draw_cluster", "figure_png"]

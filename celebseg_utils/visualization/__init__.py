"""Pictures: class colours, overlays, error maps (``error_map``), grids, ``save_figure`` and
the report plots.

May import the ground floor only (labels, errors, fileio); numpy and matplotlib, no TensorFlow.
"""

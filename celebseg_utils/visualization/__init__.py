"""Pictures: class colours, overlays, grids, ``save_figure`` and the report plots.

May import the ground floor only (labels, errors, fileio); numpy and matplotlib, no TensorFlow.
"""

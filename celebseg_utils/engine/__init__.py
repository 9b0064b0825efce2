"""The engine: configs, distribution strategy, callbacks, train, evaluate, predict, export.

May import the ground floor, ``visualization``, ``data``, ``face`` and ``models``.
"""

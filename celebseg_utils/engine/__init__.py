"""The engine: configs, distribution strategy, callbacks, train; the one loader (``inference``)
and evaluation loop (``scoring``); evaluate, its results files (``results``) and runs side by
side (``compare``); predict, export.

May import the ground floor, ``visualization``, ``data``, ``face`` and ``models``.
"""

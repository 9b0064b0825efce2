"""The notebook and report interface: runtime helpers, notebook figures, the ``MaskViewer``
(``widgets``) and its per-image scores, orders and filters (``viewer_scores``).

May import every lower room: ground floor, ``visualization``, ``data``, ``models``, ``engine``.
"""

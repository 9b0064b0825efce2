"""The notebook and report interface: runtime helpers, notebook figures, the ``MaskViewer``.

May import every lower room: ground floor, ``visualization``, ``data``, ``models``, ``engine``.
"""

"""The loss study: every loss arm x seed trained and tested alike (``runner``), its report
and statistics (``report``), and the gradient-share measurement behind it (``gradients``).

Sits at the top with the CLI: may import every room below.
"""

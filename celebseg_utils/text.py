"""Numbers as a reader says them: the one duration format of messages, ETAs and notebooks.

>>> format_duration(0.2069), format_duration(45.4), format_duration(754), format_duration(27600)
('0.2 s', '45 s', '12 min 34 s', '7 h 40 min')
"""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """``"0.2 s"`` (one decimal under 10 s), ``"45 s"``, ``"12 min 05 s"``, ``"7 h 40 min"``
    (hours and minutes from an hour on, minutes rounded); a negative time reads as 0.

    >>> [format_duration(s) for s in (-3, 9.94, 9.96, 59.4, 725, 3599.4, 3 * 3600 + 59.9)]
    ['0.0 s', '9.9 s', '10 s', '59 s', '12 min 05 s', '59 min 59 s', '3 h 01 min']
    """
    seconds = max(0.0, float(seconds))
    if seconds < 9.95:  # what rounds to 10.0 reads as "10 s"
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    minutes = int(round(whole / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min"

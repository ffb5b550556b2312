"""Min/max-per-bucket downsampling of a curve: fewer points, and no spike hidden.

Randomly sampling a long curve drops its spikes (wandb #5694). Here the step range is cut into equal
buckets and each bucket keeps the points holding its minimum, its maximum and its last value, in step
order: a line drawn through them touches every extreme of the full curve.
"""

from __future__ import annotations

from collections.abc import Sequence


def downsample(points: Sequence[tuple[int, float]], buckets: int) -> list[tuple[int, float]]:
    """At most ``3 * buckets`` of ``points`` (``(step, value)`` in step order) keeping each bucket's
    minimum, maximum and last point; a curve with no more points than that is returned whole."""
    if buckets < 1:
        raise ValueError("buckets must be >= 1")
    if len(points) <= 3 * buckets:
        return list(points)
    first, last = points[0][0], points[-1][0]
    width = (last - first + 1) / buckets
    out: list[tuple[int, float]] = []
    i, n = 0, len(points)
    while i < n:
        b = int((points[i][0] - first) / width)
        lo = hi = i
        j = i
        while j < n and int((points[j][0] - first) / width) == b:
            if points[j][1] < points[lo][1]:
                lo = j
            if points[j][1] > points[hi][1]:
                hi = j
            j += 1
        for k in sorted({lo, hi, j - 1}):
            out.append(points[k])
        i = j
    return out

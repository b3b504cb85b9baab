"""Where each track goes on the composed canvas: pure geometry, no media.

Kept apart from `compose.composer` so the arrangement can be tested (and reused, e.g. by a
preview) without decoding anything. Every rectangle has even coordinates and sizes
because the canvas is yuv420p, whose chroma planes are subsampled by two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STRIP_FRACTION = 0.2  # share of the canvas width the camera strip takes beside a screen
GAP = 4  # pixels between tiles, so neighbours with dark edges stay distinguishable


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Layout:
    """Rectangles for the screen shares (large area) and the cameras, in track order."""

    screens: tuple[Rect, ...]
    cameras: tuple[Rect, ...]


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def grid_shape(n: int, width: int = 16, height: int = 9) -> tuple[int, int]:
    """(cols, rows) for n tiles: as square as the canvas allows, never a row left empty.

    For 16:9: 1 -> 1x1, 2 -> 2x1, 3-4 -> 2x2, 5-6 -> 3x2, 7-9 -> 3x3, 10-12 -> 4x3.
    """
    if n <= 0:
        return (0, 0)
    aspect = width / height
    # ceil(sqrt(n)) columns on 16:9, more on wider areas and fewer on narrower ones, so the
    # cells stay close to the 4:3/16:9 shape of camera pictures and waste little
    cols = max(1, min(n, math.ceil(math.sqrt(n * aspect / (16 / 9)))))
    rows = math.ceil(n / cols)
    cols = math.ceil(n / rows)  # drop columns the rows do not need
    return cols, rows


def grid(n: int, area: Rect, gap: int = GAP) -> tuple[Rect, ...]:
    """n cells filling `area` row by row; a short last row is centred."""
    if n <= 0:
        return ()
    cols, rows = grid_shape(n, area.w, area.h)
    cell_w = _even((area.w - gap * (cols - 1)) / cols)
    cell_h = _even((area.h - gap * (rows - 1)) / rows)
    used_h = rows * cell_h + (rows - 1) * gap
    top = area.y + (area.h - used_h) // 2 // 2 * 2
    cells: list[Rect] = []
    for row in range(rows):
        in_row = min(cols, n - row * cols)
        used_w = in_row * cell_w + (in_row - 1) * gap
        left = area.x + (area.w - used_w) // 2 // 2 * 2
        y = top + row * (cell_h + gap)
        cells += [Rect(left + c * (cell_w + gap), y, cell_w, cell_h) for c in range(in_row)]
    return tuple(cells)


def strip(n: int, area: Rect, gap: int = GAP) -> tuple[Rect, ...]:
    """n cells stacked in a column (more columns if they would get tiny), centred."""
    if n <= 0:
        return ()
    cols = 1
    # add columns only once cells would get flatter than 32:9 (many cameras beside a screen)
    while (area.h - gap * (math.ceil(n / cols) - 1)) / math.ceil(n / cols) < (
        area.w / cols
    ) * 9 / 32 and cols < n:
        cols += 1
    rows = math.ceil(n / cols)
    cell_w = _even((area.w - gap * (cols - 1)) / cols)
    cell_h = _even(min((area.h - gap * (rows - 1)) / rows, cell_w * 3 / 4))
    used_h = rows * cell_h + (rows - 1) * gap
    top = area.y + (area.h - used_h) // 2 // 2 * 2
    cells = [
        Rect(area.x + c * (cell_w + gap), top + r * (cell_h + gap), cell_w, cell_h)
        for r in range(rows)
        for c in range(cols)
    ]
    return tuple(cells[:n])


def arrange(width: int, height: int, cameras: int, screens: int) -> Layout:
    """The whole canvas: a grid of cameras, or screen shares large with cameras beside."""
    canvas = Rect(0, 0, width, height)
    if screens == 0:
        return Layout((), grid(cameras, canvas))
    if cameras == 0:
        return Layout(grid(screens, canvas), ())
    strip_w = _even(width * STRIP_FRACTION)
    main = Rect(0, 0, width - strip_w - GAP, height)
    side = Rect(width - strip_w, 0, strip_w, height)
    return Layout(grid(screens, main), strip(cameras, side))


def fit(src_w: int, src_h: int, cell: Rect) -> Rect:
    """The largest even-sized rectangle with the source's aspect, centred in `cell`."""
    if src_w <= 0 or src_h <= 0:
        return cell
    scale = min(cell.w / src_w, cell.h / src_h)
    w = min(cell.w, _even(src_w * scale))
    h = min(cell.h, _even(src_h * scale))
    return Rect(cell.x + (cell.w - w) // 2 // 2 * 2, cell.y + (cell.h - h) // 2 // 2 * 2, w, h)

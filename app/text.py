"""The words on the page: what the app is and how to read each view, in plain sentences."""
from pathlib import Path

TITLE = "Feature-guided score diffusion explorer"

INTRO = (
    "A denoiser trained so that its own internal features **phi** (the channel averages of its "
    "layers) describe each class; sampling is steered by replacing those averages with a target "
    "(a class centroid, a blend of two, or the features of your own images). Based on Kadkhodaie, "
    "Mallat & Simoncelli, *Feature-guided score diffusion for sampling conditional densities* "
    "(arXiv 2410.11646)."
)

EMBEDDINGS = (
    "Each dot is a held-out test image placed by its features phi(x + sigma z) in one layer at one noise "
    "level; colours are classes, crosses the class centroids the sampler aims for. Tight, separate "
    "clusters mean the features tell the classes apart: compare the feature-guided model with the mixture "
    "baseline. Click a dot or pick a class to see images; upload one to see where it lands."
)

SAMPLE = (
    "The sampler starts from noise (sigma = 1) and steps towards the denoiser's estimate f(y_t), adding "
    "a little fresh noise each time, until sigma = 0.01: watch the noisy images y_t turn into samples. "
    "Condition on a class centroid, or on your own images (any format or size; converted to the "
    "model's images; the target is then their features' average). The model learned its classes from a "
    "few patches of a few photographs: images much like those give samples of their class, others "
    "give samples of whichever classes their features fall nearest. Smaller **beta** injects more "
    "noise (more steps); **h0** is the first step size; "
    "**guidance** g conditions on phi* + g (phi* - the mixture's centroid), carrying the target past "
    "itself (0: the target itself, as in the paper; on the shipped model the default 2 gave about 20 "
    "points more samples of their class than 0.25 did, and 3 gave fewer). **Epsilon scaling** lambda divides each step's residual f(y_t) - y_t by lambda while sigma "
    "is above 0.1: the network over-smooths what it cannot yet resolve, and without it samples of sparse "
    "classes (stars, letters) came out flat (1: off, as in the paper; the default 1.2 was measured). "
    "The same seed gives the same samples; the JSON download holds the command that reproduces the run."
)

INTERPOLATE = (
    "**Blend**: condition on (1 - alpha) centroid(A) + alpha centroid(B), with the same seed for every alpha "
    "so only the target changes (outside 0..1 it extrapolates); samples are drawn when the slider is "
    "released. **Switch**: class A while the noise is above sigma*, class B below: A sets the coarse "
    "structure, B the detail. The bars are an independent classifier's verdict on the samples shown."
)

TRAJECTORIES = (
    "One starting noise and one noise sequence (the same seed), sampled under two or more target classes. "
    "At large sigma the image is mostly noise and the paths coincide; they part as sigma falls. Left: the "
    "paths of phi(y_t) in the embedding map (circle: start, diamonds: ends). Right: the distance between "
    "the trajectories against sigma, with the bifurcation point (half of the final distance) starred. "
    "Drag the step slider to see the images at any step."
)

DISTANCES = (
    "Left: the squared distance between class centroids ||phibar_a - phibar_b||^2 in the chosen layer "
    "at one sigma. Right: the density distance between the two class densities (a symmetric "
    "KL divergence estimated from the denoiser, see docs). The paper's claim is that the two are "
    "strongly correlated: the scatter below shows one against the other with their correlation. "
    "Pick a pair to see samples of both classes."
)

DENOISE = (
    "Paper figure 2: a test image with noise of level sigma added, denoised by the feature-guided "
    "model conditioned on each class centroid, and by the mixture model that knows no class. Each "
    "output shows its PSNR (higher is closer to the clean image). Conditioning on the right class "
    "should beat the mixture at large sigma; a wrong class hurts. Pick a test image or upload one."
)

MODEL = (
    "The loaded checkpoint: its training configuration, the data it learnt and how training went. "
    "Everything the app shows can also be requested programmatically (see *Use via API* at the "
    "bottom of the page and docs/app.md)."
)

HOW_TO_READ = """
- **Embeddings**: where images sit in feature space, per layer, noise level and model.
- **Sample**: watch the sampler turn noise into samples of a class or of your images; download the results.
- **Interpolate**: blend two class centroids, or switch class at a noise level, and see what the samples become.
- **Trajectories**: one noise, several targets: when do the paths bifurcate?
- **Distances**: are classes with distant centroids also distant as densities?
- **Denoise**: does knowing the class help the denoiser, and when?
"""


def trained(ckpt) -> str:
    """How long a checkpoint was trained, counting the runs it was fine-tuned from."""
    if not ckpt.lineage:
        return f"{ckpt.step:,} steps"
    return (f"{ckpt.total_steps:,} steps ({ckpt.step:,} in its last run, fine-tuned from "
            f"{len(ckpt.lineage)} earlier {'run' if len(ckpt.lineage) == 1 else 'runs'})")


def grown_from(ckpt) -> str:
    """' (grown from ...)' when the network began narrower (`train --init --widths`), else ''."""
    first = ckpt.first_widths
    return f" (grown from {first} during training)" if first != tuple(ckpt.config.widths) else ""


def model_card(ckpt, mixture=None) -> str:
    """A short model card from a checkpoint's config and training facts."""
    d = ckpt.describe()
    tc = d["train_config"]
    m = tc["model"]
    info = d.get("info", {})
    lines = [
        f"**Feature-guided model** `{d['path']}`: trained {trained(ckpt)} on the **{tc['dataset']}** dataset "
        f"({len(d['classes'])} classes: {', '.join(d['classes'])}), images {m['channels']} x {m['size']} x "
        f"{m['size']} ({'grey' if m['channels'] == 1 else 'colour'}).",
        f"UNet with channel widths {tuple(m['widths'])}{grown_from(ckpt)}, {d['parameters']:,} parameters; phi has "
        f"{d['phi_dim']} numbers from blocks {', '.join(m['feature_blocks'])}; the projection acts in "
        f"{', '.join(m['matched_blocks'])}.",
        f"Training: batch {tc['batch']}, peak learning rate {tc['lr']:g}, noise sigma up to {tc['sigma_max']:g}, "
        f"seed {tc['seed']}" + (f", {info['train_images']:,} training images" if "train_images" in info else "")
        + (f", {ckpt.total_wall_seconds / 60:.0f} minutes on {info['machine']}" if "wall_seconds" in info else "")
        + (" (the settings of its last run)" if ckpt.lineage else "") + ".",
    ]
    if mixture is not None:
        md = mixture.describe()
        lines.append(f"**Mixture model** `{md['path']}`: the same network trained {trained(mixture)} on all "
                     "classes without projection; the unconditional baseline of the comparisons.")
    else:
        lines.append("No mixture model is loaded: views that compare against it say so "
                     "(start the app with `--mixture DIR`).")
    return "\n\n".join(lines)


def shipped_card(ckpt) -> str | None:
    """The MODEL_CARD.md written beside a checkpoint (its folder or the one above), if any."""
    here = Path(ckpt.path).parent
    for folder in (here, here.parent):
        card = folder / "MODEL_CARD.md"
        if card.is_file():
            return card.read_text()
    return None

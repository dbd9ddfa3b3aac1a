"""The words on the page: what the app is and how to read each view, in plain sentences."""
import json
import re
from pathlib import Path

import numpy as np

from .context import ROOT, shown_path

TITLE = "Feature-guided score diffusion explorer"

INTRO = (
    "A denoiser trained so that its own internal features **phi** (the channel averages of its "
    "layers) describe each class; sampling is steered by replacing those averages with a target "
    "(a class centroid, a blend of two, or the features of your own images). Based on Kadkhodaie, "
    "Mallat & Simoncelli, *Feature-guided score diffusion for sampling conditional densities* "
    "(arXiv 2410.11646)."
)

# Each view: one short line at the top, the rest in a collapsed "About this view".
EMBEDDINGS = ("Each dot is a held-out test image placed by its features; crosses are class centroids. "
              "Click a dot or pick a class to see images; upload one to see where it lands.")
EMBEDDINGS_MORE = (
    "A dot is placed by the image's features phi(x + sigma z) in one layer at one noise level; colours are "
    "classes. Tight, separate clusters mean the features tell the classes apart: compare the feature-guided "
    "model with the mixture baseline. A cross is a class centroid as the sampler uses it (the mean features "
    "of the class's training crops), placed in the map by its nearest test images: when the test images of a "
    "class spread, or differ from its training crops, the cross can sit between clusters or away from its own. "
    "An uploaded image is a star; one further from its nearest centroid than 95% of that class's own test "
    "images is ringed in red and called far from every class: the map still puts it beside its nearest "
    "neighbours, but it belongs to none of them. UMAP maps are fitted in the background; PCA is drawn meanwhile.")

SAMPLE = "Noise (sigma 1) becomes samples of the target (sigma 0.01), beside real images to compare."
SAMPLE_MORE = (
    "The sampler steps towards the denoiser's estimate f(y_t), adding a little fresh noise each time. "
    "Condition on a class centroid, or on your own images (any format or size; an image larger than the model's "
    "crops is cut into crops of its size at the image's own scale, the scale the model was trained at; the target "
    "is then the crops' features' average). The model learned its classes from patches of a few "
    "photographs: images much like those give samples of their class, others give samples of whichever classes "
    "their features fall nearest (the page says when your images are far from every class). Smaller **beta** "
    "injects more noise (more steps); **h0** is the first step size; **guidance** g conditions on "
    "phi* + g (phi* - the mixture's centroid), carrying the target past itself (0: the target itself, as in the "
    "paper). **Epsilon scaling** lambda divides each step's residual f(y_t) - y_t by lambda while sigma is above "
    "0.1 (1: off, as in the paper). The same seed gives the same samples; the JSON download holds the command "
    "that reproduces the run. When the run ends, the left panel shows the path of the first samples from noise "
    "to sample. sigma is the noise level the sampler estimates in y_t from the image itself, so at the start it "
    "can read a little above the 1 it starts from; a run that reaches its step limit before sigma_L stops there, and "
    "the status says so: those samples keep a little noise.")

CFG = ("**Classifier-free guidance (CFG)** of weight w samples with D_cond + w (D_cond - D_uncond): the "
       "conditional network's answer told the class, pushed further from its answer told nothing (the null class "
       "it also learned). w = 0 is the conditional network alone; a larger w gives more typical, less varied "
       "samples of the class, at two network evaluations a step instead of one.")
COMPARE = ("**Compare methods** (a model set with a conditional network; pick them under *Methods to compare*): "
           "the same class and noise (the seed) under each method, side by side: **feature guidance** (this model, its "
           "features projected onto the class centroid), the **conditional network** (a UNet told the class by a "
           f"learned embedding, trained on the same data) and CFG. {CFG} Up to 8 samples per method: the first of "
           "the seed's, so feature guidance shows the first samples that Sample draws.")

OVALS = ("**The ovals set** tests interpolation against a known answer. Its classes are ovals of one width/height "
         "ratio each, and its models never saw ratio 1 (round): trained on ratio 0.2, 0.5, 2 and 5 only. "
         "Interpolating ratio 0.5 to ratio 2 should pass through ratio 1. The plot beside the samples gives the "
         "measured aspect ratio of samples against alpha for each method (line: median, band: quartiles; "
         "`python -m engine report` measures it), the dashed line the real round ovals; the circles are the "
         "samples shown, at the slider's alpha.")

INTERPOLATE = ("Blend two class centroids with weight alpha (0: A, 1: B), or switch class at a noise level; "
               "the chart is an independent classifier's verdict.")
INTERPOLATE_MORE = (
    "**Blend**: condition on (1 - alpha) centroid(A) + alpha centroid(B), with the same seed for every alpha so "
    "only the target changes (outside 0..1 it extrapolates); the samples are redrawn while the slider moves. "
    "**Switch**: class A while the noise is above sigma*, class B below: A sets the coarse structure, B the "
    "detail. The default pair is the one whose samples the classifier reads best as their own class, measured "
    "on this model (engine/measures.py). The strip draws every alpha at once, between real crops of A and B. "
    "With a conditional network in the model set, **Interpolate: class embeddings** blends its learned class "
    "embeddings instead of the centroids, from the same noise.\n\n" + OVALS)

TRAJECTORIES = ("One noise, several targets: where do the paths part? Drag the step slider to see the images "
                "at any step.")
TRAJECTORIES_MORE = (
    "One starting noise and one noise sequence (the same seed), sampled under two or more target classes. At "
    "large sigma the image is mostly noise and the paths coincide; they part as sigma falls. The chart gives the "
    "RMS pixel distance between every two trajectories against sigma, with the bifurcation point (half of the "
    "final distance) starred; the map below draws the paths of phi(y_t) (circle: start, diamonds: ends). The "
    "default targets are the well-sampled classes whose trajectories end furthest apart on this model "
    "(engine/measures.py).")

DISTANCES = ("Are classes whose centroids lie far apart also far apart as densities? Click a point of the "
             "scatter to see samples of both classes.")
DISTANCES_MORE = (
    "Left: the squared distance between class centroids ||phibar_a - phibar_b||^2 in the chosen layer at one "
    "sigma. Right: the density distance between the two class densities (a symmetrised KL divergence estimated "
    "from the denoiser; docs/analysis.md), measured once per model and cached beside its atlas. Both heatmaps "
    "colour by the logarithm, so that every pair is readable; hover for the values. The paper expects the two "
    "to be correlated; the line under the scatter says how strongly they are on this model, layer and sigma.")

DENOISE = ("Noise of level sigma added to a test image (click one) and removed knowing each class, against "
           "the mixture model that knows none.")
DENOISE_MORE = (
    "Paper figure 2: each output is conditioned on one class centroid; the chart gives its PSNR minus the "
    "mixture model's, in dB (right of the zero line: knowing that class helped). Conditioning on the right class "
    "should beat the mixture at large sigma; a wrong class hurts. Differences of a tenth of a dB are typical at "
    "small sigma. Upload an image of your own to try it instead of a test image.")

MODEL = ("The model the page shows: what it learnt, how long it trained and how it measures. Everything the app "
         "shows can also be requested programmatically (*Use via API* at the bottom of the page, docs/app.md).")

HOW_TO_READ = """
- **Embeddings**: where images sit in feature space, per layer, noise level and model.
- **Sample**: watch the sampler turn noise into samples of a class or of your images; download the results;
  compare feature guidance with a conditional network and classifier-free guidance on the same noise.
- **Interpolate**: blend two class centroids (or a conditional network's class embeddings), or switch class at a
  noise level, and see what the samples become; on the ovals set, against the held-out class.
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
        f"**Feature-guided model** `{shown_path(d['path'])}`: trained {trained(ckpt)} on the **{tc['dataset']}** dataset "
        f"({len(d['classes'])} classes: {', '.join(d['classes'])}), images {m['channels']} x {m['size']} x "
        f"{m['size']} ({'grey' if m['channels'] == 1 else 'colour'}).",
        f"UNet with channel widths {tuple(m['widths'])}{grown_from(ckpt)}, {d['parameters']:,} parameters; phi has "
        f"{d['phi_dim']} numbers from blocks {', '.join(m['feature_blocks'])}; the projection acts in "
        f"{', '.join(m['matched_blocks'])}.",
        f"Training: batch {tc['batch']}, peak learning rate {tc['lr']:g}, noise sigma up to {tc['sigma_max']:g}, "
        f"seed {tc['seed']}" + (f", {info['train_images']:,} training images" if "train_images" in info else "")
        + (f", {ckpt.total_wall_seconds / 60:.0f} minutes on {machine(info['machine'])}" if "wall_seconds" in info else "")
        + (" (the settings of its last run)" if ckpt.lineage else "") + ".",
    ]
    if mixture is not None:
        md = mixture.describe()
        lines.append(f"**Mixture model** `{shown_path(md['path'])}`: the same network trained {trained(mixture)} on all "
                     "classes without projection; the unconditional baseline of the comparisons.")
    else:
        lines.append("No mixture model is loaded: views that compare against it say so "
                     "(start the app with `--mixture DIR`).")
    return "\n\n".join(lines)


def beside(ckpt, name: str) -> Path | None:
    """A file written beside a checkpoint (its folder or the one above), if any."""
    if not ckpt.path:
        return None
    here = Path(ckpt.path).parent
    for folder in (here, here.parent):
        if (folder / name).is_file():
            return folder / name
    return None


def no_machine_paths(text: str) -> str:
    """Absolute paths of this machine: relative to the project when inside it, else their last two parts."""
    text = re.sub(re.escape(str(ROOT)) + r"/?", "", text)
    # any other absolute path: only its last two parts (the folder and the file)
    return re.sub(r"(?<![\w.])/(?:[^\s\"'`,()/]+/)*([^\s\"'`,()/]+/[^\s\"'`,()/]+)", r"\1", text)


def machine(text: str) -> str:
    """A recorded machine description in plain words: "1 CPU threads" -> "1 CPU thread"."""
    return re.sub(r"\b1 CPU threads\b", "1 CPU thread", text)


def sampler_table(match: re.Match) -> str:
    """The card's `Sampler settings: {...}` line as a small table."""
    import ast
    try:
        settings = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return match.group(0)
    return ("Sampler settings (the defaults the figures were measured with):\n\n| setting | value |\n|---|---|\n"
            + "\n".join(f"| {k} | {v} |" for k, v in settings.items()))


def card_for_page(card: str) -> str:
    """The user-facing part of a model card: everything before its `## Status` section (the
    maintainers' notes on how the model came to be), with the settings laid out as a table."""
    card = card.split("\n## Status", 1)[0]
    card = re.sub(r"^Sampler settings: (\{.*\})\s*$", sampler_table, card, flags=re.M)
    return machine(card).strip()


def shipped_card(ckpt) -> str | None:
    """The user-facing part of the MODEL_CARD.md written beside a checkpoint, with paths relative
    to the project, if any."""
    path = beside(ckpt, "MODEL_CARD.md")
    return None if path is None else card_for_page(no_machine_paths(path.read_text()))


def evaluation(ckpt) -> dict | None:
    """evaluation.json beside the checkpoint, when it was measured on this very checkpoint."""
    path = beside(ckpt, "evaluation.json")
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    made = Path(str(data.get("checkpoint", ""))).resolve()
    return data if made == Path(ckpt.path).resolve() else None


def sample_sheet(ckpt) -> str | None:
    """The sample sheet `evaluate --sheet` drew of this very checkpoint (real held-out crops beside
    samples, per class), if it lies beside it."""
    data = evaluation(ckpt)
    path = beside(ckpt, Path(str(data["sheet"])).name) if data and data.get("sheet") else None
    return None if path is None else str(path)


def minutes(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def model_summary(ctx) -> str:
    """A short table: data, classes, parameters, training, evaluation figures."""
    fg, mix = ctx.fg, ctx.mixture
    tc, m = fg.train_config, fg.config
    info = fg.info
    rows = [("model", f"`{ctx.label}`"),
            ("data", f"{tc.dataset}" + (f", {info['train_images']:,} training crops" if "train_images" in info else "")
             + f", {m.channels} x {m.size} x {m.size} {'grey' if m.channels == 1 else 'colour'}"),
            ("classes", f"{len(fg.classes)}: {', '.join(fg.classes)}"),
            ("network", f"UNet, widths {tuple(m.widths)}, {fg.describe()['parameters']:,} parameters"),
            ("training", f"{fg.total_steps:,} steps" + (f", {minutes(fg.total_wall_seconds)}" if fg.total_wall_seconds else "")
             + (f" on {machine(info['machine'])}" if "machine" in info else "")
             + (f" ({len(fg.lineage) + 1} runs)" if fg.lineage else "")),
            ("mixture baseline", f"`{shown_path(mix.path)}`, {mix.total_steps:,} steps" if mix is not None else "none loaded")]
    cond = getattr(ctx, "conditional", None)
    if cond is not None:
        rows.append(("conditional baseline", f"`{shown_path(cond.path)}`, {cond.total_steps:,} steps (a UNet told the "
                     "class; Sample compares it, with CFG, and Interpolate blends its class embeddings)"))
    ev = evaluation(fg)
    if ev is not None:
        rows.append(("samples read as their class", f"mean {ev['mean_class_accuracy']:.0%}, lowest "
                     f"{ev['min_class_accuracy']:.0%} ({ev['samples_per_class']} per class; `python -m engine evaluate`)"))
        if "classifier_test_accuracy" in ev:
            rows.append(("classifier on real crops", f"{ev['classifier_test_accuracy']:.1%}"))
    meas = ctx.measures.get()
    if meas is not None:
        acc = np.asarray(meas.accuracy, float)
        if ev is None:
            rows.append(("samples read as their class", f"mean {acc.mean():.0%}, lowest {acc.min():.0%} "
                         f"({meas.samples} per class, measured for the app)"))
        rows.append(("defaults chosen from measurements", f"interpolation {meas.pair[0]} to {meas.pair[1]}; "
                     f"trajectories {', '.join(meas.targets)}"))
    else:
        rows.append(("measurements", ctx.measures.status()))
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def lineage_segments(ckpt) -> list[tuple[str, list]]:
    """The loss history of every run in a checkpoint's lineage, oldest first, each shifted by the
    steps before it; an earlier run whose file is gone gives an empty history (a gap)."""
    from engine.checkpoint import safe_load
    runs = list(reversed(ckpt.lineage))
    out, offset = [], 0
    for r in runs:
        history = []
        path = Path(str(r.get("path", "")))
        if not path.is_absolute():
            path = ROOT / path
        try:
            state = safe_load(path)
            history = [(h[0] + offset, h[1]) for h in state.get("info", {}).get("history", [])]
        except Exception:
            history = []
        out.append((shown_path(r.get("path", "earlier run")), history))
        offset += int(r.get("step", 0))
    out.append((shown_path(ckpt.path) if runs else "training", [(h[0] + offset, h[1]) for h in ckpt.info.get("history", [])]))
    return out


def config_json(ctx) -> dict:
    """The checkpoints' full configuration, with paths relative to the project."""
    out = {"feature_guided": ctx.fg.describe()}
    if ctx.mixture is not None:
        out["mixture"] = ctx.mixture.describe()
    if getattr(ctx, "conditional", None) is not None:
        out["conditional"] = ctx.conditional.describe()
    return json.loads(no_machine_paths(json.dumps(out, default=str)))

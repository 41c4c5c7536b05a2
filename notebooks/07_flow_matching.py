# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Flow matching: straight paths from noise to images
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/notebooks/07_flow_matching.ipynb)
#
# A DDPM turns noise into an image in many small, curved steps. Flow matching (Lipman et al.
# 2023; Liu et al. 2023, who call it rectified flow) asks the network for something simpler:
# the direction of a *straight line* from a noise sample to an image. Its training loop is a
# few lines, and its sampler needs 10-20 steps, which matters on a laptop CPU. Today's image
# generators are trained this way, and it is what this chapter adds to the course.
#
# **You will**
# - see, on a 2-D toy you can look at whole, which paths each model is trained on, which paths
#   its sampler takes, and why the flow needs fewer sampling steps;
# - write down the flow-matching objective: the linear path, its velocity, the regression loss;
# - sample by solving an ODE with Euler and Heun steps, with classifier-free guidance;
# - connect it to chapter 04: DDIM is also an ODE solver, and flow matching is a diffusion
#   model with another noise schedule and another parametrisation (v-prediction);
# - compare the DDPM and flow-matching objectives on the same network, data and CPU minutes, and
#   draw any of the ten classes with the course's ten-class generator.
#
# **Prerequisites:** chapter 04 (the DDPM, DDIM, guidance) and chapter 06 (latent diffusion:
# the first stage and its latents).
#
# **Time to work through:** about 60 minutes. **Run time:** about 9 min on a laptop CPU (the `cpu` profile), seconds in the `smoke` profile; the ten-class generator is shipped pretrained.
#
# Exercise: `exercises/ex07_flow_matching.ipynb` (the path, the velocity target and one guided
# Euler step, then your own sampler).

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%
import torch
from IPython.display import Markdown, display

from cvae_lib.profiles import get_profile
from cvae_lib.runtime import pick_device, seed_everything
from cvae_lib.train import run_dir

P = get_profile()          # CVAE_PROFILE: smoke | cpu | gpu (read once, here)
device = pick_device()
seed_everything(0)
RUNS = run_dir(P.name)     # checkpoints of this profile
print(f"profile {P.name!r} on {device}; checkpoints in {RUNS}")

# %% [markdown]
# ## 1. A toy you can see whole
#
# Images live in 3,072 dimensions, where nobody can watch a sampler move. So we start in two:
# the "data" are points from eight small Gaussian blobs on a ring, and the noise is the standard
# normal distribution, as for images. Each point travels through the course's processes as a
# tensor of shape (B, 2, 1, 1), a two-channel image of one pixel, so the very same `Diffusion`
# of chapter 04 and the new `FlowMatching` train a small network on it with the course's `fit`.

# %%
from cvae_lib.flow import FlowConfig, FlowMatching
from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.toy import ring_of_gaussians

ring = ring_of_gaussians(8192)
flow_toy = FlowMatching(FlowConfig(data="latent"))                      # unconditional, points as they are
ddpm_toy = Diffusion(DiffusionConfig(data="latent"))                    # chapter 04's linear schedule, T = 1000
print(f"{len(ring)} points of shape {tuple(ring.x.shape[1:])}, spread {float(ring.x.std()):.2f}")

# %% [markdown]
# **Predict first.** Both processes join a data point $x_0$ and a noise sample $\epsilon$ by a
# path that the network is trained on: chapter 04's forward process
# $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon$, and flow matching's
# $x_t = (1 - t)\, x_0 + t\, \epsilon$ (section 2). Sketch what shape each path has between its two
# ends. Then run the next cell, which draws both for the same sixteen pairs.

# %%
from cvae_lib.plotting import save_figure, toy_paths
from cvae_lib.toy import training_paths

eps_pairs = torch.randn(16, 2, 1, 1, generator=torch.Generator().manual_seed(3))
pairs = {"DDPM: the forward process": training_paths(ddpm_toy, ring.x[:16], eps_pairs),
         "flow matching: the straight path": training_paths(flow_toy, ring.x[:16], eps_pairs)}
save_figure(toy_paths(pairs, ring.x[:2000], n_paths=16), "07_toy_training_paths")

# %% [markdown]
# Each line joins one noise sample (hollow circle) to one data point (filled). The flow's paths
# are straight segments; the DDPM's are arcs that swing away from the straight line. Its two
# weights, $\sqrt{\bar\alpha_t}$ and $\sqrt{1 - \bar\alpha_t}$, have squares that add up to one, like
# the cosine and sine of an angle, so the point turns through a quarter circle (in the plane of
# $x_0$ and $\epsilon$); the flow's weights $1 - t$ and $t$ add up to one themselves, so its point
# slides along the chord.
#
# Now we train two copies of the same small network (an MLP that sees the point and the time),
# one with chapter 04's noise-prediction loss and one with the flow-matching loss of section 2.
# Same data, same optimiser, same number of steps.

# %%
from cvae_lib.models.toy import ToyNet
from cvae_lib.recipes import toy_training
from cvae_lib.train import fit

toy_cfg = toy_training(P)          # the course's recipe for the toy, in this profile
toy_nets = {}
for name, process in {"DDPM (predicts the noise)": ddpm_toy, "flow matching (predicts the velocity)": flow_toy}.items():
    torch.manual_seed(0)
    toy_nets[name] = (process, ToyNet())
    h = fit(toy_nets[name][1], process.train_loss, ring, toy_cfg)
    print(f"{name}: {h.steps} steps in {h.seconds:.0f} s, last training loss {h['train_loss'][-1]:.3f}")

# %% [markdown]
# **Predict first.** The trained networks turn noise into points: the DDPM sampled with DDIM at
# $\eta = 0$ (chapter 04: deterministic), the flow with Euler steps, 50 small steps each. Will
# the paths that the *samplers* take be as straight as the flow's training paths?

# %%
from cvae_lib.toy import sample_paths, straightness

x1 = torch.randn(400, 2, 1, 1, generator=torch.Generator().manual_seed(1))   # shared noise
paths = {name: sample_paths(process, net, x1, steps=50) for name, (process, net) in toy_nets.items()}
save_figure(toy_paths(paths, ring.x[:2000], n_paths=24), "07_toy_paths")
for name, path in paths.items():
    print(f"{name}: straightness {straightness(path):.2f} (distance from start to end / length travelled; 1 = straight)")

# %% [markdown]
# Not straight, for either. A network never sees one pair: many pairs of data point and noise
# pass through the same $x_t$, and the network learns their *average* direction. Early on, with
# every blob still possible, that average points towards the middle of the data; only near the
# end does a path settle on one blob and turn. The flow's sampling paths therefore bend too,
# late and sharply; read the printed straightness of each. (Straightening them takes a second
# round of training on the model's own pairs of noise and sample, the "reflow" of Liu et al.
# 2023, which this chapter leaves out.)
#
# So where does flow matching gain? Sampling with *few* steps, next.

# %%
from cvae_lib.plotting import markdown_table, toy_samples
from cvae_lib.toy import ring_distance

few = (1, 2, 4, 8, 32)
samples = {name: {k: sample_paths(process, net, x1, steps=k)[-1] for k in few}
           for name, (process, net) in toy_nets.items()}
save_figure(toy_samples(samples, ring.x[:2000]), "07_toy_few_steps")
rows = [{"sampler": name, **{f"{k} steps": f"{ring_distance(s[k]):.2f}" for k in few}} for name, s in samples.items()]
display(Markdown("Mean distance of a sample to the centre of its nearest blob (real points: "
                 f"{ring_distance(ring.x):.2f}):\n\n" + markdown_table(rows)))

# %% [markdown]
# Read the columns from left to right. With one step the flow puts every sample at the middle of
# the data: one Euler step from pure noise lands on the average of everything that noise could
# become, a sensible if useless answer. With two to four steps the flow's samples are on the
# ring, while the DDPM's are still far off (some outside the plotted area; the table says how
# far). By about eight steps both look alike. The smaller the distance in the table, the closer
# to the data; the real points set the floor.
#
# The DDPM's trouble at few steps is its parametrisation, not only its path. A DDIM step first
# estimates the clean point, $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\hat\epsilon) /
# \sqrt{\bar\alpha_t}$, and at the first, noisiest step $\sqrt{\bar\alpha_t}$ is tiny, so any
# error in $\hat\epsilon$ is multiplied by a large number. The flow's network predicts a
# velocity whose size stays moderate at every $t$. Section 4 makes the link exact.

# %% [markdown]
# ## 2. The objective
#
# Pick a data point $x_0$ and a noise sample $\epsilon \sim \mathcal N(0, I)$, and join them by
# the straight line
#
# $$x_t = (1 - t)\, x_0 + t\, \epsilon, \qquad t \in [0, 1],$$
#
# so $t = 0$ is the data and $t = 1$ is pure noise (the same direction of time as the DDPM). Along
# this line the point moves with the constant **velocity**
#
# $$u_t = \frac{d x_t}{dt} = \epsilon - x_0 .$$
#
# A network $v_\theta(x_t, t, y)$ is trained to predict that velocity from the point alone:
#
# $$L_{\text{FM}}(\theta) = \mathbb E_{t \sim U(0, 1),\, x_0,\, \epsilon}
#   \big\| v_\theta(x_t, t, y) - (\epsilon - x_0) \big\|^2 .$$
#
# A point $x_t$ lies on many such lines (many pairs of image and noise pass through it), so the
# best the network can do is their *average* direction. Lipman et al. (2023) show that this
# average field moves the whole noise distribution onto the data distribution: solving
#
# $$\frac{dx}{dt} = v_\theta(x, t, y) \quad \text{from } t = 1 \text{ (noise) down to } t = 0$$
#
# draws samples. The averaged paths are no longer straight, as section 1 showed, but the
# velocity stays a well-behaved target at every $t$. Compare chapter 04's loss: the same recipe
# (noise the data, ask the network to undo it, mean squared error), with the target
# $\epsilon - x_0$ instead of $\epsilon$ and a continuous $t$ instead of 1,000 steps.
#
# The library's `FlowMatching` holds this loss (`train_loss`, which `fit` calls as it calls
# `Diffusion.train_loss`) and the samplers; exercise 07 builds the path, the target and a guided
# Euler step yourself. The network sees $t \cdot 1000$, so chapter 04's U-Net and its time
# embedding serve both objectives unchanged.

# %%
x0 = ring.x[:4096]
print(f"flow-matching loss of the trained toy network: {float(flow_toy.loss(toy_nets['flow matching (predicts the velocity)'][1], x0)):.3f}; "
      f"of a network that always predicts 0: {float(flow_toy.loss(lambda x, t, y: torch.zeros_like(x), x0)):.3f}")

# %% [markdown]
# The loss cannot reach 0 even for a perfect network, because the target $\epsilon - x_0$ is
# random given $x_t$: the network predicts its average, and the rest is variance that no network
# can remove. A network that always predicts 0 pays $E\|\epsilon - x_0\|^2$, the data's spread
# plus the noise's, per dimension.
#
# ## 3. Sampling is solving an ODE
#
# **Euler's method** follows the predicted velocity in steps of size $h$ from $t$ to $t - h$:
#
# $$x_{t-h} = x_t - h\, v_\theta(x_t, t, y).$$
#
# With $N$ equal steps it costs $N$ network evaluations (NFE). **Heun's method** takes the Euler
# step as a trial, evaluates the velocity there too, and steps with the average of the two
# slopes, $x_{t-h} = x_t - \tfrac h2 \big(v_\theta(x_t, t) + v_\theta(\tilde x_{t-h}, t-h)\big)$:
# two evaluations per step (one on the last step, which ends at $t = 0$), but an error that
# shrinks with $h^2$ instead of $h$.
#
# **Classifier-free guidance** works on the velocity exactly as chapter 04 did on the noise: the
# network is trained with the label dropped to a "null" class one time in ten, and sampled with
#
# $$v = v_\theta(x_t, t, \varnothing) + w\,\big(v_\theta(x_t, t, y) - v_\theta(x_t, t, \varnothing)\big),$$
#
# one call on a doubled batch per evaluation. (A velocity is a linear function of the noise
# prediction at fixed $x_t$ and $t$, see section 4, so guiding one is guiding the other.)
#
# **Predict first.** At the same number of network evaluations, should Heun beat Euler on the
# toy? Run the next cell.

# %%
process, net = toy_nets["flow matching (predicts the velocity)"]
for nfe in (3, 5, 9, 19):
    euler = process.sample(net, 2000, steps=nfe, shape=(2, 1, 1), generator=torch.Generator().manual_seed(2), progress=False)
    heun = process.sample(net, 2000, steps=(nfe + 1) // 2, solver="heun", shape=(2, 1, 1),
                          generator=torch.Generator().manual_seed(2), progress=False)
    print(f"{nfe} evaluations: Euler {ring_distance(euler):.3f}, Heun {ring_distance(heun):.3f} "
          f"(mean distance to the nearest blob centre)")

# %% [markdown]
# Compare the two columns row by row. Heun's second evaluation per step halves the number of
# steps it can take, which hurts most at very few evaluations, where the late turn of section 1
# is taken in one or two large steps; as the number of evaluations grows, its smaller error per
# step pays off. On images the same trade-off decides which solver a generator ships with.
#
# ## 4. The bridge to chapter 04: one family of models
#
# Chapter 04's forward process was $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\,
# \epsilon$; the flow's path is $x_t = a_t x_0 + s_t \epsilon$ with $a_t = 1 - t$ and $s_t = t$.
# Both are **Gaussian paths**: at each time, $x_t$ given $x_0$ is a scaled data point plus scaled
# noise. They differ in two ways only.
#
# - **The schedule**, i.e. how the signal-to-noise ratio $\text{SNR} = a_t^2 / s_t^2$ falls with
#   time: $\bar\alpha_t / (1 - \bar\alpha_t)$ for the DDPM, $(1 - t)^2 / t^2$ for the flow. (The
#   flow's path is not variance-preserving: $a_t^2 + s_t^2 < 1$ in the middle.)
# - **The parametrisation**, i.e. what the network predicts. With $x_t$ known, any one of
#   $\hat x_0$, $\hat\epsilon$ and $\hat v$ gives the other two:
#   $\hat x_0 = x_t - t\,\hat v$ and $\hat\epsilon = x_t + (1 - t)\,\hat v$. Predicting
#   $\epsilon - x_0$ is close to the *v-prediction* of Salimans & Ho (2022).
#
# And the samplers: DDIM with $\eta = 0$ (chapter 04) is also a deterministic solver of an ODE,
# the probability-flow ODE of the DDPM, taking each step along the straight line that its current
# $\hat x_0$ and $\hat \epsilon$ define. With the flow's schedule, a DDIM step *is* an Euler step.
# So "DDPM or flow matching" is a choice of schedule, of target and of solver inside one family,
# not two different kinds of model. The figure shows the two schedules on one time axis.

# %%
from cvae_lib.plotting import schedule_curves

t = torch.linspace(0.5, 999.5, 1000) / 1000
alpha_bars = {"DDPM, linear schedule (chapter 04)": ddpm_toy.alpha_bar,
              "flow path, a = 1 - t, s = t  (as SNR / (1 + SNR))": (1 - t) ** 2 / ((1 - t) ** 2 + t ** 2)}
save_figure(schedule_curves(alpha_bars), "07_schedules")

# %% [markdown]
# Both curves start at pure signal and end at pure noise, but the flow spends more of its time at
# intermediate noise levels, where the image's coarse structure is decided, and the DDPM's linear
# schedule reaches almost pure noise well before the end (its log-SNR curve drops below the flow's
# early). To plot the flow on the DDPM's axes we show its SNR as the $\bar\alpha$ of a
# variance-preserving path with the same SNR: the same noise level, rescaled.

# %% [markdown]
# ## 5. The same network, the same data, the same CPU minutes
#
# Does the toy's advantage survive on images? We repeat chapter 06's experiment with one line
# changed. Chapter 06 trained the course's class-conditional U-Net as a DDPM on the latent grids
# of the shipped first stage; here the same U-Net, on the same latents, with the same optimiser,
# batch size and number of steps, learns with the flow-matching loss instead. Equal steps of the
# same network cost equal time, so the two runs get the same CPU minutes.
#
# The DDPM arm is chapter 06's own run: it loads if you ran chapter 06 in this profile, and
# trains now otherwise (the next cell says which).

# %%
from cvae_lib.data import CLASSES, load_cifar10
from cvae_lib.latent import LatentDiffusion, encode_set
from cvae_lib.models.classifier import Classifier, ClassifierConfig
from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
from cvae_lib.train import infer
from cvae_lib.weights import load_weights, shipped

from cvae_lib.recipes import recipe

arms = {"DDPM": recipe("ldm_prior", P), "flow matching": recipe("lfm_prior", P)}   # chapter 06's run, and ours
names = list(P.latent.classes or CLASSES)
C = [CLASSES.index(c) for c in names]
train, val = arms["flow matching"].data.select(load_cifar10("train"))            # the same images for both
test = load_cifar10("test").subset(names, n_per_class=P.test_per_class, seed=0)
first = load_weights(shipped("ldm_first_stage"), FirstStage, FirstStageConfig).to(device).requires_grad_(False)
latents, val_latents = encode_set(first, train, mirror=True), encode_set(first, val)
judge = load_weights(shipped("classifier"), Classifier, ClassifierConfig).to(device)
feats_test = infer(judge.features, test.images(), device=device)                 # (N, D)
print(f"classes {names}: {len(latents)} latent grids of shape {tuple(latents.x.shape[1:])}; {len(test)} test images")

# %%
from cvae_lib.train import EMA, load_or_train

assert arms["DDPM"].train == arms["flow matching"].train and arms["DDPM"].model == arms["flow matching"].model
priors, histories = {}, {}
for name, run in arms.items():
    print(f"{name}: {'loading' if (RUNS / run.checkpoint).exists() else 'training'} {RUNS / run.checkpoint}")
    net, process = run.build(), run.build_process().to(device)                 # a U-Net; Diffusion or FlowMatching
    ema = EMA(net, decay=run.ema_decay)
    histories[name] = load_or_train(net, process.train_loss, latents, run.train, RUNS / run.checkpoint,
                                    val=val_latents, ema=ema, device=device)
    priors[name] = LatentDiffusion(first, ema.model.to(device).eval(), process)
for name, h in histories.items():
    print(f"{name}: {h.steps} steps of {arms[name].train.batch_size} in {h.seconds / 60:.1f} min; "
          f"validation loss {h['val_loss'][0]:.3f} -> {h['val_loss'][-1]:.3f}")

# %% [markdown]
# The two losses are not comparable numbers (one is an error in predicting noise, the other in
# predicting a velocity whose size includes the data's), but each one's fall from its first to
# its last epoch shows both runs learned. The time column is the one to compare: the same steps
# took about the same minutes.
#
# **Predict first.** We now draw the same labels from both priors with the judge of chapter 05
# watching, at 10, 20 and 50 network evaluations (DDIM with $\eta = 0$ for the DDPM, Euler for
# the flow; guidance $w = 2$ for both). Which objective wins at 10 evaluations, and does the gap
# close at 50?

# %%
from cvae_lib.metrics import judge_scores
from cvae_lib.plotting import metric_curves, save_table

y_eval = torch.tensor(C).repeat_interleave(P.n_eval // len(C))
results = []
for name, ldm in priors.items():
    for nfe in (10, 20, 50):
        x = ldm.sample(y_eval, steps=nfe, eta=0.0, guidance=2.0, generator=torch.Generator(device).manual_seed(0),
                       progress=False)
        s = judge_scores(judge, x, y_eval, feats_test)
        results.append({"objective": name, "NFE": nfe, "class accuracy": s["acc"], "judge FD": s["fd"]})
display(Markdown(markdown_table([{**r, "class accuracy": f"{r['class accuracy']:.0%}", "judge FD": f"{r['judge FD']:.1f}"}
                                 for r in results])))
save_table(results, "07_equal_minutes", note=f"{len(y_eval)} samples per row, guidance 2, chapter 05's judge")
save_figure(metric_curves(results, "NFE", ["class accuracy", "judge FD"], by="objective"), "07_equal_minutes")

# %% [markdown]
# Class accuracy (higher is better) and the judge's Fréchet distance to the test images (lower
# is better; chapter 05 defines both) for each objective and number of evaluations. Read the left end of each
# panel first: that is where the objectives differ most, for the reason section 1 found: a
# DDPM's first large steps amplify the errors of its noise prediction. Read the right end next: with 50 evaluations both samplers follow their paths
# closely, so what remains is how well each network learned in the same minutes.
#
# What this experiment does not show: it is one seed and one short run per objective, scored on
# a few hundred samples, so differences of a few points of accuracy or FD are within the noise
# (chapter 05 shows how much FD moves with the sample size). A longer comparison on all ten
# classes, the one that chose the objective of the generator in the next section, is in the
# course's benchmarks (`benchmarks/README.md`).
#
# Samples of both at the fewest evaluations, side by side:

# %%
from cvae_lib.plotting import show_rows

y_grid = torch.tensor(C).repeat_interleave(P.latent.n_grid)
grids = {name: ldm.sample(y_grid, steps=10, eta=0.0, guidance=2.0, generator=torch.Generator(device).manual_seed(1),
                          progress=False) for name, ldm in priors.items()}
save_figure(show_rows(grids, title="10 network evaluations, guidance 2, the same labels and seed"), "07_grids")

# %% [markdown]
# The rows hold the same classes in the same order, drawn from the same starting noise. Look
# for the class in each image, and for images that are only texture: at 10 evaluations those
# are the sampler's error, not the network's.
#
# ## 6. A generator for every class
#
# The course ships a latent model trained on all ten classes of CIFAR-10, on the shipped first
# stage, with the objective that won the longer equal-minutes comparison. Its file records how
# it was trained and what chapter 05's judge measured on its samples:

# %%
from cvae_lib.weights import read_metadata

ten = read_metadata(shipped("ldm_ten_class"))["metrics"]
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.recipes import shipped_recipe

process_ten = shipped_recipe("ldm_ten_class", objective=ten["objective"]).build_process().to(device)
generator = LatentDiffusion(first, load_weights(shipped("ldm_ten_class"), UNet, UNetConfig).to(device).eval(),
                            process_ten)
j = ten["judge"][str(ten["guidance"])]
display(Markdown(f"Objective **{ten['objective']}**, {ten['steps']} training steps ({ten['train_minutes']:.0f} CPU "
                 f"minutes); on {ten['n_eval']} samples ({ten['sampler']}, guidance {ten['guidance']:g}, chosen on "
                 f"training images): judge class accuracy **{j['acc']:.0%}** (real test images: "
                 f"{ten['real_judge_accuracy']:.0%}), judge FD {j['fd']:.1f}, FID {ten['fid']:.1f} "
                 f"(real training against test images at the same size: {ten['fid_real']:.1f})."))

# %% [markdown]
# The judge recognises most of these samples as their class; chapter 05's cautions apply (the
# judge rewards what it has learned to look for, and FID at a few thousand samples is biased
# upwards, which is why the real-against-real number is printed beside it). Its per-class
# accuracies are in the file too, and they differ a lot between classes, as the next figure
# makes visible. Pick a class, a seed, the guidance weight and the number of steps:

# %%
from cvae_lib.widgets import class_draw


def draw(y, seed=0, guidance=ten["guidance"], steps=20):
    return generator.sample(y, steps=steps, guidance=guidance, generator=torch.Generator(device).manual_seed(seed),
                            progress=False)


class_draw(draw, CLASSES, n=8, guidance=ten["guidance"], steps=20)

# %% [markdown]
# Eight images of one class take a second or two on a laptop CPU at 20 steps. Try guidance 0 (the
# unconditional model: the class is ignored), 1 (the plain conditional model) and the shipped
# weight, and watch the images become more typical of their class and less varied as $w$ grows.
# Try 1, 2 and 5 steps: the images get blurrier, but with far fewer steps than chapter 04's DDPM
# needed before it drew anything. Ships and airplanes, with their typical water and sky, come
# out the most recognisable; birds, cats and dogs, whose shapes and poses vary most, the least.
# The per-class accuracies below put numbers on it.

# %%
per_class = ten["judge_per_class"][str(ten["guidance"])]
display(Markdown(markdown_table([{"class": c, "judge accuracy": f"{per_class[c]:.0%}"} for c in CLASSES])))

# %% [markdown]
# ## 7. What to take away
#
# - Flow matching regresses the velocity $\epsilon - x_0$ of a straight path from data to noise;
#   sampling solves $dx/dt = v_\theta$ backwards in time with a few Euler or Heun steps.
# - It is a diffusion model with another schedule and parametrisation; DDIM and Euler are both
#   ODE solvers, and guidance works the same way on either prediction.
# - The learned sampling paths are not straight (the network averages over every pair through a
#   point), but the velocity is well-behaved at every noise level: on the same network, data and
#   minutes, flow matching needs fewer network evaluations for the same quality, which is what
#   matters on a CPU.
#
# **References.** Lipman, Chen, Ben-Hamu, Nickel & Le, *Flow Matching for Generative Modeling*
# (ICLR 2023). Liu, Gong & Liu, *Flow Straight and Fast: Learning to Generate and Transfer Data
# with Rectified Flow* (ICLR 2023). Salimans & Ho, *Progressive Distillation for Fast Sampling of
# Diffusion Models* (ICLR 2022, v-prediction). Song, Meng & Ermon, *Denoising Diffusion Implicit
# Models* (ICLR 2021). Esser et al., *Scaling Rectified Flow Transformers for High-Resolution
# Image Synthesis* (2024), the flow-matching recipe behind Stable Diffusion 3.

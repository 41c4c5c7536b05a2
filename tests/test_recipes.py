"""The registry of the course's runs (cvae_lib.recipes): every recipe written once, the shipped
files trained as their recipes say, the data counted as it is drawn, and no second copy of a
recipe in the notebooks, tools or benchmarks."""
from __future__ import annotations

import ast
from dataclasses import asdict
from pathlib import Path

import pytest

from cvae_lib.compute import CHAPTERS
from cvae_lib.configs import upgrade_config
from cvae_lib.course import own_runs
from cvae_lib.profiles import PROFILES
from cvae_lib.recipes import RECIPES, SHIPPED, Data, chapter_runs, open_ended, own_checkpoints, recipe, shipped_recipe
from cvae_lib.weights import CHECKPOINTS, read_metadata, shipped

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_FILES = sorted(p.stem for p in CHECKPOINTS.glob("*.safetensors"))


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@pytest.mark.parametrize("name", SHIPPED_FILES)
def test_every_shipped_file_was_trained_as_its_recipe_says(name):
    """Model config, epochs, batch, steps, EMA and diffusion process in the file's metadata are
    the recipe's: the registry is what the files were trained with, not a description of it."""
    run, meta = shipped_recipe(name), read_metadata(shipped(name))
    m = meta["metrics"]
    assert _plain(upgrade_config(type(run.model), meta["model_config"])) == _plain(asdict(run.model))
    assert m["batch_size"] == run.train.batch_size
    phases = run.train.epochs + (run.then.epochs if run.then else 0)
    assert m["epochs"] == phases or run.train.early_stopping       # early stopping may end it sooner
    if "steps" in m:
        assert m["steps"] == run.steps
    if run.ema_decay is not None:
        assert m["ema_decay"] == run.ema_decay
    if run.process is not None:             # a diffusion ("diffusion") or flow-matching ("process") run
        recorded, expected = m.get("diffusion", m.get("process")), asdict(run.process)
        if "clip_x0" in expected:
            expected["clip_x0"] = recorded.get("clip_x0", run.process.clip_x0)
        assert {**expected, **recorded} == expected
    if "classes" in m and name.startswith(("ddpm", "cvae", "ldm_prior")):
        assert (m["classes"] if m["classes"] and len(m["classes"]) < 10 else None) == (
            list(run.data.classes) if run.data.classes else None)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_chapter_run_builds_in_every_profile_and_keeps_its_checkpoint_name(profile):
    names = {name: recipe(name, profile) for name in RECIPES}
    assert {r.chapter for r in names.values()} <= set(CHAPTERS)
    assert len({r.checkpoint for r in names.values()}) == len(names)           # one file per run
    assert {n: r.checkpoint for n, r in names.items()} == {n: recipe(n, "smoke").checkpoint for n in names}
    for r in names.values():
        assert r.steps > 0 and r.build() is not None and r.loss() is not None


@pytest.mark.parametrize("data", [Data(), Data(per_class=7, val_per_class=2), Data(("frog",), 5, seed=1),
                                  Data(val_per_class=3, held_out_first=True),
                                  Data(("airplane", "frog"), 4, 3, held_out_first=True),
                                  Data(per_class=1, val_per_class=3, held_out_first=True, copies=46),
                                  Data(("airplane", "frog"), 6, 2, mirror=True)])
def test_data_counts_what_it_draws(data, image_set):
    images = image_set(10 * 30)                                        # 30 per class
    train, val = data.select(images)
    assert data.n_train(available=30) == len(train) * (2 if data.mirror else 1)
    assert (val is None) == (data.val_per_class == 0)
    if val is not None:
        assert not set(train.x.flatten(1).sum(1).tolist()) & set(val.x.flatten(1).sum(1).tolist()) or data.copies > 1
    assert data.describe()


def test_chapter_03_draws_its_runs_from_one_held_out_split(image_set):
    images = image_set(10 * 30)
    full = Data(val_per_class=3, held_out_first=True)
    hundred = Data(per_class=4, val_per_class=3, held_out_first=True)
    (pool, val), (sub, val2) = full.select(images), hundred.select(images)
    assert val2 is val                                                # computed once, shared
    assert set(sub.x.flatten(1).sum(1).tolist()) <= set(pool.x.flatten(1).sum(1).tolist())


def test_the_bits_per_dim_recipe_has_a_fixed_budget_equal_to_the_studys():
    """Its length is set by the recipe (as many steps as the study's all-data run), never by a
    measurement, so the course's numbers depend on its seeds only."""
    for profile in PROFILES:
        study, bpd = recipe("cvae_study_full", profile), recipe("cvae_improved_bpd", profile)
        assert bpd.steps == study.steps and bpd.model.kl_warmup_steps == max(1, study.steps // 8)


def test_own_runs_finds_what_the_chapters_write(tmp_path, monkeypatch):
    monkeypatch.delenv("CVAE_RETRAIN_OWN_RUNS", raising=False)
    needed = own_checkpoints(("01", "04"), "smoke")
    assert needed == {"ae.pt": "01", "ddpm.pt": "04"}
    (tmp_path / "ae.pt").write_bytes(b"x")
    assert own_runs(needed, tmp_path, profile="smoke") == {"ae.pt"}
    assert chapter_runs("05", "cpu") == []                             # chapter 05 trains nothing


def test_open_ended_runs_keep_the_chapter_recipe_but_its_end():
    run, open_run = recipe("ldm_prior", "cpu"), open_ended("ldm_prior", "cpu", steps_per_epoch=400)
    assert open_run.model == run.model and open_run.train.lr == run.train.lr
    assert open_run.train.max_steps == 400 and open_run.train.schedule == "constant" and not open_run.train.progress


def test_shipped_recipes_get_smaller_as_the_tools_options_ask():
    small = shipped_recipe("vae_cpu", epochs=1, max_steps=2, width=8, per_class=3)
    assert (small.train.epochs, small.train.max_steps, small.model.width) == (1, 2, 8)
    assert small.data.val_per_class == 1 and small.data.n_train() == 10 * 2
    assert shipped_recipe("vae_cpu", epochs=None) == shipped_recipe("vae_cpu")
    assert set(SHIPPED) >= set(SHIPPED_FILES)


# ---------------------------------------------------------------------------------- no copies

CONFIGS = {"TrainConfig", "AEConfig", "VAEConfig", "CVAEConfig", "UNetConfig", "DiffusionConfig", "FirstStageConfig",
           "ClassifierConfig", "FlowConfig", "RunSize"}
# Files that may still construct a config with numbers, and why.
ALLOWED = {
    "benchmarks/peers.py": "the peer libraries' own documented recipes, not the course's",
}


def recipe_literals(path: Path, root: Path = ROOT) -> list[str]:
    """Calls of a config class (or its named constructors, e.g. UNetConfig.course) with a number
    anywhere in their arguments: a recipe written outside cvae_lib/recipes.py."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.value.id if isinstance(f, ast.Attribute) and isinstance(
            f.value, ast.Name) else None
        if name not in CONFIGS:
            continue
        args = [*node.args, *(k.value for k in node.keywords)]
        if any(isinstance(n, ast.Constant) and type(n.value) in (int, float) for a in args for n in ast.walk(a)):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


@pytest.mark.parametrize("folder", ["notebooks", "tools", "benchmarks"])
def test_no_recipe_is_written_outside_the_registry(folder):
    files = [p for p in sorted((ROOT / folder).glob("*.py")) if str(p.relative_to(ROOT)) not in ALLOWED]
    found = [hit for p in files for hit in recipe_literals(p)]
    assert not found, ("a model or training configuration with numbers outside cvae_lib/recipes.py; read it from "
                       "the registry (recipe(name, P) or shipped_recipe(name)) instead:\n" + "\n".join(found))


def test_the_literal_check_catches_a_copy(tmp_path):
    copy = tmp_path / "copy.py"
    copy.write_text("tcfg = TrainConfig(epochs=P.ae.epochs, lr=2e-3)\nm = UNetConfig.course(16)\n"
                    "ok = TrainConfig(epochs=P.ae.epochs)\nalso_ok = UNetConfig.course(P.ddpm.width)\n")
    hits = [h.split(": ", 1)[1][:20] for h in recipe_literals(copy, tmp_path)]
    assert hits == ["TrainConfig(epochs=P", "UNetConfig.course(16"]

"""Recipes: the paper's recipe is the old defaults, flags win over recipes, the schedule fits the data."""

import dataclasses

import pytest

from hvae_tf import recipes
from hvae_tf.config import TrainConfig, parse_args

# train.py's defaults before recipes existed: --recipe mult-vae must give exactly these.
PAPER_DEFAULTS = {"likelihood": "multinomial", "activation": "tanh", "anneal_steps": 200_000,
                  "anneal_cap": 0.2, "batch_size": 500}
PAPER_MODEL = {"architecture": "mult-vae", "prior": "standard", "kl_gamma": 0.0, "encoder_passes": 0,
               "shallow": "none", "shallow_l2": 0.0, "patience": 0}


def resolved(argv, n_users=4828, n_movies=3502):
    return recipes.resolve(parse_args(["--features", "none", *argv]), n_users, n_movies)


@pytest.mark.parametrize("n_users, n_movies", [(4828, 3502), (116_677, 20_108)])
def test_mult_vae_recipe_is_the_papers_settings_on_any_data(n_users, n_movies):
    cfg = resolved(["--recipe", "mult-vae"], n_users, n_movies).config
    assert {k: getattr(cfg, k) for k in PAPER_DEFAULTS} == PAPER_DEFAULTS
    assert {k: getattr(cfg, k) for k in PAPER_MODEL} == PAPER_MODEL


def test_auto_picks_by_catalogue_size_and_says_why():
    small, large = resolved([], 4828, 3502), resolved([], 116_677, 20_108)
    assert small.recipe == recipes.AUTO_SMALL_CATALOGUE != large.recipe == "mult-vae"
    assert "3,502 movies <= 10,000" in small.choices[0] and "20,108 movies > 10,000" in large.choices[0]
    assert large.config.batch_size == 500 and large.config.anneal_steps == 200_000
    assert small.config.recipe == large.config.recipe == "auto"  # the asked recipe names the run


def test_a_flag_given_wins_over_the_recipe():
    cfg = resolved(["--recipe", "recvae", "--batch-size", "77", "--kl-gamma", "0.02",
                    "--activation", "tanh", "--patience", "3"]).config
    assert (cfg.batch_size, cfg.kl_gamma, cfg.activation, cfg.patience) == (77, 0.02, "tanh", 3)
    assert cfg.prior == "composite"  # the rest from the recipe


@pytest.mark.parametrize("n_users, batch", [(4828, 50), (483, 25), (60, 25), (116_677, 500), (20_000, 200)])
def test_fitted_batch_size_gives_about_a_hundred_updates_an_epoch(n_users, batch):
    assert resolved(["--recipe", "vasp"], n_users).config.batch_size == batch


def test_fitted_annealing_reaches_the_cap_at_a_share_of_the_planned_updates():
    result = resolved(["--recipe", "vasp", "--epochs", "40"], n_users=4828)
    planned = 40 * 97  # ceil(4828 / 50) updates an epoch
    assert result.config.anneal_steps == round(recipes.ANNEAL_SHARE * planned)
    assert any(f"{result.config.anneal_steps:,} updates" in line for line in result.choices)
    longer = resolved(["--recipe", "vasp", "--epochs", "80"], n_users=4828).config
    assert longer.anneal_steps == 2 * result.config.anneal_steps


def test_resolving_twice_changes_nothing_and_leaves_no_setting_unset():
    for recipe in recipes.RECIPE_SETTINGS | {"auto": None}:
        once = resolved(["--recipe", recipe]).config
        assert recipes.resolve(once, 4828, 3502).config == once
        assert None not in once.part("model").values()
        assert once.batch_size is not None and once.patience is not None


def test_recipe_names_the_run_and_changes_its_result():
    paper, rec = TrainConfig(recipe="mult-vae"), TrainConfig(recipe="recvae")
    assert paper.model_name != rec.model_name and "recvae" in rec.model_name
    assert "recipe" in rec.result_differences(paper)  # a grid cell or a run folder tells them apart
    assert "recipe" in rec.differences(paper)


def test_unknown_recipe_is_refused_naming_the_flag(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--recipe", "recvae2"])
    assert "--recipe" in capsys.readouterr().err


def test_every_recipe_gives_every_recipe_setting():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, settings in recipes.RECIPE_SETTINGS.items():
        assert set(settings) == set(recipes.RECIPE_FIELDS) and set(settings) <= fields, name


def test_patience_stops_once_the_best_epoch_is_that_far_back_even_after_a_resume(tmp_path):
    import json
    import types

    from hvae_tf.training.callbacks import RankingMetrics, StopWhenNotImproving

    history = tmp_path / "validation.json"
    scores = [0.30, 0.35, 0.34, 0.33, 0.36, 0.35, 0.34, 0.33]
    # A run killed after epoch 6 left its history on disk; the resumed run's callback reads it.
    history.write_text(json.dumps([{"epoch": e + 1, "val_ndcg_100": v} for e, v in enumerate(scores[:6])]))
    ranking = RankingMetrics(None, None, history_path=history)
    stop = StopWhenNotImproving(ranking, patience=3)
    stop.set_model(types.SimpleNamespace(stop_training=False))
    for epoch in (6, 7):  # 0-based: epochs 7 and 8
        ranking.history.append({"epoch": epoch + 1, "val_ndcg_100": scores[epoch]})
        stop.on_epoch_end(epoch)
        assert stop.model.stop_training == (epoch + 1 - 5 >= 3), epoch  # best: epoch 5
    never = StopWhenNotImproving(ranking, patience=0)
    never.set_model(types.SimpleNamespace(stop_training=False))
    never.on_epoch_end(7)
    assert not never.model.stop_training


def test_a_config_saved_before_recipes_existed_reads_as_the_papers_model():
    import json

    old = json.loads(TrainConfig(recipe="mult-vae").to_json())
    for name in ("recipe", "architecture", "prior", "kl_gamma", "encoder_passes", "shallow",
                 "shallow_l2", "shallow_speed", "patience"):
        old.pop(name)
    old.update(batch_size=500, anneal_steps=200_000, anneal_cap=0.2, activation="tanh",
               likelihood="multinomial")
    cfg = recipes.resolve(TrainConfig.from_json(json.dumps(old)), 4828, 3502).config
    assert cfg.recipe == "mult-vae"
    assert {k: getattr(cfg, k) for k in PAPER_MODEL} == PAPER_MODEL


def test_vasp_edlae_is_vasp_with_the_edlae_start_and_a_run_saved_before_it_is_not_taken_for_it():
    import json

    vasp, edlae = (resolved(["--recipe", r]).config for r in ("vasp", "vasp-edlae"))
    assert (vasp.shallow_init_dropout, edlae.shallow_init_dropout) == (0.0, 0.5)
    assert {k: v for k, v in dataclasses.asdict(vasp).items() if not k.startswith(("shallow_init", "recipe"))} \
        == {k: v for k, v in dataclasses.asdict(edlae).items() if not k.startswith(("shallow_init", "recipe"))}
    # An "auto" run saved when auto meant vasp (EASE's start with L2 500) has neither field.
    old = json.loads(TrainConfig().to_json())
    del old["shallow_init_l2"], old["shallow_init_dropout"]
    saved = TrainConfig.from_json(json.dumps(old))
    assert (saved.shallow_init_l2, saved.shallow_init_dropout) == (500.0, 0.0)
    assert set(TrainConfig().result_differences(saved)) == {"shallow_init_l2", "shallow_init_dropout"}
    again = resolved(["--shallow-init-l2", "500", "--shallow-init-dropout", "0"]).config
    assert (again.shallow_init_l2, again.shallow_init_dropout) == (500.0, 0.0)  # what it trained with


def test_recvae_edlae_is_recvae_beside_a_frozen_edlae():
    recvae, joined = (resolved(["--recipe", r]).config for r in ("recvae", "recvae-edlae"))
    assert (joined.shallow, joined.shallow_init_l2, joined.shallow_init_dropout) == ("frozen", 300.0, 0.5)
    assert recvae.shallow == "none"
    ignored = ("shallow", "recipe")
    assert {k: v for k, v in dataclasses.asdict(recvae).items() if not k.startswith(ignored)} \
        == {k: v for k, v in dataclasses.asdict(joined).items() if not k.startswith(ignored)}


def test_recvae_edlae_run_keeps_its_linear_expert_through_training_restore_and_serving(tmp_path,
                                                                                     generated_data_dir):
    import glob

    import numpy as np
    from conftest import train_small_run

    from hvae_tf.evaluation import harness
    from hvae_tf.training.restore import load_run
    from hvae_tf.training.run import shallow_start

    run_dir = train_small_run(generated_data_dir, tmp_path, "--features", "none", recipe="recvae-edlae",
                              batch_size=32)
    run = load_run(run_dir)
    start = shallow_start(run.config, run.split.train)["shallow_weights"]
    np.testing.assert_allclose(run.model.shallow_path.kernel.numpy(), start - np.diag(np.diag(start)), rtol=1e-6)
    served = harness.evaluate_saved_model(glob.glob(str(tmp_path / "saved" / "*" / "1"))[0])["Eval 2"]
    direct = harness.evaluate_run(run_dir)["Eval 2"]
    assert served["ndcg@100"] == pytest.approx(direct["ndcg@100"], abs=1e-4)

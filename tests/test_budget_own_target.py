"""The printed cost of a run counts only what the run trains: with --target (the user's own
model) the target's training is not part of it."""

import dataclasses

from tfminv.scenarios import base


def test_budget_leaves_out_the_target_when_it_is_the_users(tmp_path):
    config = base.ScenarioConfig(dataset="mnist", width=0.0625, epochs=2, batch_size=16,
                                 cache_dir=str(tmp_path))
    alloc = base.budgeted_allocation(config)
    bundled = base.budget_seconds(config, alloc, n_train=1000, n_aux=500, n_inverters=1)
    own = base.budget_seconds(dataclasses.replace(config, target="keras:" + str(
        tmp_path / "model.keras")), alloc, n_train=1000, n_aux=500, n_inverters=1)
    assert bundled["target_s"] > 0
    assert own["target_s"] == 0.0
    assert own["total_s"] < bundled["total_s"]
    assert own["eval_s"] > 0 and own["inverters_s"] > 0  # the judge and inverters still train


def test_budget_line_goes_to_the_tfminv_logger(tmp_path, caplog, capsys):
    """The cost note is a library message: one INFO record on the "tfminv" logger (a binary's
    `cli.run` prints it on stderr), never a bare print."""
    import logging

    config = base.ScenarioConfig(dataset="mnist", width=0.0625, epochs=2, batch_size=16,
                                 cache_dir=str(tmp_path))
    alloc = base.budgeted_allocation(config)
    with caplog.at_level(logging.INFO, logger="tfminv"):
        base.print_budget(config, alloc, 1000, 500, 2)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("tfminv")]
    assert len(lines) == 1 and lines[0].startswith("budget: at --width=0.0625 --epochs=2 ")
    assert "2 inverter(s)" in lines[0]
    out = capsys.readouterr()  # conftest installs cli's handler: the record, once, on stderr
    assert "budget:" not in out.out and out.err.count("budget:") == 1

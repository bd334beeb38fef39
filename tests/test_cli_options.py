"""The CLI is generated from the library's config dataclasses: one default and one help per value."""

from __future__ import annotations

import dataclasses

import pytest

from lyra_sim import cli
from lyra_sim.demo import DemoConfig
from lyra_sim.generate.distill import DistillConfig
from lyra_sim.reconstruct import ReconstructionConfig


def parse(argv):
    parser, modules = cli.build_parser()
    args = parser.parse_args(argv)
    config_cls = modules[args.command].Config
    return cli.config_from_arguments(config_cls, {dest: getattr(args, dest) for dest, *_ in cli._cli_fields(config_cls)})


def test_defaults_are_the_library_defaults():
    assert parse(["demo"]).demo == DemoConfig()
    reconstruction = parse(["reconstruct", "data", "-o", "x.ply"]).reconstruction
    # The command-line defaults that differ from the library's, each declared once (cli_default):
    # the command reconstructs for simulation, so its surface-aware terms are on.
    assert dataclasses.replace(reconstruction, eval_every=0, checkpoint_every=0, surface=False) == ReconstructionConfig()
    assert (reconstruction.eval_every, reconstruction.checkpoint_every, reconstruction.surface) == (500, 1000, True)
    assert parse(["reconstruct", "data", "-o", "x.ply", "--no-surface"]).reconstruction.surface is False
    training = parse(["distill", "-o", "out", "--kit", "tabletop"]).training
    assert dataclasses.replace(training, steps=DistillConfig.steps) == DistillConfig() and training.steps == 500


def test_options_reach_the_library_config():
    config = parse(["reconstruct", "d", "-o", "x.ply", "--iterations", "7", "--seed", "3", "--minutes", "2"])
    assert (config.reconstruction.iterations, config.reconstruction.seed, config.minutes) == (7, 3, 2.0)
    assert parse(["distill", "-o", "o", "--time-budget", "9"]).training.time_budget_s == 9.0


def test_nested_options_keep_their_choices(capsys):
    with pytest.raises(SystemExit):
        parse(["reconstruct", "d", "-o", "x.ply", "--init", "nowhere"])
    assert "invalid choice: 'nowhere'" in capsys.readouterr().err


@pytest.mark.parametrize("name", cli.COMMANDS)
def test_no_command_field_copies_a_library_field(name):
    import importlib
    import typing

    config_cls = importlib.import_module(f"lyra_sim.commands.{name.replace('-', '_')}").Config
    hints = typing.get_type_hints(config_cls)
    names = [option_name for _, option_name, _, _ in cli._cli_fields(config_cls)]
    assert len(names) == len(set(names)), names  # no option declared twice
    for f in dataclasses.fields(config_cls):
        if f.metadata.get("group"):
            library = {inner.name for inner in dataclasses.fields(hints[f.name])}
            own = {g.name for g in dataclasses.fields(config_cls) if not g.metadata.get("group")}
            assert not (own & library), f"{name}: {sorted(own & library)} repeat {hints[f.name].__name__} fields"

"""One definition per setting: every scenario config field is its binary's flag (same name,
default, help, choices); pure flag checks, the output folder and --help run before TensorFlow
is imported; Ctrl-C exits 130 with a resume hint; the audit scenario calls the public door.

Binaries run in subprocesses (they define flags of the same names); all fast (no training)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tfminv.errors import ConfigError
from tfminv.settings import settings_of

ROOT = Path(__file__).parents[1]
BINARIES = {"truncation": "TruncationConfig", "auxiliary": "AuxiliaryConfig",
            "alignment": "AlignmentConfig", "class_inference": "ClassInferenceConfig",
            "joint": "JointConfig", "api": "FaceAPIConfig", "audit": "AuditConfig",
            "defences": "DefencesConfig", "ablation": "AblationConfig"}

# a binary's flags, and whether TensorFlow got imported
DUMP = textwrap.dedent("""
    import importlib, json, sys
    from absl import flags
    mod = importlib.import_module(sys.argv[1])
    F = flags.FLAGS
    own = {f.name: {"default": f.default, "help": f.help,
                    "choices": getattr(f.parser, "enum_values", None)}
           for f in F.get_flags_for_module(mod)
           + F.get_flags_for_module("tfminv.experiments.common")}  # --helpfull only
    print(json.dumps({"flags": own, "tensorflow": "tensorflow" in sys.modules}))
""")

# run a binary as `python -m` would, then report its exit code and whether TensorFlow started
RUN = textwrap.dedent("""
    import json, runpy, sys
    code = None
    try:
        runpy.run_module(sys.argv[1], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code
    print(json.dumps({"code": code, "tensorflow": "tensorflow" in sys.modules}))
""")


def _env(**more):
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", **more)


def _spawn(script, *args, cwd=None):
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=cwd)


def _result(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    assert out.strip(), err[-2000:]
    return json.loads(out.strip().splitlines()[-1]), err


def _as_flag_default(value):
    return list(value) if isinstance(value, tuple) else value


def test_every_config_field_is_its_binary_flag_with_the_same_default():
    import tfminv.scenarios as sc
    from tfminv.experiments.common import RunOptions

    assert {getattr(sc, c) for c in BINARIES.values()} == set(sc.CONFIGS)
    procs = {b: _spawn(DUMP, f"tfminv.experiments.{b}") for b in BINARIES}
    for binary, cls_name in BINARIES.items():
        dump, err = _result(procs[binary])
        assert not dump["tensorflow"], binary
        own = dump["flags"]
        expected = {**settings_of(getattr(sc, cls_name)), **settings_of(RunOptions)}
        with_flag = {n: fs for n, fs in expected.items() if fs[1].flag}
        # no hand-written flag beside the generated ones, and every setting has its flag
        assert set(own) == set(with_flag), (binary, set(own) ^ set(with_flag))
        for name, (field, s) in with_flag.items():
            flag = own[name]
            assert flag["default"] == _as_flag_default(field.default), (binary, name)
            assert flag["help"].endswith(s.help), (binary, name)  # enums: '<a|b>: ' first
            if s.choices is not None and flag["choices"] is not None:
                assert flag["choices"] == [str(c) for c in s.choices], (binary, name)


# today's command lines keep working: the defaults users rely on, as the flags spell them
FROZEN = {
    "truncation": {"k": [10], "methods": ["truncation", "previous", "previous_logzero"],
                   "figure_n": 10, "dataset": "facescrub", "epochs": 100, "max_aux": 0},
    "auxiliary": {"aux_sets": ["same", "generic", "distinct"], "k": 0},
    "class_inference": {"k": 1, "methods": ["truncation", "previous", "fredrikson",
                                            "fredrikson_meanaux"], "mia_steps": 1000},
    "api": {"api_split": [0.5, 0.9], "feature_sets": ["all", "no_landmarks"],
            "api_width": 0.25},
    "audit": {"figure_n": 12, "policies": None, "audit_seed": 0, "input_range": "0,1",
              "outputs": "auto", "victims": None, "title": None},
}


def test_flag_defaults_and_list_flags_as_before():
    procs = {b: _spawn(DUMP, f"tfminv.experiments.{b}") for b in FROZEN}
    for binary, want in FROZEN.items():
        own = _result(procs[binary])[0]["flags"]
        assert {n: own[n]["default"] for n in want} == want, binary


@pytest.mark.parametrize("binary", sorted(BINARIES))
def test_help_does_not_import_tensorflow(binary):
    res = subprocess.run([sys.executable, "-X", "importtime", "-m",
                          f"tfminv.experiments.{binary}", "--help"], capture_output=True,
                         text=True, env=_env(), timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]  # absl's own --help exits 1
    assert "--epochs" in res.stdout
    imported = [line for line in res.stderr.splitlines() if "import time" in line]
    assert imported and not [line for line in imported if "tensorflow" in line]


def test_flag_and_output_folder_checks_run_before_tensorflow(tmp_path):
    """A bad --k / --max_aux, an --out_dir that is a file, or a results.json that is a folder:
    one line, exit 2, and TensorFlow never imported (so no training either)."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "out" / "results.json").mkdir(parents=True)
    tiny = ["--dataset=mnist", "--width=0.0625", "--epochs=1", "--max_train=50",
            "--max_victims=10", "--verbose=0", f"--cache_dir={tmp_path}/cache"]
    cases = [
        ("truncation", ["--k=0"], "--k=0: expected values >= 1"),
        ("truncation", ["--k=1,7"], "--k=1,7: k must be at most the 5 classes"),
        ("truncation", ["--k=1", "--max_aux=-5"], "--max_aux=-5: expected a value >= 0"),
        ("auxiliary", ["--max_victims=-1"], "--max_victims=-1"),
        ("truncation", ["--k=1", f"--out_dir={a_file}"], f"--out_dir={a_file}: is a file"),
        ("truncation", ["--k=1", f"--out_dir={a_file}/sub"], f"{a_file} is a file"),
        ("joint", ["--k=1", f"--out_dir={tmp_path}/out"], "results.json is a folder"),
        # /proc takes no new files, for root too (os.access said yes to root: a whole run first)
        ("audit", ["--out_dir=/proc/tfminv_out"], "--out_dir=/proc/tfminv_out: cannot create "
         "it in /proc (creating a file there fails"),
        ("audit", ["--audit_seed=0", "--policies=topk:0"], "topk"),
        ("audit", ["--victims=npz:x.npz"], "--victims, --aux and --target go together"),
        ("audit", ["--input_range=5,1"], "--input_range='5,1'"),
        ("class_inference", ["--mia_steps=0"], "--mia_steps=0"),
        ("api", ["--api_split=0.9,0.5"], "0 < a < b < 1"),
    ]
    procs = []
    for binary, args, want in cases:
        p = subprocess.Popen([sys.executable, "-c", RUN, f"tfminv.experiments.{binary}", *tiny,
                              *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=_env(), cwd=tmp_path)
        procs.append((binary, args, want, p))
    for binary, args, want, p in procs:
        res, err = _result(p, timeout=180)
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert res["code"] == 2, (binary, args, err[-2000:])
        assert len(errors) == 1 and want in errors[0], (binary, args, err[-2000:])
        assert not res["tensorflow"], (binary, args, "checked only after TensorFlow started")


def test_ctrl_c_exits_130_with_one_line_saying_how_to_resume(tmp_path):
    script = textwrap.dedent("""
        from tfminv import cli
        def main(argv):
            raise KeyboardInterrupt
        cli.run(main)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=_env(), timeout=60)
    assert res.returncode == 130
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == ["interrupted (Ctrl-C)"]


def _sigint_as_a_terminal_sends_it():
    """Popen's preexec_fn: SIGINT back to its default in the child, so that Python installs its
    Ctrl-C handler there even when this test runs where SIGINT is ignored (a background job of
    a non-interactive shell, e.g. `nohup ... &`), which the child would otherwise inherit."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_that_a_library_turns_into_another_error_still_exits_130():
    """The KeyboardInterrupt can die inside TensorFlow (tracing, a C++ callback) and come out as
    another exception; after a SIGINT, the run still ends as interrupted, not as a failure."""
    script = textwrap.dedent("""
        import os, signal
        from tfminv import cli
        def main(argv):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                import time; time.sleep(5)
            except KeyboardInterrupt as e:
                raise RuntimeError("a frame dump, not an interrupt") from None
        cli.run(main)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=_env(), timeout=60, preexec_fn=_sigint_as_a_terminal_sends_it)
    assert res.returncode == 130, res.stderr
    assert res.stderr.strip().splitlines() == ["interrupted (Ctrl-C)"]
    # without a SIGINT, the same RuntimeError is a failure (exit 1 with its traceback)
    plain = script.replace('os.kill(os.getpid(), signal.SIGINT)', 'raise KeyboardInterrupt')
    plain = plain.replace("except KeyboardInterrupt as e:", "except KeyboardInterrupt:")
    res = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True,
                         env=_env(), timeout=60)
    assert res.returncode == 1 and "RuntimeError: a frame dump" in res.stderr, res.stderr


def test_ctrl_c_during_a_real_run(tmp_path, data_dir):
    """SIGINT to a training binary once it has started work (TensorFlow up, data or training)."""
    import signal
    import time

    p = subprocess.Popen([sys.executable, "-m", "tfminv.experiments.truncation",
                          "--dataset=mnist", "--k=1", "--width=0.0625", "--epochs=50",
                          "--clf_epochs=50", "--max_train=300", "--max_aux=300",
                          "--max_victims=20", "--verbose=0", f"--cache_dir={tmp_path}/cache",
                          f"--data_dir={data_dir.resolve()}",  # the run's cwd is tmp_path
                          f"--out_dir={tmp_path}/out"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path,
                         preexec_fn=_sigint_as_a_terminal_sends_it)
    # interrupt once the run has written its cache (TensorFlow up, work started): a signal
    # that lands while Python is still importing the binary is outside cli.run, which is
    # what made a fixed 8 s wait flaky on a loaded machine
    deadline = time.time() + 120
    while not (tmp_path / "cache").exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert (tmp_path / "cache").exists(), p.stderr.read()[-2000:] if p.poll() is not None \
        else "the run wrote no cache within 120 s"
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        "interrupted: rerun the same command to resume (trained models, predictions and "
        "checkpoints are cached)")


def test_command_line_records_given_flags_quoted(tmp_path):
    script = textwrap.dedent("""
        import sys
        from absl import flags
        from tfminv.experiments import audit, common
        flags.FLAGS(["audit", "--policies=topk:2|round:1", "--max_aux=48",
                     "--nodeterministic", "--out_dir=my out"])
        print(common.command_line("tfminv.experiments.audit"))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=_env(), timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    line = res.stdout.strip().splitlines()[-1]
    assert line == ("python -m tfminv.experiments.audit --max_aux=48 "
                    "'--policies=topk:2|round:1' '--out_dir=my out' --nodeterministic")
    # one recorder: no binary writes its own
    for binary in BINARIES:
        src = (ROOT / "tfminv" / "experiments" / f"{binary}.py").read_text()
        assert "common.publish(" in src and "_command" not in src and "FLAGS." not in src


def test_config_checks_name_the_setting():
    from tfminv.scenarios import (AuditConfig, ClassInferenceConfig, FaceAPIConfig,
                                  ScenarioConfig, TruncationConfig)

    with pytest.raises(ConfigError, match=r"^--max_aux=-5: expected a value >= 0"):
        ScenarioConfig(max_aux=-5)
    with pytest.raises(ConfigError, match=r"^--k=1,0: expected values >= 1"):
        TruncationConfig(k=(1, 0))
    with pytest.raises(ConfigError, match=r"^--methods=truncation,nope: expected a subset"):
        TruncationConfig(methods=("truncation", "nope"))
    with pytest.raises(ConfigError, match=r"^--mia_objective='x': expected one of"):
        ClassInferenceConfig(mia_objective="x")
    with pytest.raises(ConfigError, match="0 < a < b < 1"):
        FaceAPIConfig(api_split=(0.9, 0.5))
    with pytest.raises(ConfigError, match="--select_on"):
        AuditConfig(select_on="target_train")
    with pytest.raises(ConfigError, match="--stream_aux"):
        AuditConfig(stream_aux=True)
    with pytest.raises(ConfigError, match="policy 'topq'"):
        AuditConfig(policies="identity;topq:3")
    with pytest.raises(ConfigError, match="--k=6: k must be at most the 5 classes"):
        TruncationConfig(dataset="mnist", k=(6,)).preflight()
    with pytest.raises(ConfigError, match="--aux='imagenet'"):
        AuditConfig(aux="imagenet").preflight()
    assert TruncationConfig(dataset="mnist", k=(6,), target="keras:x.keras").preflight()


def test_audit_scenario_calls_the_public_door_in_its_typed_form(tmp_path, monkeypatch):
    """run_audit(AuditConfig) on the user's data: loads the specs, applies the budget caps and
    hands everything to `tfminv.run_inversion` as InversionInputs + InversionConfig (the door's
    typed form), the attack method and its settings included; its result is written."""
    import tfminv.leakage
    from tfminv.results import InversionResults
    from tfminv.scenarios import AuditConfig, run_audit

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "aux.npz", images=rng.integers(0, 255, (30, 16, 16, 1), np.uint8))
    np.savez(tmp_path / "vic.npz", images=rng.integers(0, 255, (9, 16, 16, 1), np.uint8),
             labels=np.arange(9) % 3)
    seen = {}

    def door(target, data, *, config, **kw):
        seen.update(target=target, data=data, config=config, **kw)
        return InversionResults(rows=[], reconstructions={}, baselines={}, settings={},
                                victim_images=data.victim_images,
                                victim_labels=data.victim_labels)

    monkeypatch.setattr(tfminv.leakage, "run_inversion", door)
    config = AuditConfig(target="keras:m.keras", aux=f"npz:{tmp_path}/aux.npz",
                         victims=f"npz:{tmp_path}/vic.npz", max_aux=20, max_victims=6,
                         policies="identity;label", audit_seed=7, width=0.5, epochs=3,
                         input_range="0,255", title="T", eval_model="keras:judge.keras",
                         method="identity", identity_weight=0.5)
    result = run_audit(config)
    cfg, data = seen["config"], seen["data"]
    assert seen["target"] == "keras:m.keras" and len(data.aux_images) == 20
    assert len(data.victim_images) == 6 and seen["eval_model"] == "keras:judge.keras"
    assert [p.spec() for p in cfg.policy_list()] == ["identity", "label"]
    assert cfg.seed == 7 and cfg.width == 0.5 and cfg.input_range == "0,255"
    assert cfg.epochs == 3 and cfg.train.epochs == 3
    assert cfg.method == "identity" and cfg.identity_weight == 0.5
    assert cfg.surrogate_epochs == AuditConfig().surrogate_epochs
    np.testing.assert_array_equal(data.victim_labels, np.arange(6) % 3)
    assert result.name == "audit_user" and result.title == "T"
    assert result.extra == {"aux_set": config.aux, "victims_set": config.victims}
    with pytest.raises(ConfigError, match="method"):
        AuditConfig(method="gmi")


def test_audit_public_names_stay_importable():
    import tfminv
    from tfminv import audit
    from tfminv.scenarios import audit as scenario

    # one run_audit: the door's, whose typed form run_audit(AuditConfig) is the scenario
    assert audit.run_audit is scenario.run_audit is tfminv.run_audit
    assert tfminv.run_audit is __import__("tfminv.leakage").leakage.run_audit
    with pytest.raises(ConfigError, match=r"run_audit\(AuditConfig\) and victim_labels, "
                                          r"epochs given: put every setting in the AuditConfig"):
        tfminv.run_audit(scenario.AuditConfig(), victim_labels=[0], epochs=3)
    for name in ("DEFAULT_POLICIES", "tie_aware_accuracy", "grid_indices", "write_report",
                 "aux_name", "target_spec", "audit_sets", "AuditConfig"):
        assert hasattr(audit, name), name


PARSE = textwrap.dedent("""
    import importlib, json, shlex, sys
    from absl import flags
    from tfminv.experiments import common
    binary = sys.argv[1]
    mod = importlib.import_module(binary)
    cls = getattr(mod, sys.argv[2])
    F = flags.FLAGS
    out = []
    for command in json.loads(sys.argv[3]):
        args = shlex.split(command)
        F.unparse_flags()
        F(["prog", *args[3:]])
        first = common.config(cls)
        again = common.command_line(binary)
        F.unparse_flags()
        F(["prog", *shlex.split(again)[3:]])
        out.append(first == common.config(cls))
    print(json.dumps(out))
""")


@pytest.mark.parametrize("args", [["--help"], ["-?"], ["--helpfull"], ["--helpshort"],
                                  ["--helpxml"], ["--k=1", "--help=true"]])
def test_every_help_flag_exits_0_after_its_help_without_tensorflow(args):
    """absl answers its help flags with exit 1 (as if the run had failed); the binaries exit 0,
    with the help on stdout and TensorFlow never imported."""
    res, err = _result(subprocess.Popen([sys.executable, "-c", RUN,
                                         "tfminv.experiments.truncation", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=_env()), timeout=120)
    assert res["code"] == 0, (args, err[-2000:])
    assert not res["tensorflow"], args


def test_asks_for_help_reads_absl_spellings():
    from tfminv.cli import _asks_for_help

    assert _asks_for_help(["prog", "--k=1", "-help"])
    assert not _asks_for_help(["prog", "--nohelp", "--help=false", "--helper=1"])
    assert not _asks_for_help(["prog", "--", "--help"])


def test_the_committed_experiments_command_lines_still_parse():
    """Every run.json command of experiments/ parses into its binary's config, and the
    recorder's own line for it parses back into the same config."""
    commands = {}
    for run in sorted((ROOT / "experiments").glob("*/run.json")):
        command = json.loads(run.read_text()).get("command", "")
        binary = command.split()[2] if command.startswith("python -m tfminv.experiments.") \
            else None
        if binary:
            commands.setdefault(binary, []).append(command)
    assert len(commands) >= 6
    procs = {b: _spawn(PARSE, b, BINARIES[b.rsplit(".", 1)[1]], json.dumps(cs))
             for b, cs in commands.items()}
    for binary, p in procs.items():
        same, err = _result(p)
        assert same == [True] * len(commands[binary]), (binary, err[-2000:])

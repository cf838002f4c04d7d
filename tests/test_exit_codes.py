"""Every binary exits 2 with one `error: ...` line on a user error, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BINARIES = ["tfminv.data.build", "tfminv.data.download", "tfminv.export",
            "tfminv.serving.client", "tfminv.serving.testing_server"] + \
    [f"tfminv.experiments.{m}" for m in ("ablation", "alignment", "api", "audit", "auxiliary",
                                         "class_inference", "joint", "reproduction",
                                         "truncation")]


def test_every_binary_exits_2_with_one_line(tmp_path, data_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cases = [(m, ["--no_such_flag=1"], "no_such_flag") for m in BINARIES]
    cases += [
        ("tfminv.data.build", ["--dataset=nope"], "unknown dataset 'nope'"),
        ("tfminv.data.build", ["--dataset=mnist", "--image_size=abc"], "--image_size=abc"),
        ("tfminv.data.build", ["--dataset=mnist", "--limit=5", f"--records_dir={blocker}/rec"],
         f"cannot write records to {blocker}/rec"),
        ("tfminv.data.download", ["--dataset=svhn"], "--dataset=svhn"),
        ("tfminv.data.download", ["--dataset=mnist", "--timeout=soon"], "--timeout=soon"),
    ]
    # the binaries run in tmp_path, so a relative data folder (CI: ../shared/data) is resolved
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]), TF_CPP_MIN_LOG_LEVEL="3",
               TFMINV_DATA_DIR=str(Path(data_dir).resolve()))
    procs = [(m, args, want, subprocess.Popen([sys.executable, "-m", m, *args], env=env,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True, cwd=tmp_path))
             for m, args, want in cases]
    for m, args, want, p in procs:
        _, err = p.communicate(timeout=300)
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert p.returncode == 2, (m, args, err[-2000:])
        assert len(errors) == 1 and want in errors[0], (m, args, err[-2000:])
        assert "Traceback" not in err, (m, args, err[-2000:])

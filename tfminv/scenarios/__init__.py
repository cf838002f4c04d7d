"""Every scenario of the paper as a plain function of a config dataclass (no absl flags).

    from tfminv.scenarios import TruncationConfig, run_truncation
    result = run_truncation(TruncationConfig(dataset="mnist", k=(1, 3), width=0.25, epochs=5))
    result.rows            # one dict per results.json row
    result.write("out/")   # figures, results.json, results.md, run.json

| function | config | scenario |
|---|---|---|
| `run_truncation` | `TruncationConfig` | top-k truncation vs the previous approach |
| `run_auxiliary` | `AuxiliaryConfig` | same, generic or distinct auxiliary set |
| `run_alignment` | `AlignmentConfig` | frontal-face auxiliary subset (OpenCV cascades) |
| `run_class_inference` | `ClassInferenceConfig` | one image per class vs Fredrikson et al. |
| `run_joint` | `JointConfig` | malicious developer: joint training vs black-box |
| `run_faceapi` | `FaceAPIConfig` | a DetectFaces-format face-attribute API |
| `run_audit` | `AuditConfig` | leakage vs utility under release policies (bundled or own data) |
| `run_defences` | `DefencesConfig` | leakage vs utility of training-time defences of the target |
| `run_ablation` | `AblationConfig` | what each term of the identity method buys |

Every config extends `ScenarioConfig` (data, cache, budget, target and selection settings; its
`dataset` is any allocation name of `tfminv.data.allocations` or a JSON allocation file).
`run_audit(AuditConfig)` is the audit binary's scenario: the public door `tfminv.run_audit`
itself (one function) in its typed form, whose body is `audit.audit_scenario`. Importing this package does not import TensorFlow.
"""

from tfminv.scenarios.ablation import AblationConfig, run_ablation
from tfminv.scenarios.alignment import AlignmentConfig, run_alignment
from tfminv.scenarios.audit import AuditConfig, AuditResult, run_audit
from tfminv.scenarios.auxiliary import AuxiliaryConfig, run_auxiliary
from tfminv.scenarios.base import (Figure, ScenarioConfig, ScenarioResult, Setup, prepare,
                                   selection_data)
from tfminv.scenarios.defences import DefencesConfig, DefencesResult, run_defences
from tfminv.scenarios.class_inference import ClassInferenceConfig, run_class_inference
from tfminv.scenarios.faceapi import FaceAPIConfig, run_faceapi
from tfminv.scenarios.joint import JointConfig, run_joint
from tfminv.scenarios.truncation import TruncationConfig, run_truncation

__all__ = ["ScenarioConfig", "ScenarioResult", "Setup", "Figure", "prepare", "selection_data",
           "TruncationConfig", "run_truncation", "AuxiliaryConfig", "run_auxiliary",
           "AlignmentConfig", "run_alignment", "ClassInferenceConfig", "run_class_inference",
           "JointConfig", "run_joint", "FaceAPIConfig", "run_faceapi", "AuditConfig", "AuditResult",
           "run_audit", "DefencesConfig", "DefencesResult", "run_defences", "AblationConfig",
           "run_ablation", "CONFIGS"]

#: every scenario config (the binaries generate their flags from these)
CONFIGS = (TruncationConfig, AuxiliaryConfig, AlignmentConfig, ClassInferenceConfig,
           JointConfig, FaceAPIConfig, AuditConfig, DefencesConfig, AblationConfig)

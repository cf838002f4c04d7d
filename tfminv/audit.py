"""The leakage audit's earlier home; it is now the scenario `tfminv.scenarios.audit`.

`run_audit(AuditConfig(...))` is the audit scenario (what `python -m tfminv.experiments.audit`
runs); `audit_sets` is the public door `tfminv.run_audit` for ImageSets; `aux_name` and
`target_spec` turn --aux and --target into library values; `write_report`
(tfminv.reporting.inversion) writes an InversionResults' report. All re-exported from there.
"""

from tfminv.leakage import DEFAULT_POLICIES, tie_aware_accuracy  # noqa: F401 - public here too
from tfminv.reporting.inversion import grid_indices, write_report  # noqa: F401 - public here
from tfminv.scenarios.audit import (AuditConfig, AuditResult, audit_sets, aux_name,  # noqa: F401
                                    run_audit, target_spec)

__all__ = ["AuditConfig", "AuditResult", "run_audit", "audit_sets", "aux_name", "target_spec",
           "DEFAULT_POLICIES", "tie_aware_accuracy", "grid_indices", "write_report"]

"""The BentoML scoring service, batch scoring and the page for sales reps.

A scoring worker never trains, yet LightGBM imports scikit-learn (and with it SciPy's
statistics) for its sklearn-style estimators: ~50 MB of memory and ~1.4 s of start-up in
every worker. ``serving.launch`` starts servers with ``LEADSCORE_SERVICE_WORKER=1``; in such
a process, before anything imports LightGBM, scikit-learn is marked absent (``None`` in
``sys.modules`` makes its import fail at once), so LightGBM takes its no-scikit-learn path.
Any other process (the CLI, tests, a notebook) is left alone.
"""

import os as _os
import sys as _sys

WORKER_ENV = "LEADSCORE_SERVICE_WORKER"
"""Set to ``1`` in the environment of a scoring server's processes."""

if _os.environ.get(WORKER_ENV) == "1" and "lightgbm" not in _sys.modules:
    _sys.modules.setdefault("sklearn", None)

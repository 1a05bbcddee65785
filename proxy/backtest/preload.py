"""Imported once in the fork server of replay workers (`simulate._in_workers`): the
modules a worker runs and the sentence-embedding model, loaded before the workers are
forked from it, so that they share those pages copy-on-write instead of each loading its
own (~190 MB a worker: the engine, the store, numpy, SciPy through datasketch, the model).

Nothing here may stop the fork server: whatever fails to load is left to the worker, which
loads it again and fails as a worker started without a preload would (its exit code).
"""

from __future__ import annotations

import gc

try:
    import proxy.backtest.replay  # noqa: F401  (the engine, the store, every policy)
    from policies import meaning

    meaning.load()
    try:
        import uvloop  # noqa: F401  (worker.run_async's loop)
    except ImportError:
        pass
except Exception:  # the worker loads it again and reports it (see above)
    pass

# Out of the collector's reach: a full collection in a worker writes to every tracked
# object's header and would copy each page of them into that worker.
gc.freeze()

"""The ``slipway`` commands: run (runner, execute, outcomes, report), repro, dev, demo, validate."""

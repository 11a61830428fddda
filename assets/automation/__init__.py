"""What decides and reacts: the rebuild predicate, the retrain policy, and every sensor.

The rebuild predicate and staleness, the retrain policy and drift watch, the history of what was
built, and every sensor (:mod:`assets.automation.sensors`). The top layer below the component
(:mod:`assets.pipeline`).
"""

"""``slipway plan``: each side of a change (revisions, sides), their comparison and its report."""

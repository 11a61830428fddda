"""Model storage formats and their defaults (no heavy imports: stacks read this at load time)."""

# scikit-learn's tree and loss objects, which skops does not trust by default; without them a
# forest or a gradient-boosting model cannot be saved with skops at all.
SKOPS_TRUSTED_TYPES = ("sklearn.tree._tree.Tree", "sklearn._loss._loss.CyHalfSquaredError")

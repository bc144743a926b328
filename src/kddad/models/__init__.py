"""The model kinds behind one interface (:mod:`kddad.models.base`): networks and scikit-learn baselines."""

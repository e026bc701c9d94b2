"""The ML pipeline of issue 16: features, labels, validation, training and the model registry.

Modules (import the one you need; this package imports nothing heavy by itself, so
``warden`` stays fast to start):

- :mod:`tradewarden.ml.settings`: ``[ml]`` (:class:`~tradewarden.ml.settings.MlSettings`).
- :mod:`tradewarden.ml.features`: the universe panel, causal features, forward-return
  labels and the feature-row hash.
- :mod:`tradewarden.ml.validation`: purged and embargoed walk-forward splits and the
  per-split metrics (information coefficient, hit rate, top-minus-bottom spread).
- :mod:`tradewarden.ml.train`: fitting (scikit-learn Ridge or LightGBM) and a training
  run with its validation and data hash.
- :mod:`tradewarden.ml.registry`: versions on MLflow, the ``production`` alias,
  promotion and rollback recorded in the ledger's ``ml_model_events``.
"""

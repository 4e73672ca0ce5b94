"""Energy where training already runs: callbacks and helpers for training frameworks.

* ``energymeter.integrations.lightning.EnergyCallback``: a Lightning callback (``pip install
  'energymeter[lightning]'``).
* ``energymeter.integrations.transformers.EnergyCallback``: a Transformers ``TrainerCallback`` (``pip install
  'energymeter[transformers]'``).
* ``energymeter.integrations.ray_train.EnergyReporter``: ``ray.train.report`` with every worker's energy
  aggregated (``pip install 'energymeter[ray]'``).

Each module imports its framework only when its class is first used; this package imports none. The logger keys
they share are described in ``energymeter.integrations.keys``; the windows in ``energymeter.integrations.phases``.
"""

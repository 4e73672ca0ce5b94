"""Where energymeter meets the tools researchers already use: training frameworks and monitoring.

* ``energymeter.integrations.lightning.EnergyCallback``: a Lightning callback (``pip install
  'energymeter[lightning]'``).
* ``energymeter.integrations.transformers.EnergyCallback``: a Transformers ``TrainerCallback`` (``pip install
  'energymeter[transformers]'``).
* ``energymeter.integrations.ray_train.EnergyReporter``: ``ray.train.report`` with every worker's energy
  aggregated (``pip install 'energymeter[ray]'``).
* ``energymeter.integrations.prometheus``: a scrape endpoint for Prometheus (``pip install
  'energymeter[prometheus]'``; ``energymeter serve``).

Each module imports its library only when used; this package imports none, and ``import energymeter`` does not
import this package. The logger keys the callbacks share are described in ``energymeter.integrations.keys``; the
windows in ``energymeter.integrations.phases``.
"""

"""Subject models for energymeter: energy-regularised networks and the activation energy E (``energymeter.models``)."""

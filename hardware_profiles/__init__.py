"""Device data shipped with energymeter: CPU TDPs and Loihi energy-per-operation tables, each with its source."""

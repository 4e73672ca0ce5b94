"""Comparisons against independent peers: each module runs another tool on the same work and reports both.

* ``lava_check``: the torch simulator's lava mode against lava-nc itself, run in its own Python 3.10
  by ``lava_runner.py`` (a script that imports nothing from energymeter), spike for spike;
  ``lava_reference``: an independent numpy re-implementation of lava's float64 arithmetic.
* ``fvcore_check``: fvcore's count of one forward pass beside torch's FLOP counter (fvcore counts MACs).
* ``peer_meters``: pyRAPL and codecarbon read around the same window as energymeter's measured domains.

This wing may import the measuring packages (``backends``, ``meter``, ``measurement``, ``loihi``); they
never import it (``tests/test_architecture.py``). Nothing is imported here: each module is imported by
its full name, and the peers' libraries only inside the functions that start them.
"""

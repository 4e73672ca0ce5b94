"""From records to verdicts: statistics (``stats*``, ``intervals``), each run's figures (``figures``), the
tables (``tables``), the claims (``claims``, registered in ``claim_registry`` by ``paper_claims``) and the one
``Analysis`` (``analysis.analyse``). Reads records; never imports ``run`` or ``report``."""

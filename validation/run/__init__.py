"""Running a sweep: its settings (``config``), how one run is measured (``protocol``), the loop (``sweep``),
where runs execute (``executors``, ``ray_executor``), and what is sampled beside them (``machine_load``,
``metadata``, ``progress``). Writes records through ``records``; knows nothing of the analysis or reports."""

"""Rendering one ``Analysis``: its sections (``sections``), Markdown, HTML and plots (``render_md``,
``render_html``, ``plots``), and the files of a sweep directory (``report``). Computes no figure; never
imports ``run``."""

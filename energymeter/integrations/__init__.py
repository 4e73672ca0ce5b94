"""Where energymeter meets the tools researchers already use; each module imports its library only when used.

Each is an extra of its own (``pip install 'energymeter[prometheus]'``): nothing here is imported by
``import energymeter``.
"""

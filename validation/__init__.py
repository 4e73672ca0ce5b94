"""The validation suite: proxy-vs-joule sweeps and reports (``energymeter.validation``)."""

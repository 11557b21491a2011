"""The ``hwsearch`` command line (``hwsearch.service.cli:app``), one module per group of
commands; importing them in this order registers the commands in the order ``--help`` lists
them."""

from hwsearch.service.cli import jobs, fronts, serve, admin, predictors  # noqa: F401, I001
from hwsearch.service.cli.common import app

__all__ = ["app"]

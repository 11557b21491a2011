"""Config hashing lives in :mod:`hwsearch.hashing` (below the search, so that predictors and
storage can hash configs without importing the search); re-exported here."""

from hwsearch.hashing import canonical_json, config_hash

__all__ = ["canonical_json", "config_hash"]

"""Experiment trackers: :mod:`.protocol` (what a tracker plugin implements), :mod:`.dispatch`
(each tracker off the training thread), :mod:`.redact` (credentials kept out of everything written)."""

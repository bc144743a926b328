"""Feature encoding fitted on normal training rows."""

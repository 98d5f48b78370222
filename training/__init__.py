"""Training of the preference reward heads. Not part of the installed package: run it from a checkout."""

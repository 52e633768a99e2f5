"""Pitfall lab: small broken/fixed pairs of TF1 graph-mode code (see lab/README.md)."""

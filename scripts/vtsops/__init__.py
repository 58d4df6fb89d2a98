"""Operator tools and the local stack (never packaged into Lambda)."""

"""Failure analysis: why a step failed, why a run failed, and what fails most.

Pure functions over step and run fields; nothing here knows HTTP or how storage is laid out.
"""

from .classify import (FAILURE_CATEGORIES, FAILURE_TYPES, NOT_FAILED, classify_step, error_fingerprint,
                       handled_errors)

__all__ = ["FAILURE_CATEGORIES", "FAILURE_TYPES", "NOT_FAILED", "classify_step", "error_fingerprint",
           "handled_errors"]

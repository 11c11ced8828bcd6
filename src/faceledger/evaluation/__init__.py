"""Evaluation harness: pair verification, open-set identification, calibration, throughput."""

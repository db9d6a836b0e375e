"""Hermes, the weekly review: metrics, goal scoring, experiments, proposals, reports."""

"""Scores, confusion matrices and report figures for NER and classification."""

"""Jinja2 prompt templates, shipped as package data (one per task)."""

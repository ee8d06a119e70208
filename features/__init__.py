"""Data contract, lead simulator and point-in-time feature pipeline.

Used by training and serving; it imports neither.
"""

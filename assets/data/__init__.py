"""Datasets: sources, derived tables, the dataset asset, its checks and stored outputs.

Reading sources (files, databases, generators), derived tables (SQL, Python), the dataset asset
with its expectations and drift check, and how outputs are stored and reported. Imports only
:mod:`assets.spec`.
"""

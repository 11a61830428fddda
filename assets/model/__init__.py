"""Models: training, the champion comparison and promotion, pins, and the model asset.

Training and scoring, the champion comparison and promotion rule, alias pins, the recovery of a
lost champion, and the model asset with its report. Imports :mod:`assets.spec` and
:mod:`assets.data`, never :mod:`assets.automation`.
"""

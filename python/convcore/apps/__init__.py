"""The book's chapter-8 applications on convcore.

    convcore.apps.style       neural style transfer (command: python -m convcore.style)

Fully convolutional networks made from classifiers live in convcore.models
(to_fully_convolutional).
"""
from . import style

__all__ = ["style"]
